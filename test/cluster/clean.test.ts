import fs from 'node:fs';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import Dockerode from 'dockerode';
import Database from 'better-sqlite3';
import { REGISTRY, REGISTRY_AUTH, dockerFor, pushApp, run } from '../helpers/testbed.js';
import { startServer, type RunningServer } from '../helpers/server.js';
import { createAppService, execInTask, manager, removeServices, runningTasks, serverEnv, uid } from '../helpers/cluster.js';

const id = uid();
const SVC = `cln-svc-${id}`;
const HANG = `cln-hang-${id}`;
const NODE_TOKEN = `node-token-${id}`;
const W1 = 'su-worker-1';
const W2 = 'su-worker-2';

let s: RunningServer;
const daemons: Record<string, Dockerode> = {};

async function nodeLabel(hostname: string, key: string, value: string | null): Promise<void> {
  const node = manager.getNode(hostname);
  const info = await node.inspect();
  const labels = { ...info.Spec.Labels };
  if (value === null) delete labels[key];
  else labels[key] = value;
  await node.update({ version: info.Version.Index, ...info.Spec, Labels: labels });
}

// an image of this run only: no other test's container can keep it in use
const LITTER = `${REGISTRY}/test/app:litter-${id}`;

/** a stopped container that wrote 200 kB, and a pulled image nothing uses, on one node */
async function litter(d: Dockerode): Promise<{ container: string; image: string }> {
  await new Promise<void>((resolve, reject) =>
    d.pull(LITTER, { authconfig: REGISTRY_AUTH }, (err: unknown, stream?: NodeJS.ReadableStream) => {
      if (err || !stream) return reject(err);
      d.modem.followProgress(stream, (e: unknown) => (e ? reject(e) : resolve()));
    }),
  );
  const c = await d.createContainer({ Image: LITTER, Cmd: ['sh', '-c', 'dd if=/dev/zero of=/junk bs=1k count=200'] });
  await c.start();
  await c.wait();
  return { container: c.id, image: LITTER };
}

const exists = async (p: Promise<unknown>) => p.then(() => true, () => false);

beforeAll(async () => {
  await pushApp(`litter-${id}`, `litter-${id}`);
  daemons.manager = manager;
  daemons[W1] = dockerFor(W1);
  daemons[W2] = dockerFor(W2);
  s = await startServer(serverEnv({ SWARM_UTILS_LOCK_TIMEOUT: '1500' }));
});

afterAll(async () => {
  await s?.stop();
  await removeServices(SVC, HANG);
  for (const d of Object.values(daemons)) await d.getImage(LITTER).remove().catch(() => undefined);
  await nodeLabel(W2, 'swarm-utils.clean.image.enable', null).catch(() => undefined);
  await nodeLabel(W1, 'swarm-utils.clean.token-list', null).catch(() => undefined);
});

