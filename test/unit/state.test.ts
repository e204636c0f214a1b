// The copy of the database in the bucket (README "Losing its manager"), against a real SQLite file and an
// object store in memory: what the copy holds and leaves out, when it is made (before every action of a
// step through the Docker port), which generation wins, the takeover at start-up, the quorum wait.
// The real store and the real swarm: test/cluster/takeover.test.ts.
import fs from 'node:fs';
import { describe, it, expect, afterEach } from 'vitest';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { instanceId, openDb, type Db } from '../../src/db/index.js';
import { getJob, insertJob, markRunning } from '../../src/db/jobs.js';
import { insertSteps, stepsOf } from '../../src/db/steps.js';
import { takeLocks } from '../../src/db/locks.js';
import { requesterKey } from '../../src/db/meta.js';
import { localGeneration, trackChanges } from '../../src/db/state.js';
import { Worker } from '../../src/engine/worker.js';
import { sleep } from '../../src/engine/limits.js';
import { AppError } from '../../src/errors.js';
import type { JobKind, StepDef } from '../../src/engine/types.js';
import { RESOLVE, type Resolved } from '../../src/jobs/backup/resolve.js';
import { START, STOP, start, stop } from '../../src/jobs/backup/scale.js';
import type { DockerPort, ServiceInfo, TaskInfo } from '../../src/swarm/port.js';
import { isNoQuorum } from '../../src/swarm/quorum.js';
import { BucketGate } from '../../src/state/gate.js';
import { snapshot } from '../../src/state/snapshot.js';
import { stateKey } from '../../src/state/store.js';
import { inspectLocal, takeOver } from '../../src/state/takeover.js';
import { captureLog, fakeDocker, makeDeps, tempDbPath, testConfig } from '../helpers/engine-fixture.js';
import { fakeService } from '../helpers/api-fixture.js';
import { type MemoryStore, memoryStore, openCopy } from '../helpers/state-fixture.js';

const gzip = promisify(zlib.gzip);
const NO_LEADER = 'rpc error: code = Unknown desc = The swarm does not have a leader. It\'s possible that too few managers are online. Make sure more than half of the managers are online.';

const workers: Worker[] = [];
const gates: BucketGate[] = [];
afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop(200);
  for (const g of gates.splice(0)) g.stop();
});

const until = async (fn: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(20);
  }
};

function gateFor(db: Db, store: MemoryStore, opts: { base?: Parameters<typeof store.plant>[1] & { etag: string | null; size: number }; log?: ReturnType<typeof captureLog>; docker?: Pick<DockerPort, 'listNodes'>; intervalMs?: number } = {}) {
  const fenced: string[] = [];
  const gate = new BucketGate({
    db,
    store,
    log: (opts.log ?? captureLog()).logger,
    docker: opts.docker ?? { listNodes: async () => [] },
    intervalMs: opts.intervalMs ?? 60_000,
    dir: fs.mkdtempSync(`${tempDbPath()}-copy`),
    base: opts.base ?? null,
    restored: null,
    onFenced: (m) => void fenced.push(m),
    quorumPollMs: 50,
  });
  gates.push(gate);
  return { gate, fenced };
}

/** one replicated service in a fake swarm; every change records how many copies the store had at that moment */
function fakeSwarm(store: MemoryStore, replicas: number) {
  const svc = { version: 10, replicas, noLeader: 0 };
  const changes: { replicas: number; copiesBefore: number; lastCopy: Buffer | null }[] = [];
  const info = (): ServiceInfo => ({
    ...fakeService('web'),
    id: 'svc-web',
    version: svc.version,
    replicas: svc.replicas,
    spec: { Name: 'web', Mode: { Replicated: { Replicas: svc.replicas } } },
  });
  const task = (i: number): TaskInfo => ({
    id: `t${i}`, serviceId: 'svc-web', nodeId: 'node-a', state: 'running', desiredState: 'running', containerId: `c${i}`,
    error: null, message: null, exitCode: null, image: '', serviceVersion: null, createdAt: '', updatedAt: '',
  });
  const docker = fakeDocker({
    getService: async () => info(),
    listTasks: async () => Array.from({ length: svc.replicas }, (_, i) => task(i)),
    updateService: async (_id, version, spec) => {
      if (svc.noLeader > 0) {
        svc.noLeader--;
        throw new AppError('DOCKER_ERROR', NO_LEADER);
      }
      if (version !== svc.version) throw new AppError('DOCKER_ERROR', 'update out of sequence');
      svc.replicas = (spec as { Mode: { Replicated: { Replicas: number } } }).Mode.Replicated.Replicas;
      svc.version++;
      changes.push({ replicas: svc.replicas, copiesBefore: store.puts.length, lastCopy: store.object?.body ?? null });
    },
  });
  return { svc, changes, docker };
}

