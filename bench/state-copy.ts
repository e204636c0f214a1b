/**
 * The cost of the state copy (README "Losing its manager") for a database of N finished backup jobs
 * (default 10,000, each with its six steps):
 *  1. one copy, by phase: SQLite's online backup, secrets taken out and the file rebuilt, gzip, and the
 *     write to the bucket (the test swarm's s3rver when it answers, else an object store in memory);
 *  2. what the copies add to a stop=true backup: the backup's steps through the engine (fake Docker port,
 *     no real waits), first without the copy (the baseline), then with it; the copies it made and the ratio.
 * Run: bash test/node.sh npx tsx bench/state-copy.ts [jobs] [rounds]
 */
import fs from 'node:fs';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import Database from 'better-sqlite3';
import { openDb, type Db } from '../src/db/index.js';
import { insertJob } from '../src/db/jobs.js';
import { Worker } from '../src/engine/worker.js';
import type { JobKind, StepDef } from '../src/engine/types.js';
import { RESOLVE, type Resolved } from '../src/jobs/backup/resolve.js';
import { START, STOP, start, stop } from '../src/jobs/backup/scale.js';
import { loadConfig } from '../src/config.js';
import { BucketGate } from '../src/state/gate.js';
import { stripSecrets } from '../src/state/snapshot.js';
import { type StateStore, createStateStore } from '../src/state/store.js';
import type { ServiceInfo, TaskInfo } from '../src/swarm/port.js';
import { captureLog, fakeDocker, makeDeps, tempDbPath } from '../test/helpers/engine-fixture.js';
import { memoryStore } from '../test/helpers/state-fixture.js';

