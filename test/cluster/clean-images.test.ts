/**
 * The node clean's image prune on the real swarm keeps what a rollback needs: a service updated
 * from v1 to v2 on a worker keeps both images there, a service scaled to 0 keeps its image, the
 * helper images stay, and an unrelated unused image goes. Every image here is an app image of this
 * run only (its own tag and digest), so no other test's service can be the reason it is kept.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type Dockerode from 'dockerode';
import { IMAGES, REGISTRY, REGISTRY_AUTH, dockerFor, pushApp } from '../helpers/testbed.js';
import { startServer, type RunningServer } from '../helpers/server.js';
import { createAppService, inspect, manager, removeServices, runningTasks, serverEnv, uid } from '../helpers/cluster.js';

const id = uid();
const W1 = 'su-worker-1';
const APP = `cim-app-${id}`;
const SCALED = `cim-zero-${id}`;
const tag = (t: string) => `${REGISTRY}/test/app:${t}-${id}`;
const V1 = tag('cim-v1');
const V2 = tag('cim-v2');
const ZERO = tag('cim-zero');
const LITTER = tag('cim-litter');
const FRESH = tag('cim-fresh');
const UNTIL = 'swarm-utils.clean.image.until';

let s: RunningServer;
let w1: Dockerode;
/** what this file put on the worker and the manager (the worker holds swarm's pulls by digest only) */
const made = new Set<string>([V1, V2, ZERO, LITTER, FRESH]);

async function pull(d: Dockerode, ref: string): Promise<void> {
  await new Promise<void>((resolve, reject) =>
    d.pull(ref, { authconfig: REGISTRY_AUTH }, (err: unknown, stream?: NodeJS.ReadableStream) => {
      if (err || !stream) return reject(err);
      d.modem.followProgress(stream, (e: unknown) => (e ? reject(e) : resolve()));
    }),
  );
}

const present = (ref: string) => w1.getImage(ref).inspect().then(() => true, () => false);

async function nodeLabel(key: string, value: string | null): Promise<void> {
  const node = manager.getNode(W1);
  const info = await node.inspect();
  const labels = { ...info.Spec.Labels };
  if (value === null) delete labels[key];
  else labels[key] = value;
  await node.update({ version: info.Version.Index, ...info.Spec, Labels: labels });
}

async function scaleTo0(name: string): Promise<void> {
  const svc = await inspect(name);
  await manager.getService(name).update({ version: svc.Version.Index, ...svc.Spec, Mode: { Replicated: { Replicas: 0 } } });
  const end = Date.now() + 60_000;
  while ((await manager.listTasks({ filters: { service: [name], 'desired-state': ['running'] } })).length > 0) {
    if (Date.now() > end) throw new Error(`${name} still has tasks after scaling to 0`);
    await new Promise((r) => setTimeout(r, 500));
  }
  // and its container has stopped
  await new Promise((r) => setTimeout(r, 3000));
}

beforeAll(async () => {
  for (const t of ['cim-v1', 'cim-v2', 'cim-zero', 'cim-litter', 'cim-fresh']) await pushApp(`${t}-${id}`, `${t} of ${id}`);
  w1 = dockerFor(W1);
  s = await startServer(serverEnv());
});

afterAll(async () => {
  await s?.stop();
  await removeServices(APP, SCALED);
  await nodeLabel(UNTIL, null).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 3000));
  for (const d of [w1, manager]) for (const ref of made) await d.getImage(ref).remove({ force: true }).catch(() => undefined);
});