const resolved: Resolved = {
  serviceId: 'svc-web',
  service: 'web',
  stop: true,
  tasks: [{ id: 't0', nodeId: 'node-a', node: 'a', containerId: 'c0' }],
  volumes: ['data'],
  stamp: 's',
  pairs: [{ index: 0, nodeId: 'node-a', node: 'a', volume: 'data', filename: 'f', key: 'k' }],
};

function backupLike(middle: StepDef): StepDef[] {
  return [{ ...RESOLVE, run: async () => ({ detail: resolved }) }, { ...STOP, run: stop }, middle, { ...START, always: true, run: start }];
}

function setup(steps: StepDef[], opts: { store?: MemoryStore; docker: DockerPort; dbPath?: string; restored?: BucketGate['takeover'] }) {
  const db = openDb(opts.dbPath ?? tempDbPath());
  const store = opts.store ?? memoryStore();
  const log = captureLog();
  const fenced: string[] = [];
  const deps = makeDeps(db, opts.docker, testConfig(), log.logger);
  const gate = new BucketGate({
    db, store, log: log.logger, docker: opts.docker, intervalMs: 60_000, dir: fs.mkdtempSync(`${tempDbPath()}-copy`),
    base: store.object?.head ?? null, restored: opts.restored ?? null, onFenced: (m) => void fenced.push(m), quorumPollMs: 50,
  });
  gates.push(gate);
  deps.state = gate;
  const kind: JobKind = { type: 'backup', locks: (t) => [`backup_service_${t.name}`], steps: () => steps };
  const worker = new Worker(deps, { backup: kind }, { concurrency: 2, lockTimeoutMs: 10_000, retentionDays: 30 });
  workers.push(worker);
  const submit = () => insertJob(db, { type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: ['backup_service_web'] });
  return { db, deps, gate, worker, submit, log, store, fenced };
}

describe('the copy', () => {
  it('holds the jobs and steps, but no job credentials and no requester key, in no page of the file', async () => {
    const db = openDb(tempDbPath());
    const instance = instanceId(db);
    const key = requesterKey(db).toString('hex');
    const password = 'registry-password-do-not-copy';
    const job = insertJob(db, {
      type: 'update', targetKind: 'service', target: 'web', source: 'api', locks: ['update_service_web'],
      secrets: { registryAuth: { url: 'r.example', username: 'ci-user-do-not-copy', password } },
    });
    const body = await snapshot(db, fs.mkdtempSync(`${tempDbPath()}-copy`));
    const { db: copy, raw } = await openCopy(body);
    expect(raw.includes(password)).toBe(false);
    expect(raw.includes('ci-user-do-not-copy')).toBe(false);
    expect(raw.includes(key)).toBe(false);
    expect(JSON.parse(copy.prepare('SELECT secrets FROM jobs WHERE id = ?').pluck().get(job.id) as string)).toEqual({ $omitted: ['registryAuth'] });
    expect(copy.prepare("SELECT value FROM meta WHERE key = 'requester_key'").pluck().get()).toBeUndefined();
    expect(copy.prepare("SELECT value FROM meta WHERE key = 'instance'").pluck().get()).toBe(instance);
    copy.close();
    // the live database is untouched
    expect(getJob(db, job.id)!.secrets).toEqual({ registryAuth: { url: 'r.example', username: 'ci-user-do-not-copy', password } });
    expect(requesterKey(db).toString('hex')).toBe(key);
  });

  it('the key is <SWARM_UTILS_S3_PATH>/.swarm-utils/state.db.gz without doubled slashes', () => {
    expect(stateKey('')).toBe('.swarm-utils/state.db.gz');
    expect(stateKey('/team/prod/')).toBe('team/prod/.swarm-utils/state.db.gz');
  });

  it('counts changes of state tables only (a readiness probe is no change)', () => {
    const db = openDb(tempDbPath());
    const changes = trackChanges(db);
    const n0 = changes();
    db.exec('CREATE TABLE IF NOT EXISTS readiness_probe (at INTEGER)');
    db.prepare('INSERT INTO readiness_probe (at) VALUES (1)').run();
    expect(changes()).toBe(n0);
    insertJob(db, { type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: [] });
    expect(changes()).toBeGreaterThan(n0);
  });
});

