/**
 * The dockerode DockerPort against the real test swarm (manager on this host, su-worker-1/2,
 * private registry with credentials). Every service made here is named dp-test-<random>-… and
 * removed in afterAll.
 */
import { randomBytes } from 'node:crypto';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { createDockerPort } from '../../src/swarm/dockerode.js';
import type { DockerPort, ServiceInfo, TaskInfo } from '../../src/swarm/port.js';
import { IMAGES, REGISTRY, REGISTRY_AUTH } from '../helpers/testbed.js';

/** the app image prints nothing: this says which env a task started with, then idles like the image's CMD */
const APP_CMD = ['sh', '-c', "echo \"started A=$A\"; trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"];

const RUN = `dp-test-${randomBytes(3).toString('hex')}`;
const docker = new Dockerode(); // the manager: this host's default socket
/** every log line the port writes, at debug: checked for ids and for leaked credentials */
const logLines: string[] = [];
const port: DockerPort = createDockerPort({ docker, logger: createLogger('debug', { write: (line: string) => void logLines.push(line) }) });
const created = new Set<string>();

/** A plain replicated service made with dockerode itself (not through the port under test). */
async function makeService(
  suffix: string,
  spec: { replicas: number; image: string; constraints?: string[]; env?: string[]; command?: string[] },
): Promise<string> {
  const svc = await docker.createService(REGISTRY_AUTH, {
    Name: `${RUN}-${suffix}`,
    Labels: { 'dp-test': RUN },
    Mode: { Replicated: { Replicas: spec.replicas } },
    TaskTemplate: {
      ContainerSpec: { Image: spec.image, Env: spec.env ?? [], ...(spec.command ? { Command: spec.command } : {}) },
      Placement: { Constraints: spec.constraints ?? [] },
      RestartPolicy: { Condition: 'any', Delay: 1_000_000_000 },
    },
    UpdateConfig: { Parallelism: 1, FailureAction: 'pause', Monitor: 2_000_000_000, Order: 'stop-first' },
  });
  created.add(svc.id);
  return svc.id;
}

async function until<T>(what: string, ms: number, probe: () => Promise<T | null | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== null && v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

const runningTask = (serviceId: string): Promise<TaskInfo> =>
  until(`running task of ${serviceId}`, 90_000, async () =>
    (await port.listTasks(serviceId)).find((t) => t.state === 'running' && t.desiredState === 'running'),
  );

async function expectAppError(p: Promise<unknown>, code: string): Promise<AppError> {
  const e: unknown = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AppError);
  // the message in the comparison says what went wrong when the code differs
  expect({ code: (e as AppError).code, message: (e as AppError).message }).toMatchObject({ code });
  return e as AppError;
}

let workerId = '';

beforeAll(async () => {
  const w = await port.getNode('su-worker-1');
  if (!w) throw new Error('su-worker-1 is not in the swarm');
  workerId = w.id;
});

afterAll(async () => {
  for (const id of created) await docker.getService(id).remove().catch(() => undefined);
});

describe('self and nodes', () => {
  it('knows it talks to a manager', async () => {
    const self = await port.self();
    expect(self.isManager).toBe(true);
    expect(self.nodeId).toMatch(/^[a-z0-9]{25}$/);
    expect(self.apiVersion).toMatch(/^1\.\d+$/);
    await port.ping();
  });

  it('lists the three ready nodes', async () => {
    const nodes = await port.listNodes();
    expect(nodes).toHaveLength(3);
    expect(nodes.map((n) => n.hostname)).toEqual(expect.arrayContaining(['su-worker-1', 'su-worker-2']));
    for (const n of nodes) expect(n.state).toBe('ready');
    const self = await port.self();
    const me = nodes.find((n) => n.id === self.nodeId);
    expect(me?.role).toBe('manager');
    expect((await port.getNode(self.nodeId))?.id).toBe(self.nodeId);
    expect((await port.getNode(workerId))?.hostname).toBe('su-worker-1');
    expect(await port.getNode('su-worker')).toBeNull();
    expect(await port.getNode(workerId.slice(0, 5))).toBeNull();
  });
});