describe('image prune keeps what a rollback needs', () => {
  it('keeps v1 and v2 of an updated service, the image of a service scaled to 0 and the helper images; removes an unrelated unused image', async () => {
    await createAppService(APP, { image: V1, constraints: [`node.hostname==${W1}`] });
    const up = await s.api('POST', '/jobs', { type: 'update', service: APP, image: V2, waitRes: true });
    expect(up.status, JSON.stringify(up.json)).toBe(200);
    const svc = await inspect(APP);
    const current = svc.Spec.TaskTemplate.ContainerSpec.Image as string;
    const previous = svc.PreviousSpec.TaskTemplate.ContainerSpec.Image as string;
    expect(current.startsWith(`${V2}@sha256:`)).toBe(true);
    // created through the API, which does not pin a digest (as `--no-resolve-image`); the update pinned one
    expect(previous).toBe(V1);

    await createAppService(SCALED, { image: ZERO, constraints: [`node.hostname==${W1}`] });
    const zero = (await inspect(SCALED)).Spec.TaskTemplate.ContainerSpec.Image as string;
    await scaleTo0(SCALED);
    await pull(w1, LITTER);
    await pull(w1, IMAGES.backup);
    await pull(w1, IMAGES.dockerCli);
    // swarm pulls `repo:tag@digest` by digest: the node knows such an image as repo@digest
    const onNode = (r: string) => (r.includes('@') ? `${REGISTRY}/test/app@${r.split('@')[1]}` : r);
    const [v1Ref, v2Ref, zeroRef] = [previous, current, zero].map(onNode) as [string, string, string];
    for (const ref of [v1Ref, v2Ref, zeroRef]) made.add(ref);
    for (const ref of [v1Ref, v2Ref, zeroRef, LITTER, IMAGES.backup, IMAGES.dockerCli]) expect(await present(ref), ref).toBe(true);

    const r = await s.api('POST', '/jobs', { type: 'clean', node: W1, waitRes: true });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const step = r.json.steps.find((x: any) => x.name === 'image-prune');
    expect(step.state).toBe('done');

    expect(await present(v1Ref), 'v1 (previous spec)').toBe(true);
    expect(await present(v2Ref), 'v2 (current spec)').toBe(true);
    expect(await present(zeroRef), 'image of the service scaled to 0').toBe(true);
    expect(await present(IMAGES.backup), 'backup helper image').toBe(true);
    expect(await present(IMAGES.dockerCli), 'docker CLI helper image').toBe(true);
    expect(await present(LITTER), 'unrelated unused image').toBe(false);

    // the detail says why each was kept, and what went
    const kept = step.detail.kept as { image: string; id: string; reason: string }[];
    const reasonOf = async (ref: string) => {
      const imageId = (await w1.getImage(ref).inspect()).Id;
      return kept.find((k) => k.id === imageId)?.reason;
    };
    expect(await reasonOf(v1Ref)).toContain(`previous image of service ${APP}`);
    expect(await reasonOf(zeroRef)).toContain(`image of service ${SCALED}`);
    expect(await reasonOf(IMAGES.backup)).toContain('SWARM_UTILS_BACKUP_IMAGE');
    expect(await reasonOf(IMAGES.dockerCli)).toMatch(/SWARM_UTILS_DOCKER_CLI_IMAGE_NAME|used by a container/);
    expect(step.detail.removed.map((x: any) => x.image)).toContain(LITTER);
    expect(step.detail.reclaimedBytes).toBeGreaterThan(0);
    expect(step.output).toContain(`previous image of service ${APP}`);

    // and the rollback the kept image is for: the service returns to its previous spec and runs v1 again
    const rb = await inspect(APP);
    await manager.getService(APP).update({ version: rb.Version.Index, ...rb.PreviousSpec });
    const end = Date.now() + 60_000;
    for (;;) {
      const tasks = await runningTasks(APP);
      if (tasks.length === 1 && tasks[0].Spec.ContainerSpec.Image === previous) break;
      if (Date.now() > end) throw new Error('the rollback to v1 did not run');
      await new Promise((res) => setTimeout(res, 500));
    }
  });

  it('with swarm-utils.clean.image.until=168h a recent unused image is kept, and says why', async () => {
    await nodeLabel(UNTIL, '168h');
    try {
      await pull(w1, FRESH);
      const r = await s.api('POST', '/jobs', { type: 'clean', node: W1, waitRes: true });
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      const step = r.json.steps.find((x: any) => x.name === 'image-prune');
      expect(await present(FRESH)).toBe(true);
      const freshId = (await w1.getImage(FRESH).inspect()).Id;
      expect(step.detail.kept.find((k: any) => k.id === freshId)?.reason).toBe(`created less than 168h ago (${UNTIL})`);
    } finally {
      await nodeLabel(UNTIL, null);
    }
    // without the label the same image goes
    const r = await s.api('POST', '/jobs', { type: 'clean', node: W1, waitRes: true });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(await present(FRESH)).toBe(false);
  });

  it('a malformed clean.image.until fails the step with VALIDATION', async () => {
    await nodeLabel(UNTIL, '7d');
    try {
      const r = await s.api('POST', '/jobs', { type: 'clean', node: W1, waitRes: true });
      expect(r.status).toBe(502);
      expect(r.json.error.code).toBe('VALIDATION');
      expect(r.json.error.message).toContain(UNTIL);
    } finally {
      await nodeLabel(UNTIL, null);
    }
  });
});
