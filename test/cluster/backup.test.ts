import net from 'node:net';
import zlib from 'node:zlib';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { IMAGES, REGISTRY_AUTH, S3 } from '../helpers/testbed.js';
import { deleteS3Prefix, instanceOf, removeHelperContainers, removeVolumes, s3Client as s3 } from '../helpers/leftovers.js';
import { startServer, waitJob, type RunningServer } from '../helpers/server.js';
import { createAppService, execInTask, hostnameOf, inspect, manager, removeServices, runningTasks, serverEnv, uid, waitRunning } from '../helpers/cluster.js';

const id = uid();
const PREFIX = `bk-${id}`;
// s3rver does not check signatures: a unique secret lets the test prove it never leaks
const SECRET = `s3-secret-${id}-do-not-print`;
const s3Env = (domain: string = S3.endpoint) => ({
  SWARM_UTILS_S3_DOMAIN: domain,
  SWARM_UTILS_S3_HTTPS: 'false',
  SWARM_UTILS_S3_BUCKET_NAME: S3.bucket,
  SWARM_UTILS_S3_ACCESS_KEY: S3.accessKey,
  SWARM_UTILS_S3_SECRET_ACCESS_KEY: SECRET,
  // slashes on purpose: the key must come out as bk-<id>/<file>
  SWARM_UTILS_S3_PATH: `/${PREFIX}/`,
});
const env = serverEnv(s3Env());

const W1 = 'su-worker-1';
const STOP = `bk-stop-${id}`;
const TWO = `bk-two-${id}`;
const STACK = `stk${id}`;
const STACKED = `${STACK}_app`;
const KILL = `bk-kill-${id}`;
const FAIL = `bk-fail-${id}`;
const GLOBAL = `bk-global-${id}`;
const OFF = `bk-off-${id}`;
const LATE = `bk-late-${id}`;
const CRASHED = `bk-crashed-${id}`;
const SERVICES = [STOP, TWO, STACKED, KILL, FAIL, GLOBAL, OFF, LATE, CRASHED];
const VOL = {
  stop: `bk-stop-data-${id}`,
  two: `bk-two-data-${id}`,
  stackData: `${STACK}_data`,
  stackOther: `${STACK}_other`,
  kill: `bk-kill-data-${id}`,
  crashed: `bk-crashed-data-${id}`,
  misc: `bk-misc-${id}`,
};
const STACK_TOKEN = `stack-token-${id}`;
const ALL_TOKEN = `all-token-${id}`;

let s: RunningServer;
/** installation ids of the servers this file started: their helpers' leftover containers are removed at the end */
const instances = new Set<string>();

const vol = (name: string) => ({ Type: 'volume' as const, Source: name, Target: `/${name.endsWith('_other') ? 'other' : 'data'}` });
const enabled = (extra: Record<string, string> = {}) => ({ 'swarm-utils.backup.enable': 'true', ...extra });

beforeAll(async () => {
  s = await startServer(env);
  instances.add(instanceOf(s));
  await Promise.all([
    createAppService(STOP, {
      constraints: [`node.hostname==${W1}`],
      mounts: [vol(VOL.stop)],
      labels: enabled({ 'swarm-utils.backup.stop': 'true', 'swarm-utils.backup.exec': 'echo "dump of $(hostname)" > /data/dump.sql' }),
    }),
    createAppService(TWO, {
      replicas: 2,
      onWorkers: true,
      mounts: [vol(VOL.two)],
      labels: enabled({ 'swarm-utils.backup.token': `other-token,${ALL_TOKEN}` }),
    }),
    createAppService(STACKED, {
      mounts: [vol(VOL.stackData), vol(VOL.stackOther)],
      labels: enabled({
        'com.docker.stack.namespace': STACK,
        'swarm-utils.backup.volume-list': 'data',
        'swarm-utils.backup.token': `${STACK_TOKEN},${ALL_TOKEN}`,
      }),
    }),
  ]);
});

afterAll(async () => {
  await s?.stop();
  await removeServices(...SERVICES);
  await removeHelperContainers(instances);
  await removeVolumes(Object.values(VOL));
  await deleteS3Prefix(PREFIX).catch(() => undefined);
});