describe('clean on the real swarm', () => {
  it('clean all prunes stopped containers and unused images on every node and reports reclaimed bytes', async () => {
    const made = Object.fromEntries(await Promise.all(Object.entries(daemons).map(async ([n, d]) => [n, await litter(d)] as const)));
    const r = await s.api('POST', '/jobs', { type: 'clean', all: true, waitRes: true });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const nodeChildren = r.json.result.children.filter((c: any) => c.target.node);
    expect(nodeChildren.length).toBe(3);
    for (const [n, d] of Object.entries(daemons)) {
      expect(await exists(d.getContainer(made[n]!.container).inspect()), `container on ${n}`).toBe(false);
      expect(await exists(d.getImage(made[n]!.image).inspect()), `image on ${n}`).toBe(false);
    }
    for (const c of nodeChildren) {
      const child = (await s.api('GET', `/jobs/${c.id}`)).json;
      expect(child.steps.map((x: any) => x.name)).toEqual(['check-node', 'container-prune', 'image-prune', 'builder-prune']);
      const bytes = child.steps.slice(1).map((x: any) => x.detail.reclaimedBytes ?? 0);
      expect(bytes[0] + bytes[1], `reclaimed on ${c.target.node}`).toBeGreaterThan(0);
    }
  });

  it('a node labelled clean.image.enable=false keeps its images, loses its stopped containers', async () => {
    await nodeLabel(W2, 'swarm-utils.clean.image.enable', 'false');
    const made = await litter(daemons[W2]!);
    const r = await s.api('POST', '/jobs', { type: 'clean', node: W2, waitRes: true });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.steps.map((x: any) => x.state)).toEqual(['done', 'done', 'skipped', 'done']);
    expect(await exists(daemons[W2]!.getContainer(made.container).inspect())).toBe(false);
    expect(await exists(daemons[W2]!.getImage(made.image).inspect())).toBe(true);
    await nodeLabel(W2, 'swarm-utils.clean.image.enable', null);
  });

  it('a node token cleans its node and gets 403 on another', async () => {
    await nodeLabel(W1, 'swarm-utils.clean.token-list', `x,${NODE_TOKEN},`);
    const own = await s.api('POST', '/jobs', { type: 'clean', node: W1, waitRes: true }, NODE_TOKEN);
    expect(own.status, JSON.stringify(own.json)).toBe(200);
    expect((await s.api('POST', '/jobs', { type: 'clean', node: W2 }, NODE_TOKEN)).status).toBe(403);
    expect((await s.api('GET', `/jobs/${own.json.id}`, undefined, NODE_TOKEN)).status).toBe(200);
    const q = await fetch(`${s.url}/clean?node=${W1}&token=${NODE_TOKEN}&waitRes=true`, { method: 'POST' });
    expect(q.status).toBe(200);
    // all=true with a node token covers exactly its node
    const all = await s.api('POST', '/jobs', { type: 'clean', all: true, waitRes: true }, NODE_TOKEN);
    expect(all.json.result.children.map((c: any) => c.target)).toEqual([{ node: W1, nodeId: (await manager.getNode(W1).inspect()).ID }]);
    expect(s.output()).not.toContain(NODE_TOKEN);
  });

  it('service clean runs the command in containers on two nodes', async () => {
    await createAppService(SVC, {
      replicas: 2,
      onWorkers: true,
      labels: { 'swarm-utils.clean.enable': 'true', 'swarm-utils.clean.exec': 'rm -f /tmp/cache-file && echo cleaned' },
    });
    const tasks = await runningTasks(SVC);
    for (const t of tasks) await execInTask(t, ['sh', '-c', 'echo junk > /tmp/cache-file']);
    const r = await s.api('POST', '/jobs', { type: 'clean', service: SVC, waitRes: true });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.steps[0].detail.containers.length).toBe(2);
    for (const t of tasks) expect((await execInTask(t, ['sh', '-c', 'ls /tmp/cache-file 2>/dev/null || echo gone'])).trim()).toBe('gone');
  });

  it('a service without clean.enable answers 422 NOT_ENABLED', async () => {
    await removeServices(HANG);
    await createAppService(HANG, { labels: { 'swarm-utils.clean.exec': 'true' } });
    const r = await s.api('POST', '/jobs', { type: 'clean', service: HANG });
    expect(r.status).toBe(422);
    expect(r.json.error.code).toBe('NOT_ENABLED');
  });

  it('a hanging clean command with a small timeout-ms fails TIMEOUT and its helper is gone', async () => {
    await removeServices(HANG);
    await createAppService(HANG, {
      onWorkers: true,
      labels: { 'swarm-utils.clean.enable': 'true', 'swarm-utils.clean.exec': 'sleep 300', 'swarm-utils.clean.timeout-ms': '3_000' },
    });
    const r = await s.api('POST', '/jobs', { type: 'clean', service: HANG, waitRes: true });
    expect(r.status).toBe(502);
    expect(r.json.error.code).toBe('TIMEOUT');
    const helpers = await manager.listServices({ filters: { label: [`swarm-utils.helper=${r.json.id}`] } });
    expect(helpers).toEqual([]);
    // a service whose clean always times out would fail every later clean all
    await removeServices(HANG);
  });

  it('two cleans of one node at once: one runs, the other LOCK_TIMEOUT', async () => {
    const [a, b] = await Promise.all([
      s.api('POST', '/jobs', { type: 'clean', node: W1, waitRes: true }),
      s.api('POST', '/jobs', { type: 'clean', node: W1, waitRes: true }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
  });

  it('a drained node and a node whose daemon stopped are reported skipped, the run still ends', async () => {
    const w2 = manager.getNode(W2);
    let info = await w2.inspect();
    await w2.update({ version: info.Version.Index, ...info.Spec, Availability: 'drain' });
    try {
      const r = await s.api('POST', '/jobs', { type: 'clean', all: true, waitRes: true });
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      const c = r.json.result.children.find((x: any) => x.target.node === W2);
      expect(c.skipped).toMatch(/drain/);
    } finally {
      info = await w2.inspect();
      await w2.update({ version: info.Version.Index, ...info.Spec, Availability: 'active' });
    }
    // stop su-worker-1's daemon and wait until the manager sees it down
    const pid = Number(fs.readFileSync('/var/lib/swarm-utils-test/run/su-worker-1.pid', 'utf8'));
    process.kill(pid, 'SIGTERM');
    try {
      const end = Date.now() + 90_000;
      while ((await manager.getNode(W1).inspect()).Status.State !== 'down') {
        if (Date.now() > end) throw new Error('su-worker-1 never went down');
        await new Promise((r) => setTimeout(r, 1000));
      }
      const r = await s.api('POST', '/jobs', { type: 'clean', all: true, waitRes: true });
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      const c = r.json.result.children.find((x: any) => x.target.node === W1);
      expect(c.skipped).toMatch(/down/);
    } finally {
      const up = await run('bash', ['test/swarm/up.sh']);
      expect(up.code, up.stdout + up.stderr).toBe(0);
    }
  });

  it('cron: a 6-field expression fires runs; a restart inside a slot does not repeat it', async () => {
    await s.stop();
    // a service whose clean takes 5 s: every run outlasts the 3 s between firings
    await removeServices(HANG);
    await createAppService(HANG, { labels: { 'swarm-utils.clean.enable': 'true', 'swarm-utils.clean.exec': 'sleep 5' } });
    const env = serverEnv({ SWARM_UTILS_IS_CRON_CLEAN: 'true', SWARM_UTILS_CRON_EXPR: '*/3 * * * * *' });
    s = await startServer(env);
    const cronJobs = async () => (await s.api('GET', '/jobs?limit=200')).json.jobs.filter((j: any) => j.source === 'cron');
    const end = Date.now() + 60_000;
    while ((await cronJobs()).length < 1) {
      if (Date.now() > end) throw new Error('no cron run');
      await new Promise((r) => setTimeout(r, 500));
    }
    await s.kill9();
    s = await startServer(env, { dbPath: s.dbPath, port: s.port });
    await new Promise((r) => setTimeout(r, 8000));
    await s.stop();
    const db = new Database(s.dbPath, { readonly: true });
    const runs = db.prepare('SELECT slot, clean_job_id AS clean, skipped FROM cron_runs ORDER BY slot').all() as any[];
    const jobs = db.prepare("SELECT id FROM jobs WHERE source = 'cron'").all() as any[];
    db.close();
    expect(runs.length).toBeGreaterThan(1);
    // every slot at most one run, every cron job belongs to exactly one slot
    expect(new Set(runs.map((r) => r.slot)).size).toBe(runs.length);
    expect(jobs.length).toBe(runs.filter((r) => r.clean !== null).length);
    // clean all takes longer than 3 s: later firings found the previous run still going
    expect(runs.some((r) => r.skipped)).toBe(true);
    s = await startServer(serverEnv());
  });
});