const jobs = Number(process.argv[2] ?? 10_000);
const rounds = Number(process.argv[3] ?? 5);
const gzip = promisify(zlib.gzip);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** a database of `n` finished stop=true backups, as the engine writes them */
function history(n: number): { db: Db; path: string } {
  const path = tempDbPath();
  const db = openDb(path);
  db.prepare("INSERT INTO meta (key, value) VALUES ('instance', 'bench1')").run();
  const step = db.prepare('INSERT INTO steps (job_id, idx, name, state, always, started_at, finished_at, detail, output) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
  const finish = db.prepare("UPDATE jobs SET state = 'succeeded', started_at = ?, finished_at = ?, result = ? WHERE id = ?");
  db.transaction(() => {
    for (let i = 0; i < n; i++) {
      const t = Date.now() - (n - i) * 60_000;
      const svc = `db-${i % 40}`;
      const job = insertJob(db, { type: 'backup', targetKind: 'service', target: svc, source: i % 3 ? 'cron' : 'api', locks: [`backup_service_${svc}`], requester: 'abcdef012345' }, t);
      const key = `prod/worker-${i % 5}_${svc}-data_2026-11-${String((i % 28) + 1).padStart(2, '0')}T03-00-00Z.tar.gz`;
      const resolved = { serviceId: `svc${i % 40}xxxxxxxxxxxxxxxxxxxx`, service: svc, stop: true, stamp: '2026-11-27T03-00-00Z', volumes: [`${svc}-data`],
        tasks: [{ id: `task${i}xxxxxxxxxxxxxxxxxxxx`, nodeId: `node${i % 5}xxxxxxxxxxxxxxxxxxxx`, node: `worker-${i % 5}`, containerId: `${'c'.repeat(64)}` }],
        pairs: [{ index: 0, nodeId: `node${i % 5}xxxxxxxxxxxxxxxxxxxx`, node: `worker-${i % 5}`, volume: `${svc}-data`, filename: key.split('/')[1], key }] };
      const rows: [string, number, object, string][] = [
        ['resolve', 0, resolved, `1 task(s) on worker-${i % 5}; volumes: ${svc}-data`],
        ['exec', 0, { containers: [{ node: `worker-${i % 5}`, container: 'c'.repeat(64), exitCode: 0 }] }, `[worker-${i % 5} cccccccccccc] pg_dump: dumped 1834 rows`],
        ['stop', 0, { replicas: 1, startTimeoutMs: 600000, recordedAt: new Date(t).toISOString() }, `scaled ${svc} from 1 to 0; no task runs`],
        ['archive', 0, { done: { 0: { node: `worker-${i % 5}`, volume: `${svc}-data`, key, finishedAt: new Date(t).toISOString() } } }, `1 archive(s) uploaded\n[worker-${i % 5} ${svc}-data] backup: uploaded ${key}`],
        ['restore', 1, { replicas: 1, scaled: true }, `${svc} runs 1 replica(s) again`],
        ['verify', 0, {}, `1 object(s) verified`],
      ];
      rows.forEach(([name, always, detail, output], idx) => step.run(job.id, idx, name, 'done', always, t, t + 1000, JSON.stringify(detail), output));
      finish.run(t, t + 20_000, JSON.stringify({ archives: [{ node: `worker-${i % 5}`, volume: `${svc}-data`, key, size: 48213 }] }), job.id);
    }
  })();
  return { db, path };
}

/** the test swarm's s3rver when it answers, else null */
async function s3rver(): Promise<StateStore | null> {
  const r = loadConfig({
    SWARM_UTILS_S3_DOMAIN: '10.77.0.1:9000', SWARM_UTILS_S3_HTTPS: 'false', SWARM_UTILS_S3_BUCKET_NAME: 'swarm-utils-test',
    SWARM_UTILS_S3_ACCESS_KEY: 'S3RVER', SWARM_UTILS_S3_SECRET_ACCESS_KEY: 'S3RVER', SWARM_UTILS_S3_PATH: `bench-state-${process.pid}`,
  });
  if (!r.ok) return null;
  const store = createStateStore(r.config.s3);
  try {
    await store.head(AbortSignal.timeout(2000));
    return store;
  } catch {
    store.close();
    return null;
  }
}

/** one copy by phase, the way snapshot() makes it */
async function phases(db: Db, dir: string, store: StateStore) {
  const file = `${dir}/bench-copy.db`;
  const t0 = performance.now();
  await db.backup(file);
  const t1 = performance.now();
  const copy = new Database(file);
  copy.pragma('journal_mode = DELETE');
  copy.pragma('secure_delete = ON');
  stripSecrets(copy);
  copy.exec('VACUUM');
  copy.close();
  const t2 = performance.now();
  const raw = fs.readFileSync(file);
  const body = await gzip(raw, { level: 1 });
  const t3 = performance.now();
  await store.put(body, { generation: 1, writer: 'bench', installation: 'bench1' }, { etag: (await store.head())?.etag ?? null });
  const t4 = performance.now();
  fs.rmSync(file, { force: true });
  return { backup: t1 - t0, strip: t2 - t1, gzip: t3 - t2, put: t4 - t3, total: t4 - t0, raw: raw.length, gz: body.length };
}

/** one stop=true backup (resolve, stop, archive, restore) through the engine on the fake swarm; its time and the copies made */
async function backupRun(path: string, store: StateStore | null): Promise<{ ms: number; copies: number }> {
  const db = openDb(path);
  const svc = { version: 1, replicas: 2 };
  const info = (): ServiceInfo => ({
    id: 'svc-web', name: 'web', version: svc.version, labels: {}, mode: 'replicated', replicas: svc.replicas, image: 'app:v1', forceUpdate: 0,
    updateStatus: null, createdAt: '', updatedAt: '', spec: { Name: 'web', Mode: { Replicated: { Replicas: svc.replicas } } },
  });
  const task = (i: number): TaskInfo => ({ id: `t${i}`, serviceId: 'svc-web', nodeId: 'node-a', state: 'running', desiredState: 'running', containerId: `c${i}`,
    error: null, message: null, exitCode: null, image: '', serviceVersion: null, createdAt: '', updatedAt: '' });
  let copies = 0;
  const docker = fakeDocker({
    getService: async () => info(),
    listTasks: async () => Array.from({ length: svc.replicas }, (_, i) => task(i)),
    updateService: async (_id, _v, spec) => {
      svc.replicas = (spec as { Mode: { Replicated: { Replicas: number } } }).Mode.Replicated.Replicas;
      svc.version++;
    },
    createHelper: async (spec) => ({ id: `h-${spec.name}`, name: spec.name, jobId: spec.jobId }),
    waitHelper: async () => ({ exitCode: 0, state: 'complete', error: null, output: 'uploaded' }),
  });
  const resolved: Resolved = { serviceId: 'svc-web', service: 'web', stop: true, stamp: 's', volumes: ['data'],
    tasks: [{ id: 't0', nodeId: 'node-a', node: 'a', containerId: 'c0' }], pairs: [{ index: 0, nodeId: 'node-a', node: 'a', volume: 'data', filename: 'f', key: 'k' }] };
  const steps: StepDef[] = [
    { ...RESOLVE, run: async () => ({ detail: resolved }) },
    { ...STOP, run: stop },
    { name: 'archive', run: async (ctx) => {
      const ref = await ctx.deps.docker.createHelper({ name: `swarm-utils-bench1-${ctx.job.id}-archive-0`, jobId: ctx.job.id, nodeId: 'node-a', image: 'backup', env: {}, mounts: [] });
      await ctx.deps.docker.waitHelper(ref, { timeoutMs: 1000 });
      await ctx.deps.docker.removeService(ref.id);
      return { detail: { done: { 0: { key: 'k' } } } };
    } },
    { ...START, always: true, run: start },
  ];
  const deps = makeDeps(db, docker, undefined, captureLog().logger);
  let gate: BucketGate | null = null;
  if (store) {
    const counting: StateStore = { ...store, key: store.key, conditional: null, put: async (...args) => (copies++, store.put(...args)) };
    gate = new BucketGate({ db, store: counting, log: deps.log, docker, intervalMs: 3_600_000, dir: path.replace(/\/test\.db$/, ''),
      base: await store.head(), restored: null, onFenced: (m) => { throw new Error(m); } });
    // the state as it stands before the backup is in the bucket already (the periodic copy)
    await gate.flush();
    copies = 0;
    deps.state = gate;
  }
  const kind: JobKind = { type: 'backup', locks: (t) => [`backup_service_${t.name}`], steps: () => steps };
  const worker = new Worker(deps, { backup: kind }, { concurrency: 1, lockTimeoutMs: 60_000, retentionDays: 3650 });
  await worker.start();
  const t0 = performance.now();
  const job = insertJob(db, { type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: ['backup_service_web'] });
  worker.wake();
  const done = await worker.waitFor(job.id, 600_000);
  const ms = performance.now() - t0;
  if (done?.state !== 'succeeded') throw new Error(`the bench backup ended ${done?.state}: ${done?.errorMessage}`);
  await worker.stop(100);
  gate?.stop();
  db.close();
  return { ms, copies };
}

const { db, path } = history(jobs);
process.on('exit', () => fs.rmSync(path.replace(/\/test\.db$/, ''), { recursive: true, force: true }));
const real = await s3rver();
const store = real ?? memoryStore();
console.log(`database: ${jobs} finished backups, ${(fs.statSync(path).size / 1e6).toFixed(1)} MB; bucket: ${real ? 's3rver of the test swarm' : 'in memory (s3rver does not answer)'}`);
const dir = path.replace(/\/test\.db$/, '');
const runs: Awaited<ReturnType<typeof phases>>[] = [];
for (let i = 0; i < rounds; i++) runs.push(await phases(db, dir, store));
const m = (k: keyof Awaited<ReturnType<typeof phases>>) => median(runs.map((r) => r[k]));
console.log(
  `one copy (median of ${rounds}): ${m('total').toFixed(0)} ms = backup ${m('backup').toFixed(0)} + secrets out and rebuilt ${m('strip').toFixed(0)} + gzip ${m('gzip').toFixed(0)} + write ${m('put').toFixed(0)} ms; ` +
    `${(m('raw') / 1e6).toFixed(1)} MB → ${(m('gz') / 1e6).toFixed(2)} MB compressed`,
);
db.close();

const without: number[] = [];
const withCopy: number[] = [];
let copies = 0;
for (let i = 0; i < rounds; i++) {
  without.push((await backupRun(path, null)).ms);
  const r = await backupRun(path, store);
  withCopy.push(r.ms);
  copies = r.copies;
}
const base = median(without);
const gated = median(withCopy);
console.log(`stop=true backup through the engine, Docker faked (median of ${rounds}): ${base.toFixed(0)} ms without the copy (baseline), ${gated.toFixed(0)} ms with it (${copies} copies before its actions)`);
console.log(`added by the copies: ${(gated - base).toFixed(0)} ms per backup; ratio with/without: ${(gated / base).toFixed(1)}`);
store.close();