describe('backup on the real swarm', () => {
  it('stop=true on a worker: exec dump, scale to 0, archive + upload, back at its replica count; the tarball holds the volume', async () => {
    const [task] = await runningTasks(STOP);
    await execInTask(task, ['sh', '-c', 'echo keep-me > /data/other.txt']);
    const r = await s.api('POST', '/jobs', { type: 'backup', service: STOP, waitRes: true });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    // staged (the default): copied while stopped, started again, then archived
    expect(r.json.steps.map((x: any) => [x.name, x.state])).toEqual([
      ['resolve', 'done'],
      ['exec', 'done'],
      ['prepare', 'done'],
      ['stop', 'done'],
      ['stage', 'done'],
      ['archive', 'skipped'],
      ['start', 'done'],
      ['archive-staged', 'done'],
      ['verify', 'done'],
      ['retention', 'skipped'],
      ['unstage', 'done'],
    ]);
    expect(r.json.steps[3].detail.replicas).toBe(1);
    const [archive] = r.json.result.archives;
    expect(r.json.result.archives).toHaveLength(1);
    expect(archive).toMatchObject({ node: W1, volume: VOL.stop });
    expect(archive.key).toMatch(new RegExp(`^${PREFIX}/${W1}_${VOL.stop}_\\d{4}-\\d{2}-\\d{2}T\\d{2}-\\d{2}-\\d{2}Z\\.tar\\.gz$`));
    expect(await listKeys()).toContain(archive.key);
    const files = await download(archive.key);
    expect(files.get(`backup/${VOL.stop}/dump.sql`)?.toString()).toMatch(/^dump of /);
    expect(files.get(`backup/${VOL.stop}/other.txt`)?.toString()).toBe('keep-me\n');
    expect(archive.size).toBeGreaterThan(0);
    expect(archive.files).toBe(files.size);
    expect(archive.bytes).toBe([...files.values()].reduce((n, b) => n + b.length, 0));
    // stopped and started again: a new task, at the recorded count
    const after = await waitRunning(STOP, 1);
    expect(after[0].ID).not.toBe(task.ID);
    expect((await inspect(STOP)).Spec.Mode.Replicated.Replicas).toBe(1);
    expectNoSecret(r.json);
  });

  it('two tasks on two nodes: one archive per node, each with its own node’s data', async () => {
    for (const t of await runningTasks(TWO)) {
      await execInTask(t, ['sh', '-c', `echo ${await hostnameOf(t.NodeID)} > /data/node.txt`]);
    }
    const before = await inspect(TWO);
    const r = await s.api('POST', '/jobs', { type: 'backup', service: TWO, waitRes: true });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.steps.map((x: any) => [x.name, x.state])).toEqual([
      ['resolve', 'done'],
      ['exec', 'skipped'],
      ['prepare', 'skipped'],
      ['stop', 'skipped'],
      ['stage', 'skipped'],
      ['archive', 'done'],
      ['start', 'skipped'],
      ['archive-staged', 'skipped'],
      ['verify', 'done'],
      ['retention', 'skipped'],
      ['unstage', 'skipped'],
    ]);
    const archives = r.json.result.archives as any[];
    expect(archives.map((a) => a.node).sort()).toEqual(['su-worker-1', 'su-worker-2']);
    for (const a of archives) {
      expect(a.key.startsWith(`${PREFIX}/${a.node}_${VOL.two}_`)).toBe(true);
      expect((await download(a.key)).get(`backup/${VOL.two}/node.txt`)?.toString()).toBe(`${a.node}\n`);
    }
    // nothing stopped: same spec version
    expect((await inspect(TWO)).Version.Index).toBe(before.Version.Index);
  });

  it('volume-list selects a stack volume by its short name, and only that one of the two mounted', async () => {
    const r = await s.api('POST', '/jobs', { type: 'backup', service: STACKED, waitRes: true });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.steps[0].detail.volumes).toEqual([VOL.stackData]);
    expect(r.json.result.archives.map((a: any) => a.volume)).toEqual([VOL.stackData]);
    const files = await download(r.json.result.archives[0].key);
    expect([...files.keys()].every((f) => f.startsWith(`backup/${VOL.stackData}`))).toBe(true);
  });

  it('a volume-list item that matches no mount fails with a message naming it', async () => {
    await createAppService(OFF, { mounts: [vol(VOL.misc)], labels: enabled({ 'swarm-utils.backup.volume-list': 'nope' }) });
    const r = await s.api('POST', '/jobs', { type: 'backup', service: OFF, waitRes: true });
    expect(r.status).toBe(502);
    expect(r.json.error.code).toBe('VALIDATION');
    expect(r.json.error.message).toContain('"nope"');
    expect(r.json.error.message).toContain(VOL.misc);
  });

  it('a service with no running task is archived on the node of its most recent task', async () => {
    // exits 1 at once, restarted once, then left failed: its tasks stay in the history with their node
    await manager.createService(REGISTRY_AUTH as any, {
      Name: CRASHED,
      Labels: enabled(),
      TaskTemplate: {
        ContainerSpec: { Image: IMAGES.appCrash, Mounts: [vol(VOL.crashed)] },
        Placement: { Constraints: ['node.hostname==su-worker-2'] },
        RestartPolicy: { Condition: 'on-failure', MaxAttempts: 1, Delay: 100_000_000 },
      },
      Mode: { Replicated: { Replicas: 1 } },
    } as any);
    await until(async () => {
      const tasks = await manager.listTasks({ filters: { service: [CRASHED] } });
      return tasks.length >= 2 && tasks.every((t: any) => ['failed', 'rejected', 'shutdown', 'complete'].includes(t.Status.State));
    }, 60_000, 'both tasks failed');
    const r = await s.api('POST', '/jobs', { type: 'backup', service: CRASHED, waitRes: true });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.steps[0].detail.tasks).toEqual([]);
    expect(r.json.result.archives.map((a: any) => [a.node, a.volume])).toEqual([['su-worker-2', VOL.crashed]]);
  });

  it('S3 unreachable: S3_ERROR with the upload error, the service is back at its replica count', async () => {
    const port = await closedPort();
    const other = await startServer(serverEnv(s3Env(`10.77.0.1:${port}`)));
    instances.add(instanceOf(other));
    try {
      const r = await other.api('POST', '/jobs', { type: 'backup', service: STOP, waitRes: true });
      expect(r.status, JSON.stringify(r.json)).toBe(502);
      expect(r.json.error.code).toBe('S3_ERROR');
      expect(r.json.error.message).toContain(`10.77.0.1:${port}`);
      expect(r.json.error.message).toMatch(/ECONNREFUSED|refused/i);
      // staged: the service was started again before the upload failed
      expect(r.json.steps.map((x: any) => [x.name, x.state])).toEqual([
        ['resolve', 'done'],
        ['exec', 'done'],
        ['prepare', 'done'],
        ['stop', 'done'],
        ['stage', 'done'],
        ['archive', 'skipped'],
        ['start', 'done'],
        ['archive-staged', 'failed'],
        ['verify', 'skipped'],
        ['retention', 'skipped'],
        ['unstage', 'done'],
      ]);
      await waitRunning(STOP, 1);
      expect((await inspect(STOP)).Spec.Mode.Replicated.Replicas).toBe(1);
      expectNoSecret(r.json);
      expect(other.output()).not.toContain(SECRET);
    } finally {
      await other.stop();
    }
  });

  it('an exec that exits non-zero: EXEC_FAILED, nothing was stopped', async () => {
    await createAppService(FAIL, {
      onWorkers: true,
      mounts: [vol(VOL.misc)],
      labels: enabled({ 'swarm-utils.backup.stop': 'true', 'swarm-utils.backup.exec': 'echo no-dump >&2; exit 4' }),
    });
    const before = await inspect(FAIL);
    const r = await s.api('POST', '/jobs', { type: 'backup', service: FAIL, waitRes: true });
    expect(r.status).toBe(502);
    expect(r.json.error.code).toBe('EXEC_FAILED');
    expect(r.json.error.message).toContain('exit 4');
    expect(r.json.steps.map((x: any) => x.state)).toEqual(['done', 'failed', 'skipped', 'skipped', 'skipped', 'skipped', 'skipped', 'skipped', 'skipped', 'skipped', 'skipped']);
    expect((await inspect(FAIL)).Version.Index).toBe(before.Version.Index);
  });

  describe('SIGKILL of the server: the job resumes, the service comes back, each archive is uploaded once', () => {
    beforeAll(async () => {
      await createAppService(KILL, {
        replicas: 2,
        onWorkers: true,
        mounts: [vol(VOL.kill)],
        labels: enabled({
          'swarm-utils.backup.stop': 'true',
          // ~20 MB of noise: the archive takes long enough to be killed in the middle
          'swarm-utils.backup.exec': 'head -c 20000000 /dev/urandom > /data/noise.bin && echo done',
        }),
      });
    });

    const stepState = (job: any, name: string) => job.steps?.find((x: any) => x.name === name)?.state;

    it('right after the stop step', () => killAt((j) => stepState(j, 'stop') === 'done'));
    // the helper exists when the process dies: the restarted step must reattach to it, not upload again
    it('during the archive of the staging copies', () => killAt((j) => stepState(j, 'archive-staged') === 'running', true));
    it('during the start', () => killAt((j) => stepState(j, 'start') === 'running'));
  });

  it('backup all snapshots its targets: a service labelled mid-run is not part of it', async () => {
    const r = await s.api('POST', '/jobs', { type: 'backup', all: true }, ALL_TOKEN);
    expect(r.status, JSON.stringify(r.json)).toBe(202);
    await waitJob(s, r.json.id, 60_000, (j) => j.steps[0].state === 'done');
    await createAppService(LATE, { mounts: [vol(VOL.misc)], labels: enabled({ 'swarm-utils.backup.token': ALL_TOKEN }) });
    const job = await waitJob(s, r.json.id);
    expect(job.state, JSON.stringify(job)).toBe('succeeded');
    expect(job.result.children.map((c: any) => c.target.service).sort()).toEqual([STACKED, TWO].sort());
    expect(job.result.children.every((c: any) => c.state === 'succeeded')).toBe(true);
    // the token does grant the late service: the next run includes it
    const next = await s.api('POST', '/jobs', { type: 'backup', all: true, waitRes: true }, ALL_TOKEN);
    expect(next.status, JSON.stringify(next.json)).toBe(200);
    expect(next.json.result.children.map((c: any) => c.target.service).sort()).toEqual([LATE, STACKED, TWO].sort());
  });

  it('a label token backs up its own service (header and query forms) and gets 403 on another', async () => {
    const header = await s.api('POST', `/backup?service=${STACKED}&waitRes=true`, undefined, STACK_TOKEN);
    expect(header.status, JSON.stringify(header.json)).toBe(200);
    const q = await fetch(`${s.url}/backup?service=${STACKED}&token=${STACK_TOKEN}&waitRes=true`, { method: 'POST' });
    const qJob: any = await q.json();
    expect(q.status, JSON.stringify(qJob)).toBe(200);
    expect(qJob.result.archives).toHaveLength(1);
    expect((await s.api('POST', '/jobs', { type: 'backup', service: TWO }, STACK_TOKEN)).status).toBe(403);
    expect((await fetch(`${s.url}/backup?service=${STOP}&token=${STACK_TOKEN}`, { method: 'POST' })).status).toBe(403);
    expect(s.output()).not.toContain(STACK_TOKEN);
  });

  it('refused before any change: stop=true on a global service (422 UNSUPPORTED), no backup.enable (422 NOT_ENABLED)', async () => {
    await createAppService(GLOBAL, { global: true, mounts: [vol(VOL.misc)], labels: enabled({ 'swarm-utils.backup.stop': 'true' }) });
    const before = await inspect(GLOBAL);
    const g = await s.api('POST', '/jobs', { type: 'backup', service: GLOBAL });
    expect(g.status, JSON.stringify(g.json)).toBe(422);
    expect(g.json.error.code).toBe('UNSUPPORTED');
    expect((await inspect(GLOBAL)).Version.Index).toBe(before.Version.Index);
    expect((await s.api('GET', `/jobs?service=${GLOBAL}`)).json.jobs).toEqual([]);

    await removeServices(OFF);
    await createAppService(OFF, { mounts: [vol(VOL.misc)], labels: { 'swarm-utils.backup.stop': 'true' } });
    const n = await s.api('POST', '/jobs', { type: 'backup', service: OFF });
    expect(n.status).toBe(422);
    expect(n.json.error.code).toBe('NOT_ENABLED');
    expect((await fetch(`${s.url}/backup?service=${OFF}&token=nobody`, { method: 'POST' })).status).toBe(403);
  });

  it('the S3 secret appears nowhere: not in the server output, not in any job', async () => {
    expect(s.output()).not.toContain(SECRET);
    const { json } = await s.api('GET', '/jobs?type=backup&limit=100');
    expect(json.jobs.length).toBeGreaterThan(5);
    expectNoSecret(json);
  });
});