describe('getService', () => {
  it('matches a name or a full id exactly, never a prefix', async () => {
    const webId = await makeService('web', { replicas: 0, image: IMAGES.busybox });
    const webappId = await makeService('webapp', { replicas: 0, image: IMAGES.busybox });

    const web = await port.getService(`${RUN}-web`);
    expect(web?.id).toBe(webId);
    expect(web?.name).toBe(`${RUN}-web`);
    expect(web?.mode).toBe('replicated');
    expect(web?.replicas).toBe(0);
    expect(web?.image.startsWith(IMAGES.busybox)).toBe(true);
    expect(web?.labels).toEqual({ 'dp-test': RUN });
    expect(web?.forceUpdate).toBe(0);
    expect(web?.version).toBeGreaterThan(0);
    expect((web?.spec as { Name?: string }).Name).toBe(`${RUN}-web`);

    expect((await port.getService(`${RUN}-webapp`))?.id).toBe(webappId);
    expect((await port.getService(webId))?.name).toBe(`${RUN}-web`);
    expect(await port.getService(webId.slice(0, 8))).toBeNull();
    expect(await port.getService(`${RUN}-we`)).toBeNull();
    expect(await port.getService(`${RUN}-nope`)).toBeNull();
    expect((await port.listServices()).map((s) => s.id)).toEqual(expect.arrayContaining([webId, webappId]));
    expect(await port.listTasks(webId)).toEqual([]);
    expect(await port.listTasks('doesnotexist0000000000000')).toEqual([]);
    // Docker's own message, without docker-modem's "(HTTP code 404) … -" wrapping (a stream answer has no json body)
    const e = await expectAppError(port.serviceLogs('doesnotexist0000000000000', 5), 'DOCKER_ERROR');
    expect(e.message).toBe('service doesnotexist0000000000000 not found');
    expect(e.details).toEqual({ statusCode: 404 });
  });
});