describe('copied before every action of a step', () => {
  it('stop=true: the replica count and the hold are in the bucket before the service is scaled down, and the state again before it is scaled up', async () => {
    const store = memoryStore();
    const swarm = fakeSwarm(store, 3);
    const { worker, submit, db } = setup(backupLike({ name: 'archive', run: async () => ({ output: 'archived' }) }), { store, docker: swarm.docker });
    const job = submit();
    await worker.start();
    expect((await worker.waitFor(job.id, 5000))!.state).toBe('succeeded');
    expect(swarm.changes.map((c) => c.replicas)).toEqual([0, 3]);
    const [down, up] = swarm.changes;
    expect(down!.copiesBefore).toBeGreaterThan(0);
    const { db: atDown } = await openCopy(down!.lastCopy!);
    expect(atDown.prepare("SELECT detail FROM steps WHERE job_id = ? AND name = 'stop'").pluck().get(job.id)).toContain('"replicas":3');
    expect(atDown.prepare("SELECT state, replicas, undo_step FROM service_holds WHERE job_id = ?").get(job.id)).toEqual({ state: 'held', replicas: 3, undo_step: 'start' });
    atDown.close();
    expect(up!.copiesBefore).toBeGreaterThan(down!.copiesBefore);
    const { db: atUp } = await openCopy(up!.lastCopy!);
    expect(atUp.prepare("SELECT state FROM steps WHERE job_id = ? AND name = 'archive'").pluck().get(job.id)).toBe('done');
    atUp.close();
    // generations go up by one per copy; the local database knows the last one
    expect(store.puts.map((p) => p.meta.generation)).toEqual(store.puts.map((_, i) => i + 1));
    expect(localGeneration(db)).toBe(store.puts.length);
  });

  it('the bucket down: a step does not act (S3_ERROR) and its compensation still does', async () => {
    const store = memoryStore();
    const swarm = fakeSwarm(store, 2);
    let acted = false;
    const { worker, submit, db } = setup(
      [{ name: 'act', run: async (ctx) => {
        store.failing = true;
        await ctx.deps.docker.updateService('svc-web', 10, { Mode: { Replicated: { Replicas: 5 } } });
        acted = true;
      } },
      { name: 'undo', always: true, run: async (ctx) => {
        await ctx.deps.docker.updateService('svc-web', 10, { Mode: { Replicated: { Replicas: 2 } } });
      } }],
      { store, docker: swarm.docker },
    );
    const job = submit();
    await worker.start();
    const done = (await worker.waitFor(job.id, 5000))!;
    expect([done.state, done.errorCode]).toEqual(['failed', 'S3_ERROR']);
    expect(done.errorMessage).toMatch(/could not be copied to the bucket before acting, so nothing was done/);
    expect(acted).toBe(false);
    // the compensation acted without a copy
    expect(swarm.changes.map((c) => c.replicas)).toEqual([2]);
    expect(stepsOf(db, job.id).map((s) => s.state)).toEqual(['failed', 'done']);
  });

  it('nothing changed since the last copy: no new copy before an action', async () => {
    const store = memoryStore();
    const db = openDb(tempDbPath());
    const { gate } = gateFor(db, store);
    await gate.beforeAct({ strict: true });
    await gate.beforeAct({ strict: true });
    expect(store.puts).toHaveLength(1);
    insertJob(db, { type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: [] });
    await gate.beforeAct({ strict: true });
    expect(store.puts).toHaveLength(2);
  });

  it('a job resumed after a takeover records it in its result; a step that needs credentials the copy left out fails clearly', async () => {
    const store = memoryStore();
    const swarm = fakeSwarm(store, 1);
    const dbPath = tempDbPath();
    const first = openDb(dbPath);
    const job = insertJob(first, {
      type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: ['backup_service_web'],
      secrets: { registryAuth: { url: 'r', username: 'u', password: 'p' } },
    });
    takeLocks(first, job.locks, job.id);
    markRunning(first, job.id, 'lost-manager');
    insertSteps(first, job.id, [{ name: 'read' }, { name: 'credentials' }, { name: 'undo', always: true }]);
    // the lost manager's copy, restored here from the bucket
    store.plant(await snapshot(first, fs.mkdtempSync(`${dbPath}-copy`)), { generation: 4, writer: 'lost', installation: 'x' });
    first.close();
    const restoredPath = tempDbPath();
    const taken = await takeOver({ dbPath: restoredPath, store, log: captureLog().logger });
    expect(taken.restored).toMatchObject({ generation: 4, from: 'lost' });
    const ran: string[] = [];
    const { worker, db } = setup(
      [
        { name: 'read', run: async (ctx) => void ran.push(`read ${ctx.job.target}`) },
        { name: 'credentials', run: async (ctx) => void ran.push(`auth ${JSON.stringify(ctx.job.secrets?.registryAuth)}`) },
        { name: 'undo', always: true, run: async () => void ran.push('undo') },
      ],
      { store, docker: swarm.docker, dbPath: restoredPath, restored: taken.restored },
    );
    await worker.start();
    const done = (await worker.waitFor(job.id, 5000))!;
    expect(ran).toEqual(['read web', 'undo']);
    expect([done.state, done.errorCode]).toEqual(['failed', 'UNSUPPORTED']);
    expect(done.errorMessage).toMatch(/credentials \(registryAuth\) were not kept in the bucket's copy.*submit the job again/);
    expect(done.result).toMatchObject({ takeover: { generation: 4, from: 'lost', previousOwner: 'lost-manager' } });
    expect(stepsOf(db, job.id).map((s) => s.state)).toEqual(['done', 'failed', 'done']);
  });
});

describe('one writer', () => {
  it('another process wrote a newer generation: fenced before acting, the action is not made', async () => {
    for (const conditional of [false, true]) {
      const store = memoryStore({ conditional });
      const db = openDb(tempDbPath());
      const { gate, fenced } = gateFor(db, store);
      await gate.beforeAct({ strict: true });
      expect(store.puts.at(-1)!.meta.generation).toBe(1);
      // another instance restored generation 1 and copied its own
      store.plant(Buffer.from('theirs'), { generation: 2, writer: 'other', installation: 'i' });
      insertJob(db, { type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: [] });
      const err = await gate.beforeAct({ strict: false }).then(() => null, (e: unknown) => e as AppError);
      expect(err?.code).toBe('SHUTTING_DOWN');
      expect(fenced).toHaveLength(1);
      expect(fenced[0]).toMatch(/another swarm-utils instance took over: .* generation 2 \(written by process other\), this process is at 1/);
      expect(store.object!.body.toString()).toBe('theirs');
      // from then on nothing acts, not even compensation
      expect((await gate.beforeAct({ strict: false }).catch((e: AppError) => e))?.code).toBe('SHUTTING_DOWN');
    }
  });

  it('a write that races ours: with conditional writes the loser sees it at once', async () => {
    const store = memoryStore({ conditional: true });
    const db = openDb(tempDbPath());
    const { gate, fenced } = gateFor(db, store);
    await gate.beforeAct({ strict: true });
    const head = store.head.bind(store);
    // the other instance writes right after our read
    store.head = async () => {
      const h = await head();
      store.head = head;
      store.plant(Buffer.from('theirs'), { generation: 5, writer: 'other', installation: 'i' });
      return h;
    };
    insertJob(db, { type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: [] });
    expect((await gate.beforeAct({ strict: true }).catch((e: AppError) => e))?.code).toBe('SHUTTING_DOWN');
    expect(fenced).toHaveLength(1);
    expect(store.object!.body.toString()).toBe('theirs');
  });

  it('the object found at start-up and older generations of other processes are overwritten, never obeyed', async () => {
    const store = memoryStore();
    store.plant(Buffer.from('lost manager'), { generation: 7, writer: 'lost', installation: 'i' });
    const db = openDb(tempDbPath());
    db.prepare("INSERT INTO meta (key, value) VALUES ('state_generation', '7')").run();
    const { gate, fenced } = gateFor(db, store, { base: store.object!.head });
    await gate.beforeAct({ strict: true });
    expect(store.object!.head).toMatchObject({ generation: 8, writer: gate.writer });
    store.plant(Buffer.from('a stale process'), { generation: 3, writer: 'stale', installation: 'i' });
    insertJob(db, { type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: [] });
    await gate.beforeAct({ strict: true });
    expect(store.object!.head).toMatchObject({ generation: 9, writer: gate.writer });
    expect(fenced).toEqual([]);
  });

  it('the periodic check fences an idle process while a job runs, without a change to copy', async () => {
    const store = memoryStore();
    const db = openDb(tempDbPath());
    const job = insertJob(db, { type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: [] });
    markRunning(db, job.id, 'me');
    const { gate, fenced } = gateFor(db, store, { intervalMs: 50 });
    await gate.flush();
    gate.start();
    await sleep(200);
    expect(fenced).toEqual([]);
    const copies = store.puts.length;
    store.plant(Buffer.from('theirs'), { generation: 2, writer: 'other', installation: 'i' });
    await until(() => fenced.length === 1);
    expect(store.puts.length).toBe(copies);
  });
});

describe('takeover at start-up', () => {
  async function copyOf(setupDb: (db: Db) => void, generation: number) {
    const src = openDb(tempDbPath());
    setupDb(src);
    src.prepare("INSERT INTO meta (key, value) VALUES ('state_generation', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(String(generation));
    const body = await snapshot(src, fs.mkdtempSync(`${tempDbPath()}-copy`));
    const installation = src.prepare("SELECT value FROM meta WHERE key = 'instance'").pluck().get() as string | undefined;
    src.close();
    return { body, installation: installation ?? '' };
  }

  it('no local database: the bucket’s copy is restored (a new requester key, not the old one)', async () => {
    const store = memoryStore();
    let job = 0;
    const { body } = await copyOf((db) => {
      requesterKey(db);
      job = insertJob(db, { type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: ['backup_service_web'] }).id;
      markRunning(db, job, 'lost');
    }, 3);
    store.plant(body, { generation: 3, writer: 'lost', installation: 'x' });
    const dbPath = tempDbPath();
    const t = await takeOver({ dbPath, store, log: captureLog().logger });
    expect(t.restored).toMatchObject({ generation: 3, from: 'lost' });
    const db = openDb(dbPath);
    expect(getJob(db, job)).toMatchObject({ state: 'running', owner: 'lost' });
    expect(localGeneration(db)).toBe(3);
    expect(requesterKey(db)).toHaveLength(32);
  });

  it('an older local database is replaced and kept aside; a current one is kept; an empty bucket changes nothing', async () => {
    const store = memoryStore();
    const dbPath = tempDbPath();
    const local = openDb(dbPath);
    local.prepare("INSERT INTO meta (key, value) VALUES ('state_generation', '2')").run();
    insertJob(local, { type: 'clean', targetKind: 'node', target: 'n1', source: 'api', locks: [] });
    local.close();
    expect(await takeOver({ dbPath, store, log: captureLog().logger })).toEqual({ base: null, restored: null });

    const newer = await copyOf((db) => void insertJob(db, { type: 'backup', targetKind: 'service', target: 'other', source: 'api', locks: [] }), 5);
    store.plant(newer.body, { generation: 5, writer: 'w', installation: '' });
    const t = await takeOver({ dbPath, store, log: captureLog().logger });
    expect(t.restored?.generation).toBe(5);
    const db = openDb(dbPath);
    expect(db.prepare('SELECT target FROM jobs').pluck().all()).toEqual(['other']);
    db.close();
    expect(inspectLocal(`${dbPath}.replaced`)).toMatchObject({ generation: 2, jobs: 1 });

    // now current: kept
    const again = await takeOver({ dbPath, store, log: captureLog().logger });
    expect(again.restored).toBeNull();
    expect(again.base?.generation).toBe(5);
  });

  it('a damaged copy stops the start-up and leaves the local file alone', async () => {
    const store = memoryStore();
    store.plant(await gzip(Buffer.from('not a database at all, but long enough to look like a file '.repeat(200))), { generation: 9, writer: 'w', installation: '' });
    const dbPath = tempDbPath();
    await expect(takeOver({ dbPath, store, log: captureLog().logger })).rejects.toThrow(/state copy .* (damaged|not a swarm-utils database)|file is not a database/);
    expect(fs.existsSync(dbPath)).toBe(false);
  });

  it('two installations on one S3 path: refused', async () => {
    const store = memoryStore();
    const dbPath = tempDbPath();
    const local = openDb(dbPath);
    local.prepare("INSERT INTO meta (key, value) VALUES ('state_generation', '8'), ('instance', 'aaaaaa') ON CONFLICT (key) DO UPDATE SET value = excluded.value").run();
    local.close();
    store.plant(Buffer.from('x'), { generation: 6, writer: 'w', installation: 'bbbbbb' });
    await expect(takeOver({ dbPath, store, log: captureLog().logger })).rejects.toThrow(/two installations must not share one SWARM_UTILS_S3_PATH/);
  });

  it('an `all` job of a label token that had no children yet fails (its grant cannot be checked without the old key); an admin’s goes on', async () => {
    const store = memoryStore();
    const ids: Record<string, number> = {};
    const { body } = await copyOf((db) => {
      ids.token = insertJob(db, { type: 'backup', targetKind: 'all', target: null, source: 'api', locks: [], requester: 'abc', requesterHash: 'ab'.repeat(32) }).id;
      ids.admin = insertJob(db, { type: 'backup', targetKind: 'all', target: null, source: 'api', locks: [], requesterHash: 'cd'.repeat(32), requesterAdmin: true }).id;
    }, 2);
    store.plant(body, { generation: 2, writer: 'w', installation: '' });
    const dbPath = tempDbPath();
    await takeOver({ dbPath, store, log: captureLog().logger });
    const db = openDb(dbPath);
    expect(getJob(db, ids.token!)).toMatchObject({ state: 'failed', errorCode: 'UNSUPPORTED' });
    expect(getJob(db, ids.token!)!.errorMessage).toMatch(/submit it again/);
    expect(getJob(db, ids.admin!)!.state).toBe('queued');
  });
});

describe('a manager cut off from the quorum', () => {
  it('knows Docker’s answer', () => {
    expect(isNoQuorum(new AppError('DOCKER_ERROR', NO_LEADER))).toBe(true);
    expect(isNoQuorum(new AppError('DOCKER_ERROR', 'rpc error: code = DeadlineExceeded desc = context deadline exceeded'))).toBe(true);
    expect(isNoQuorum(new AppError('DOCKER_ERROR', 'update out of sequence'))).toBe(false);
    expect(isNoQuorum(new AppError('TIMEOUT', 'Docker did not answer service.update within 30000 ms'))).toBe(false);
  });

  it('waits, logs it once, claims nothing meanwhile, and goes on when the swarm answers again', async () => {
    const store = memoryStore();
    const swarm = fakeSwarm(store, 1);
    swarm.svc.noLeader = 1;
    let answers = false;
    const docker = { ...swarm.docker, listNodes: async () => {
      if (!answers) throw new AppError('DOCKER_ERROR', NO_LEADER);
      return [];
    } };
    const { worker, submit, log, db, gate } = setup(backupLike({ name: 'archive', run: async () => ({ output: 'archived' }) }), { store, docker });
    const job = submit();
    await worker.start();
    await until(() => gate.waiting);
    const other = insertJob(db, { type: 'backup', targetKind: 'service', target: 'api', source: 'api', locks: ['backup_service_api'] });
    worker.wake();
    await sleep(400);
    expect(getJob(db, job.id)!.state).toBe('running');
    expect(getJob(db, other.id)!.state).toBe('queued');
    expect(log.text().match(/cut off from the swarm’s quorum/g)).toHaveLength(1);
    answers = true;
    expect((await worker.waitFor(job.id, 5000))!.state).toBe('succeeded');
    expect(swarm.changes.map((c) => c.replicas)).toEqual([0, 1]);
    expect(log.text()).toContain('the swarm answers again');
    await until(() => getJob(db, other.id)!.state !== 'queued');
  });
});