/** start a stop=true backup, SIGKILL the server when `when` holds, start it again on the same database */
async function killAt(when: (job: any) => boolean, needHelper = false): Promise<void> {
  await waitRunning(KILL, 2);
  const start = await s.api('POST', '/jobs', { type: 'backup', service: KILL });
  expect(start.status, JSON.stringify(start.json)).toBe(202);
  const jobId = start.json.id;
  const since = Math.floor(Date.parse(start.json.createdAt) / 1000) - 1;
  const atKill = await pollJob(jobId, async (j) => when(j) && (!needHelper || (await helpersOf(jobId)).some((h) => /-archive-/.test(h))));
  await s.kill9();
  s = await startServer(env, { dbPath: s.dbPath, port: s.port });
  const job = await waitJob(s, jobId);
  expect(job.state, JSON.stringify(job)).toBe('succeeded');
  expect(s.output()).toContain('resuming job interrupted by a restart');
  // the step that was running when the process died was re-entered by the new one
  const running = atKill.steps.find((x: any) => x.state === 'running')?.name;
  if (running) expect(reentered(s.output())).toContain(running);
  const recorded = job.steps.find((x: any) => x.name === 'stop').detail.replicas;
  expect(recorded).toBe(2);
  expect((await inspect(KILL)).Spec.Mode.Replicated.Replicas).toBe(recorded);
  await waitRunning(KILL, recorded);
  // no helper left behind (the sweep runs right after the job ends)
  await until(async () => (await helpersOf(jobId)).length === 0, 15_000, 'helpers removed');
  // every archive helper of the job was created exactly once: no (node, volume, date) uploaded twice
  const prefix = `swarm-utils-${instanceOf(s)}-${jobId}-archive-`;
  const creates = await helperCreates(prefix, since);
  expect(creates.sort()).toEqual([`${prefix}0`, `${prefix}1`]);
  expect(job.result.archives.map((a: any) => a.node).sort()).toEqual(['su-worker-1', 'su-worker-2']);
  const keys = await listKeys();
  for (const a of job.result.archives) expect(keys.filter((k) => k === a.key)).toHaveLength(1);
  expectNoSecret(job);
}