describe('helpers', () => {
  it('runs a command on su-worker-1 with the node socket and a private image', async () => {
    const jobId = 900_000 + Math.floor(Math.random() * 99_999);
    const spec = {
      name: `${RUN}-helper`,
      jobId,
      nodeId: workerId,
      image: IMAGES.dockerCli,
      command: ['sh', '-c', 'echo out-line; echo err-line >&2; docker info --format {{.Name}}; echo "v=$GREETING"; exit 3'],
      env: { GREETING: 'hi there' },
      mounts: [{ type: 'bind' as const, source: '/var/run/docker.sock', target: '/var/run/docker.sock', readOnly: false }],
      auth: REGISTRY_AUTH,
    };
    const ref = await port.createHelper(spec);
    created.add(ref.id);
    expect(ref).toEqual({ id: expect.any(String), name: spec.name, jobId });

    const result = await port.waitHelper(ref, { timeoutMs: 90_000 });
    expect(result.exitCode).toBe(3);
    expect(result.state).toBe('failed');
    expect(result.output).toContain('out-line');
    expect(result.output).toContain('err-line');
    expect(result.output).toContain('su-worker-1');
    expect(result.output).toContain('v=hi there');

    const svc = await port.getService(ref.id);
    expect(svc?.labels['swarm-utils.helper']).toBe(String(jobId));
    expect(svc?.mode).toBe('replicated-job');
    expect(svc?.replicas).toBeNull();
    const tasks = await port.listTasks(ref.id);
    expect(tasks).toHaveLength(1);
    expect(tasks[0]).toMatchObject({ nodeId: workerId, state: 'failed', exitCode: 3, serviceId: ref.id });

    // re-entered after a crash: the same helper, not a second one
    expect(await port.createHelper(spec)).toEqual(ref);
    expect(await port.findHelper(spec.name)).toEqual(ref);
    expect(await port.listHelpers(jobId)).toEqual([ref]);
    expect((await port.listHelpers()).map((h) => h.id)).toContain(ref.id);
    expect(await port.listHelpers(jobId + 1)).toEqual([]);

    await port.removeService(ref.id);
    await port.removeService(ref.id); // a missing service is fine
    expect(await port.findHelper(spec.name)).toBeNull();
    created.delete(ref.id);
  });

  it('a helper that exits 0 reports its output and state complete', async () => {
    const ref = await port.createHelper({
      name: `${RUN}-ok`,
      jobId: 1,
      nodeId: workerId,
      image: IMAGES.busybox,
      command: ['sh', '-c', 'echo done'],
      env: {},
      mounts: [],
      auth: REGISTRY_AUTH,
    });
    created.add(ref.id);
    const result = await port.waitHelper(ref, { timeoutMs: 90_000 });
    expect(result).toEqual({ exitCode: 0, state: 'complete', error: null, output: 'done\n' });
    await port.removeService(ref.id);
    created.delete(ref.id);
  });

  it('times out and is canceled while the helper still runs', async () => {
    const ref = await port.createHelper({
      name: `${RUN}-sleep`,
      jobId: 2,
      nodeId: workerId,
      image: IMAGES.busybox,
      command: ['sleep', '60'],
      env: {},
      mounts: [],
      auth: REGISTRY_AUTH,
    });
    created.add(ref.id);
    const t0 = Date.now();
    const e = await expectAppError(port.waitHelper(ref, { timeoutMs: 2000 }), 'TIMEOUT');
    expect(e.message).toMatch(/did not finish within 2000 ms/);
    expect(Date.now() - t0).toBeLessThan(4000);

    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    await expectAppError(port.waitHelper(ref, { timeoutMs: 60_000, signal: ac.signal }), 'CANCELED');
    const ac2 = new AbortController();
    setTimeout(() => ac2.abort(new AppError('TIMEOUT', 'job occupation limit')), 300);
    const e2 = await expectAppError(port.waitHelper(ref, { timeoutMs: 60_000, signal: ac2.signal }), 'TIMEOUT');
    expect(e2.message).toBe('job occupation limit');

    await port.removeService(ref.id);
    created.delete(ref.id);
  });

  it('a helper whose image cannot be pulled ends rejected, with no exit code', async () => {
    const ref = await port.createHelper({
      name: `${RUN}-rejected`,
      jobId: 4,
      nodeId: workerId,
      image: `${REGISTRY}/test/app:does-not-exist`,
      env: {},
      mounts: [],
      auth: REGISTRY_AUTH,
    });
    created.add(ref.id);
    const result = await port.waitHelper(ref, { timeoutMs: 90_000 });
    expect(result).toMatchObject({ exitCode: null, state: 'rejected', output: '' });
    expect(result.error).toBeTruthy();
    await port.removeService(ref.id);
    created.delete(ref.id);
  });

  it('a helper no node can take stays pending (with Status.Err) until the deadline', async () => {
    const ref = await port.createHelper({
      name: `${RUN}-nonode`,
      jobId: 5,
      nodeId: 'nonexistent0000000000000',
      image: IMAGES.busybox,
      command: ['true'],
      env: {},
      mounts: [],
    });
    created.add(ref.id);
    await expectAppError(port.waitHelper(ref, { timeoutMs: 1500 }), 'TIMEOUT');
    const [task] = await port.listTasks(ref.id);
    expect(task).toMatchObject({ state: 'pending', nodeId: null, containerId: null, exitCode: null });
    expect(task?.error).toMatch(/no suitable node/);
    await port.removeService(ref.id);
    created.delete(ref.id);
  });

  it('refuses to adopt a non-helper service of the same name', async () => {
    await makeService('plain', { replicas: 0, image: IMAGES.busybox });
    const e = await expectAppError(
      port.createHelper({ name: `${RUN}-plain`, jobId: 3, nodeId: workerId, image: IMAGES.busybox, env: {}, mounts: [] }),
      'DOCKER_ERROR',
    );
    expect(e.message).toMatch(/not a swarm-utils helper/);
    expect(await port.findHelper(`${RUN}-plain`)).toBeNull();
  });
});