/** names of the steps the server's log says it re-entered after a restart */
const reentered = (output: string): string[] =>
  output
    .split('\n')
    .filter((l) => l.includes('step re-entered after restart'))
    .map((l) => JSON.parse(l).step as string);

async function pollJob(jobId: number, cond: (job: any) => Promise<boolean> | boolean, ms = 120_000): Promise<any> {
  const end = Date.now() + ms;
  for (;;) {
    const { json } = await s.api('GET', `/jobs/${jobId}`);
    if (await cond(json)) return json;
    if (['succeeded', 'failed', 'canceled'].includes(json.state)) throw new Error(`job ended before the kill point: ${JSON.stringify(json)}`);
    if (Date.now() > end) throw new Error(`kill point not reached: ${JSON.stringify(json)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function until(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** helper services of this server's job (another installation's job may carry the same id) */
async function helpersOf(jobId: number): Promise<string[]> {
  const list = await manager.listServices({ filters: { label: [`swarm-utils.helper=${jobId}`] } });
  const prefix = `swarm-utils-${instanceOf(s)}-${jobId}-`;
  return list.map((x: any) => x.Spec.Name as string).filter((n) => n.startsWith(prefix));
}

/** names of the services created since `since` whose name starts with `prefix` (Docker's event log) */
async function helperCreates(prefix: string, since: number): Promise<string[]> {
  const stream = (await manager.getEvents({
    since,
    until: Math.ceil(Date.now() / 1000) + 1,
    filters: { type: ['service'], event: ['create'] },
  } as any)) as unknown as NodeJS.ReadableStream;
  let text = '';
  for await (const chunk of stream) text += String(chunk);
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line).Actor?.Attributes?.name as string)
    .filter((name) => name?.startsWith(prefix));
}

function expectNoSecret(x: unknown): void {
  expect(JSON.stringify(x)).not.toContain(SECRET);
}

async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '10.77.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function listKeys(): Promise<string[]> {
  const out = await s3.send(new ListObjectsV2Command({ Bucket: S3.bucket, Prefix: `${PREFIX}/` }));
  return (out.Contents ?? []).map((o) => o.Key!);
}

/** the archive's files: gunzip, then a small ustar reader (regular files only) */
async function download(key: string): Promise<Map<string, Buffer>> {
  const out = await s3.send(new GetObjectCommand({ Bucket: S3.bucket, Key: key }));
  return untar(zlib.gunzipSync(Buffer.from(await out.Body!.transformToByteArray())));
}

function untar(buf: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  let longName: string | null = null;
  for (let off = 0; off + 512 <= buf.length; ) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const field = (a: number, b: number) => h.subarray(a, b).toString('utf8').replace(/\0[\s\S]*$/, '');
    const size = parseInt(field(124, 136).trim() || '0', 8);
    const type = field(156, 157) || '0';
    const prefix = field(257, 262) === 'ustar' ? field(345, 500) : '';
    let name = prefix ? `${prefix}/${field(0, 100)}` : field(0, 100);
    const body = buf.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === 'L') {
      longName = body.toString('utf8').replace(/\0[\s\S]*$/, '');
      continue;
    }
    if (longName) [name, longName] = [longName, null];
    if (type === '0') files.set(name.replace(/^\.\//, ''), Buffer.from(body));
  }
  return files;
}