describe('app service on the manager', () => {
  let appId = '';

  beforeAll(async () => {
    appId = await makeService('app', { replicas: 1, image: IMAGES.appV1, constraints: ['node.role==manager'], env: ['A=1'], command: APP_CMD });
    await runningTask(appId);
  });

  it('execs into a local container and demultiplexes its output', async () => {
    const task = await runningTask(appId);
    expect(task.containerId).toBeTruthy();
    const cid = task.containerId!;
    expect(await port.execLocal(cid, ['sh', '-c', 'echo hello; echo oops >&2; exit 5'], { timeoutMs: 20_000 })).toEqual({
      exitCode: 5,
      stdout: 'hello\n',
      stderr: 'oops\n',
    });
    expect(await port.execLocal(cid, ['echo', 'a b'], { timeoutMs: 20_000 })).toEqual({ exitCode: 0, stdout: 'a b\n', stderr: '' });

    const big = await port.execLocal(cid, ['sh', '-c', 'i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); done'], { timeoutMs: 30_000 });
    expect(big.exitCode).toBe(0);
    expect(big.stdout.length).toBeLessThanOrEqual(64 * 1024);
    expect(big.stdout.endsWith('line-19999\n')).toBe(true);

    await expectAppError(port.execLocal(cid, ['sleep', '5'], { timeoutMs: 500 }), 'TIMEOUT');
    // a missing binary: Docker starts the exec and reports the failure as a non-zero exit code
    const missing = await port.execLocal(cid, ['/no/such/binary'], { timeoutMs: 5000 });
    expect(missing.exitCode).toBeGreaterThan(0);
    await expectAppError(port.execLocal('0000000000000000', ['true'], { timeoutMs: 5000 }), 'DOCKER_ERROR');
  });

  it('updates the spec with registry auth and keeps every other field', async () => {
    const before = (await port.getService(appId)) as ServiceInfo;
    const spec = structuredClone(before.spec) as {
      TaskTemplate: { ContainerSpec: { Env?: string[] }; Placement?: unknown };
      Labels?: unknown;
      UpdateConfig?: unknown;
    };
    spec.TaskTemplate.ContainerSpec.Env = ['A=2', 'B=x y'];
    await port.updateService(appId, before.version, spec, REGISTRY_AUTH);

    const after = (await port.getService(appId)) as ServiceInfo;
    expect(after.version).toBeGreaterThan(before.version);
    const s = after.spec as typeof spec;
    expect(s.TaskTemplate.ContainerSpec.Env).toEqual(['A=2', 'B=x y']);
    expect(s.TaskTemplate.Placement).toEqual((before.spec as typeof spec).TaskTemplate.Placement);
    expect(s.Labels).toEqual({ 'dp-test': RUN });
    expect(s.UpdateConfig).toEqual((before.spec as typeof spec).UpdateConfig);

    // a stale version is refused by Docker
    await expectAppError(port.updateService(appId, before.version, spec, REGISTRY_AUTH), 'DOCKER_ERROR');

    const done = await until('rollout', 90_000, async () => {
      const s2 = await port.getService(appId);
      return s2?.updateStatus?.state === 'completed' ? s2 : null;
    });
    expect(done.updateStatus?.message).toBe('update completed');
    expect(done.updateStatus?.completedAt).toBeTruthy();
    const lines = await until('log of the new task', 30_000, async () => {
      const l = await port.serviceLogs(appId, 50);
      return l.includes('started A=2') ? l : null;
    });
    // Docker applies `tail` per task; the port gives the service's last lines in time order
    expect(lines).toEqual(['started A=1', 'started A=2']);
    expect(await port.serviceLogs(appId, 1)).toEqual(['started A=2']);
  });
});

describe('resolveDigest', () => {
  it('resolves a tag with credentials', async () => {
    expect(await port.resolveDigest(IMAGES.appV1, REGISTRY_AUTH)).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('fails REGISTRY_ERROR for a missing tag and without credentials, never showing the password', async () => {
    const e1 = await expectAppError(port.resolveDigest(`${REGISTRY}/test/app:does-not-exist`, REGISTRY_AUTH), 'REGISTRY_ERROR');
    expect(e1.message).not.toContain(REGISTRY_AUTH.password);
    const e2 = await expectAppError(port.resolveDigest(IMAGES.appV1), 'REGISTRY_ERROR');
    expect(e2.message).not.toContain(REGISTRY_AUTH.password);
    const e3 = await expectAppError(port.resolveDigest(IMAGES.appV1, { ...REGISTRY_AUTH, password: 'wrong-pw-123' }), 'REGISTRY_ERROR');
    expect(e3.message).not.toContain('wrong-pw-123');
  });
});

// last in the file: sees the log lines of every test above (tests of a file run in order)
describe('logging', () => {
  it('logs Docker calls at debug with the object id and never a password', () => {
    const calls = logLines.map((l) => JSON.parse(l) as { level: number; op?: string; id?: string; msg: string });
    const creates = calls.filter((c) => c.op === 'service.create');
    expect(creates.length).toBeGreaterThan(0);
    expect(creates.every((c) => c.level === 20 && c.id?.startsWith(RUN))).toBe(true);
    expect(calls.some((c) => c.op === 'task.list' && c.id)).toBe(true);
    expect(calls.some((c) => c.op === 'exec.start' && c.id)).toBe(true);
    expect(calls.some((c) => c.op === 'distribution' && c.id === IMAGES.appV1)).toBe(true);
    const all = logLines.join('');
    expect(all).not.toContain(REGISTRY_AUTH.password);
    expect(all).not.toContain('wrong-pw-123');
  });
});
