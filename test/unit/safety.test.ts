// The engine at its edges, with a fake Docker port where that makes the paths exact: jobs written by an
// older version, typed details, engine errors, steps that never settle, compensation retries, shutdown,
// node prunes against scaled-down services, `all` parents, cron runs, one process per database file.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect, afterEach } from 'vitest';
import { z } from 'zod';
import { openDb, type Db } from '../../src/db/index.js';
import { getJob, insertJob, markRunning, type JobRow } from '../../src/db/jobs.js';
import { holdsOf } from '../../src/db/holds.js';
import { insertSteps, stepsOf } from '../../src/db/steps.js';
import { locksOf, takeLocks } from '../../src/db/locks.js';
import { cronRuns, claimSlot, setSlotJobs } from '../../src/db/cron.js';
import { acquireProcessLock } from '../../src/db/lockfile.js';
import { Worker } from '../../src/engine/worker.js';
import { cancelTree } from '../../src/engine/cancel.js';
import { createHolds } from '../../src/engine/holds.js';
import { sleep } from '../../src/engine/limits.js';
import { AppError } from '../../src/errors.js';
import { type Deps, type JobKind, type StepDef, defineStep, stepRef } from '../../src/engine/types.js';
import { RESOLVE, type Resolved } from '../../src/jobs/backup/resolve.js';
import { START, STOP, start, stop } from '../../src/jobs/backup/scale.js';
import type { DockerPort, HelperRef, ServiceInfo, TaskInfo } from '../../src/swarm/port.js';
import { helperName } from '../../src/swarm/helpers.js';
import { captureLog, fakeDocker, makeDeps, tempDbPath, testConfig } from '../helpers/engine-fixture.js';
import { apiFixture, fakeService } from '../helpers/api-fixture.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const workers: Worker[] = [];
afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop(200);
});

const until = async (fn: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(20);
  }
};

function kindWith(steps: StepDef[] | ((job: JobRow) => StepDef[]), extra: Partial<JobKind> = {}): JobKind {
  return { type: 'backup', locks: (t) => [`backup_service_${t.name}`], steps: typeof steps === 'function' ? steps : () => steps, ...extra };
}

function setup(kind: JobKind, opts: { env?: Record<string, string>; docker?: DockerPort; dbPath?: string; concurrency?: number } = {}) {
  const env = opts.env ?? {};
  const db = openDb(opts.dbPath ?? tempDbPath());
  const log = captureLog();
  const deps = makeDeps(db, opts.docker ?? fakeDocker(), testConfig(env), log.logger);
  const worker = new Worker(deps, { backup: kind, clean: { ...kind, type: 'clean' } }, {
    concurrency: opts.concurrency ?? 4,
    lockTimeoutMs: Number(env.SWARM_UTILS_LOCK_TIMEOUT ?? 10_000),
    retentionDays: 30,
  });
  workers.push(worker);
  const submit = (service: string, type: 'backup' | 'clean' = 'backup') =>
    insertJob(db, { type, targetKind: 'service', target: service, source: 'api', locks: kind.locks({ kind: 'service', name: service }) });
  return { db, deps, worker, submit, log };
}

/** a job left `running` by a dead process, with the step rows an older version recorded */
function crashedJob(db: Db, rows: { name: string; state?: 'pending' | 'running' | 'done'; always?: boolean; detail?: object }[]): JobRow {
  const job = insertJob(db, { type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: ['backup_service_web'] });
  takeLocks(db, job.locks, job.id);
  markRunning(db, job.id, 'dead-process');
  insertSteps(db, job.id, rows);
  rows.forEach((r, i) => {
    if (r.state) db.prepare('UPDATE steps SET state = ?, started_at = 1 WHERE job_id = ? AND idx = ?').run(r.state, job.id, i);
    if (r.detail) db.prepare('UPDATE steps SET detail = ? WHERE job_id = ? AND idx = ?').run(JSON.stringify(r.detail), job.id, i);
  });
  return getJob(db, job.id)!;
}

/** one replicated service in a fake swarm: scaling changes its replica count and spec version */
function fakeSwarm(replicas: number) {
  const svc = { version: 10, replicas, reachable: true };
  const updates: number[] = [];
  const helpers: HelperRef[] = [];
  const stopped: string[] = [];
  const info = (): ServiceInfo => ({
    ...fakeService('web'),
    id: 'svc-web',
    version: svc.version,
    replicas: svc.replicas,
    spec: { Name: 'web', Mode: { Replicated: { Replicas: svc.replicas } } },
  });
  const unreachable = () => new AppError('TIMEOUT', 'Docker did not answer within 100 ms');
  const task = (i: number): TaskInfo => ({
    id: `t${i}`, serviceId: 'svc-web', nodeId: 'node-a', state: 'running', desiredState: 'running', containerId: `c${i}`,
    error: null, message: null, exitCode: null, image: '', serviceVersion: null, createdAt: '', updatedAt: '',
  });
  const docker = fakeDocker({
    getService: async () => {
      if (!svc.reachable) throw unreachable();
      return info();
    },
    listTasks: async () => {
      if (!svc.reachable) throw unreachable();
      return Array.from({ length: svc.replicas }, (_, i) => task(i));
    },
    updateService: async (_id, version, spec) => {
      if (!svc.reachable) throw unreachable();
      if (version !== svc.version) throw new AppError('DOCKER_ERROR', 'update out of sequence');
      svc.replicas = (spec as { Mode: { Replicated: { Replicas: number } } }).Mode.Replicated.Replicas;
      svc.version++;
      updates.push(svc.replicas);
    },
    listHelpers: async (jobId) => {
      if (!svc.reachable) throw unreachable();
      return helpers.filter((h) => jobId === undefined || h.jobId === jobId);
    },
    stopHelper: async (ref) => {
      stopped.push(ref.name);
      helpers.splice(helpers.indexOf(ref), 1);
    },
  });
  return { svc, updates, helpers, stopped, docker };
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

/** the backup's real stop and start around a step of the test's own */
function backupLike(middle: StepDef): StepDef[] {
  return [
    { ...RESOLVE, run: async () => ({ detail: resolved }) },
    { ...STOP, run: stop },
    middle,
    { ...START, always: true, run: start },
  ];
}

describe('steps by name', () => {
  it('a job recorded with an older step list resumes by name: unknown rows skipped, a renamed step found by its alias, compensation runs', async () => {
    const ran: string[] = [];
    const step = (name: string, extra: Partial<StepDef> = {}): StepDef => ({ name, run: async () => void ran.push(name), ...extra });
    // this version: `prepare` was dropped, `restore` is now `start`, and a cleanup compensation was added
    const plan = [step('resolve'), step('archive'), step('start', { aliases: ['restore'], always: true }), step('verify'), step('cleanup', { always: true })];
    const { db, worker } = setup(kindWith(plan));
    const job = crashedJob(db, [
      { name: 'resolve', state: 'done' },
      { name: 'prepare', state: 'running' },
      { name: 'archive' },
      { name: 'restore', always: true },
      { name: 'verify' },
    ]);
    await worker.start();
    const done = (await worker.waitFor(job.id, 5000))!;
    expect(done.state).toBe('succeeded');
    expect(ran).toEqual(['archive', 'start', 'verify', 'cleanup']);
    const steps = stepsOf(db, job.id);
    expect(steps.map((s) => [s.name, s.state])).toEqual([
      ['resolve', 'done'],
      ['prepare', 'skipped'],
      ['archive', 'done'],
      ['restore', 'done'],
      ['verify', 'done'],
      ['cleanup', 'done'],
    ]);
    expect(steps[1]!.output).toContain('has no step "prepare"');
  });

  it('an older job failing in a step this version does not know still runs its compensation', async () => {
    const ran: string[] = [];
    const plan: StepDef[] = [
      { name: 'work', run: async () => { throw new AppError('EXEC_FAILED', 'exit 3'); } },
      { name: 'start', aliases: ['restore'], always: true, run: async () => void ran.push('start') },
    ];
    const { db, worker } = setup(kindWith(plan));
    const job = crashedJob(db, [{ name: 'gone', state: 'running' }, { name: 'work' }, { name: 'restore', always: true }]);
    await worker.start();
    const done = (await worker.waitFor(job.id, 5000))!;
    expect([done.state, done.errorCode]).toEqual(['failed', 'EXEC_FAILED']);
    expect(ran).toEqual(['start']);
    expect(stepsOf(db, job.id).map((s) => s.state)).toEqual(['skipped', 'failed', 'done']);
  });
});

describe('typed step details', () => {
  const Counted = z.object({ count: z.number().int() });
  const COUNT = stepRef('count', Counted);

  it('a committed detail that no longer matches its schema fails loudly, and compensation still runs', async () => {
    const ran: string[] = [];
    const plan: StepDef[] = [
      defineStep({ ...COUNT, run: async (ctx) => ({ detail: { count: (ctx.detail.count ?? 0) + 1 } }) }),
      { name: 'use', run: async (ctx) => void ran.push(`use ${ctx.detailOf(COUNT)?.count}`) },
      { name: 'restore', always: true, run: async () => void ran.push('restore') },
    ];
    const { db, worker } = setup(kindWith(plan));
    // written by an older version under another field name
    const job = crashedJob(db, [{ name: 'count', state: 'running', detail: { total: 3 } }, { name: 'use' }, { name: 'restore', always: true }]);
    await worker.start();
    const done = (await worker.waitFor(job.id, 5000))!;
    expect(done.state).toBe('failed');
    expect(done.errorCode).toBe('INTERNAL');
    expect(done.errorMessage).toMatch(/detail of step "count" does not match what this version expects: count: /);
    expect(ran).toEqual(['restore']);
  });

  it('a later step reads it through the schema (typed), and a save of the wrong shape is refused', async () => {
    const seen: unknown[] = [];
    const plan: StepDef[] = [
      { ...COUNT, run: async () => ({ detail: { count: 2 } }) },
      { name: 'use', run: async (ctx) => void seen.push(ctx.detailOf(COUNT), ctx.detailOf('count'), ctx.detailOf(stepRef('nothing', Counted))) },
      { ...stepRef('bad', Counted), run: async (ctx) => ctx.save({ count: 'two' } as unknown as { count: number }) },
    ];
    const { db, worker, submit } = setup(kindWith(plan));
    await worker.start();
    const job = submit('web');
    worker.wake();
    const done = (await worker.waitFor(job.id, 5000))!;
    expect(seen).toEqual([{ count: 2 }, { count: 2 }, null]);
    expect(done.errorMessage).toMatch(/detail of step "bad" does not match/);
    expect(stepsOf(db, job.id)[2]!.detail).toEqual({});
  });
});

describe('engine errors and calls that never return', () => {
  it('an engine error between steps (SQLITE_BUSY) still runs the compensation', async () => {
    const ran: string[] = [];
    const { db, worker, submit } = setup(
      kindWith([
        { name: 'stop', run: async () => void ran.push('stop') },
        { name: 'archive', run: async () => void ran.push('archive') },
        { name: 'restore', always: true, run: async () => void ran.push('restore') },
      ]),
    );
    // the second boundary check of the job meets a database that stays busy past its wait
    const prepare = db.prepare.bind(db);
    let checks = 0;
    db.prepare = ((sql: string) => {
      if (sql.startsWith('SELECT cancel_requested') && ++checks === 2) {
        throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
      }
      return prepare(sql);
    }) as Db['prepare'];
    await worker.start();
    const job = submit('web');
    worker.wake();
    const done = (await worker.waitFor(job.id, 5000))!;
    expect(done.state).toBe('failed');
    expect(done.errorCode).toBe('INTERNAL');
    expect(done.errorMessage).toContain('database is locked');
    expect(ran).toEqual(['stop', 'restore']);
    expect(locksOf(db, job.id)).toEqual([]);
  });

  it('a step whose code never settles is ended at the occupation limit; compensation runs and the lock is released', async () => {
    const ran: string[] = [];
    const { db, worker, submit } = setup(
      kindWith([
        { name: 'resolve-image', run: () => new Promise(() => undefined) }, // ignores its signal
        { name: 'restore', always: true, run: async () => void ran.push('restore') },
      ]),
      { env: { SWARM_UTILS_LOCK_MAX_OCCUPATION_TIME: '300', SWARM_UTILS_LOCK_MAX_EXECUTION_TIME: '200' } },
    );
    await worker.start();
    const job = submit('web');
    worker.wake();
    const t0 = Date.now();
    const done = (await worker.waitFor(job.id, 5000))!;
    expect(Date.now() - t0).toBeLessThan(2000);
    expect([done.state, done.errorCode]).toEqual(['failed', 'TIMEOUT']);
    expect(ran).toEqual(['restore']);
    expect(locksOf(db, job.id)).toEqual([]);
  });
});

describe('compensation that could not finish', () => {
  async function failedWithServiceDown() {
    const swarm = fakeSwarm(2);
    const f = setup(
      kindWith(
        backupLike({
          name: 'archive',
          run: async () => {
            swarm.svc.reachable = false; // Docker stops answering during the archive
            throw new AppError('DOCKER_ERROR', 'connection reset');
          },
        }),
      ),
      { docker: swarm.docker, env: { SWARM_UTILS_LOCK_TIMEOUT: '200' } },
    );
    const events: { outcome: string }[] = [];
    f.worker.events.on('compensation', (e) => events.push(e));
    await f.worker.start();
    const job = f.submit('web');
    f.worker.wake();
    const done = (await f.worker.waitFor(job.id, 5000))!;
    return { ...f, swarm, job: done, events };
  }

  it('is recorded on the job, keeps the locks, and is retried until Docker answers: then the service runs again', async () => {
    const { db, worker, swarm, job, events, submit } = await failedWithServiceDown();
    expect([job.state, job.errorCode, job.compensation]).toEqual(['failed', 'DOCKER_ERROR', 'pending']);
    expect(swarm.svc.replicas).toBe(0);
    expect(job.result).toMatchObject({ compensation: { state: 'pending', services: [{ service: 'web', state: 'pending', attempts: 1 }] } });
    expect((job.result as any).compensation.services[0].error).toContain('TIMEOUT');
    // no other job acts on the service meanwhile
    expect(locksOf(db, job.id)).toEqual(['backup_service_web']);
    const other = submit('web');
    worker.wake();
    expect((await worker.waitFor(other.id, 3000))!.errorCode).toBe('LOCK_TIMEOUT');

    await worker.retryCompensations(); // Docker still down
    expect(getJob(db, job.id)!.compensation).toBe('pending');
    expect(holdsOf(db, job.id)[0]!.attempts).toBe(2);

    swarm.svc.reachable = true;
    await worker.retryCompensations();
    const after = getJob(db, job.id)!;
    expect(swarm.svc.replicas).toBe(2);
    expect(swarm.updates).toEqual([0, 2]);
    expect(after.state).toBe('failed'); // the job failed; its service is back
    expect(after.compensation).toBe('done');
    expect(after.result).toMatchObject({ compensation: { state: 'done', services: [{ state: 'given back' }] } });
    expect(stepsOf(db, job.id).find((s) => s.name === 'start')).toMatchObject({ state: 'done', output: expect.stringContaining('retried after the job ended') });
    expect(locksOf(db, job.id)).toEqual([]);
    expect(events.map((e) => e.outcome)).toEqual(['done']);
  });

  it('is left to the operator when the spec changed meanwhile, and the job says so', async () => {
    const { db, worker, swarm, job, events } = await failedWithServiceDown();
    swarm.svc.reachable = true;
    swarm.svc.version += 1; // an operator changed the service by hand
    await worker.retryCompensations();
    const after = getJob(db, job.id)!;
    expect(swarm.svc.replicas).toBe(0);
    expect(swarm.updates).toEqual([0]);
    expect(after.compensation).toBe('operator');
    expect((after.result as any).compensation).toMatchObject({ state: 'operator', services: [{ state: 'left to the operator' }] });
    expect((after.result as any).compensation.services[0].error).toMatch(/changed \(version 11 → 12\).*left to the operator/);
    expect(events.map((e) => e.outcome)).toEqual(['operator']);
    expect(locksOf(db, job.id)).toEqual([]);
  });

  it('counts as given back when the spec changed but the service is at its recorded count again (a scale-up that took effect late)', async () => {
    const { db, worker, swarm, job } = await failedWithServiceDown();
    swarm.svc.reachable = true;
    swarm.svc.replicas = 2;
    swarm.svc.version += 1;
    await worker.retryCompensations();
    expect(getJob(db, job.id)!.compensation).toBe('done');
    expect(swarm.updates).toEqual([0]);
  });
});

describe('shutdown', () => {
  it('a job holding a service down stops its helpers, gives the service back, and is taken up again from stop by the next process', async () => {
    const swarm = fakeSwarm(2);
    let release = false;
    const archive: StepDef = {
      name: 'archive',
      whileDown: { from: 'stop' },
      run: async (ctx) => {
        swarm.helpers.push({ id: 'h1', name: helperName('test01', ctx.job.id, 'archive', '0'), jobId: ctx.job.id });
        while (!release) await sleep(20, ctx.signal);
        return { output: 'archived' };
      },
    };
    const dbPath = tempDbPath();
    const first = setup(kindWith(backupLike(archive)), { docker: swarm.docker, dbPath });
    await first.worker.start();
    const job = first.submit('web');
    first.worker.wake();
    await until(() => swarm.helpers.length === 1);
    expect(swarm.svc.replicas).toBe(0);
    await first.worker.stop(3000);
    expect(swarm.stopped).toHaveLength(1); // the archive was stopped before the service came back
    expect(swarm.svc.replicas).toBe(2);
    expect(getJob(first.db, job.id)!.state).toBe('running');
    expect(stepsOf(first.db, job.id).map((s) => [s.name, s.state])).toEqual([
      ['resolve', 'done'],
      ['stop', 'pending'],
      ['archive', 'pending'],
      ['start', 'pending'],
    ]);
    expect(holdsOf(first.db, job.id)[0]!.state).toBe('released');

    release = true;
    const second = setup(kindWith(backupLike(archive)), { docker: swarm.docker, dbPath });
    await second.worker.start();
    const done = (await second.worker.waitFor(job.id, 5000))!;
    expect(done.state).toBe('succeeded');
    expect(swarm.updates).toEqual([0, 2, 0, 2]); // a fresh stop for a fresh archive
    expect(swarm.svc.replicas).toBe(2);
  });

  it('a job holding nothing is left running as it is, its helpers kept for the next process', async () => {
    const swarm = fakeSwarm(2);
    const { db, worker, submit } = setup(
      kindWith([
        {
          name: 'exec',
          run: async (ctx) => {
            swarm.helpers.push({ id: 'h1', name: helperName('test01', ctx.job.id, 'exec', '0'), jobId: ctx.job.id });
            await sleep(60_000, ctx.signal);
          },
        },
      ]),
      { docker: swarm.docker },
    );
    await worker.start();
    const job = submit('web');
    worker.wake();
    await until(() => swarm.helpers.length === 1);
    await worker.stop(2000);
    expect(swarm.stopped).toEqual([]);
    expect(stepsOf(db, job.id)[0]!.state).toBe('running');
  });

  it('open waitRes requests answer 503 with the job and Retry-After at once; new submissions get 503 SHUTTING_DOWN', async () => {
    let started = false;
    const f = await apiFixture({
      services: [fakeService('web')],
      kinds: { update: { type: 'update', locks: (t) => [`update_service_${t.name}`], steps: () => [{ name: 'hold', run: async (ctx) => { started = true; await sleep(60_000, ctx.signal); } }] } },
      waitLimitMs: 60_000,
    });
    try {
      const waiting = f.app.inject({ method: 'POST', url: '/jobs', payload: { type: 'update', service: 'web', waitRes: true }, headers: { authorization: 'Bearer admin-token' } });
      await until(() => started);
      const t0 = Date.now();
      const stopped = f.worker.stop(2000);
      const r = await waiting;
      expect(Date.now() - t0).toBeLessThan(1000);
      expect(r.statusCode).toBe(503);
      expect(r.headers['retry-after']).toBe('30');
      expect(r.json()).toMatchObject({ type: 'update', state: 'running', target: { service: 'web' } });
      const late = await f.app.inject({ method: 'POST', url: '/jobs', payload: { type: 'update', service: 'web' }, headers: { authorization: 'Bearer admin-token' } });
      expect(late.statusCode).toBe(503);
      expect(late.json().error.code).toBe('SHUTTING_DOWN');
      await stopped;
    } finally {
      await f.close();
    }
  });
});

describe('node prunes and scaled-down services', () => {
  function holdsFor(db: Db, deps: Deps, id: number, signal = new AbortController().signal) {
    return createHolds(deps, { id }, signal);
  }

  it('a prune waits while a job holds a service with a task on the node down, then fails LOCK_TIMEOUT; other nodes are free', async () => {
    const db = openDb(tempDbPath());
    const deps = makeDeps(db, fakeDocker(), testConfig({ SWARM_UTILS_LOCK_TIMEOUT: '300' }));
    const backup = insertJob(db, { type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: [] });
    const clean = insertJob(db, { type: 'clean', targetKind: 'node', target: 'a', source: 'api', locks: [] });
    await holdsFor(db, deps, backup.id).holdService({ serviceId: 's1', service: 'web', nodes: ['node-a'], undo: 'restore' });
    const t0 = Date.now();
    const err = await holdsFor(db, deps, clean.id).holdNode('node-a', 'a').catch((e: AppError) => e);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
    expect(err).toMatchObject({ code: 'LOCK_TIMEOUT' });
    expect((err as AppError).message).toContain(`job ${backup.id} holds service web`);
    await holdsFor(db, deps, clean.id).holdNode('node-b');
  });

  it('a prune waiting for a scaled-down service starts once it is given back; a scale-down waits for a prune on its node', async () => {
    const db = openDb(tempDbPath());
    const deps = makeDeps(db, fakeDocker(), testConfig({ SWARM_UTILS_LOCK_TIMEOUT: '5000' }));
    const backup = insertJob(db, { type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: [] });
    const clean = insertJob(db, { type: 'clean', targetKind: 'node', target: 'a', source: 'api', locks: [] });
    const b = holdsFor(db, deps, backup.id);
    await b.holdService({ serviceId: 's1', service: 'web', nodes: ['node-a', 'node-b'], undo: 'restore' });
    let pruning = false;
    const prune = holdsFor(db, deps, clean.id).holdNode('node-b').then(() => (pruning = true));
    await sleep(600);
    expect(pruning).toBe(false);
    b.releaseService('s1');
    await prune;
    // the prune runs now: a second backup on that node waits for it
    const later = insertJob(db, { type: 'backup', targetKind: 'service', target: 'api', source: 'api', locks: [] });
    let held = false;
    const hold = holdsFor(db, deps, later.id).holdService({ serviceId: 's2', service: 'api', nodes: ['node-b'], undo: 'restore' }).then(() => (held = true));
    await sleep(600);
    expect(held).toBe(false);
    db.prepare('DELETE FROM node_prunes WHERE job_id = ?').run(clean.id); // the clean job ended
    await hold;
  });

  it('a job that ends releases its node prunes; one that ends holding a service down keeps its hold', async () => {
    const swarm = fakeSwarm(1);
    swarm.svc.reachable = true;
    const { db, worker, submit } = setup(kindWith([{ name: 'prune', run: async (ctx) => ctx.holds.holdNode('node-a') }]), { docker: swarm.docker });
    await worker.start();
    const job = submit('web', 'clean');
    worker.wake();
    await worker.waitFor(job.id, 3000);
    expect(db.prepare('SELECT COUNT(*) FROM node_prunes').pluck().get()).toBe(0);
  });
});

describe('all parents', () => {
  it('are not bound by the occupation limit: the parent ends after its last child and lists every outcome', async () => {
    const kind = kindWith([{ name: 'work', run: async (ctx) => { await sleep(200, ctx.signal); if (ctx.job.target === 'c') throw new AppError('EXEC_FAILED', 'exit 1'); } }], {
      allTargets: async () => ['a', 'b', 'c', 'd'].map((name) => ({ kind: 'service' as const, name })),
    });
    const { db, worker } = setup(kind, { env: { SWARM_UTILS_LOCK_MAX_OCCUPATION_TIME: '300', SWARM_UTILS_LOCK_MAX_EXECUTION_TIME: '300' }, concurrency: 1 });
    await worker.start();
    const parent = insertJob(db, { type: 'backup', targetKind: 'all', target: null, source: 'cron', locks: [], requesterAdmin: true });
    worker.wake();
    const done = (await worker.waitFor(parent.id, 10_000))!;
    const kids = db.prepare('SELECT id, finished_at FROM jobs WHERE parent_id = ?').all(parent.id) as { id: number; finished_at: number }[];
    expect(done.state).toBe('failed');
    expect(done.errorCode).toBe('EXEC_FAILED');
    expect(done.finishedAt! - done.startedAt!).toBeGreaterThan(700);
    expect(done.finishedAt).toBeGreaterThanOrEqual(Math.max(...kids.map((k) => k.finished_at)));
    expect((done.result as any).children.map((c: any) => [c.target.service, c.state])).toEqual([
      ['a', 'succeeded'],
      ['b', 'succeeded'],
      ['c', 'failed'],
      ['d', 'succeeded'],
    ]);
  });

  it('a cancel during the snapshot creates no child; the parent ends canceled with an empty list', async () => {
    let listed!: () => void;
    const gate = new Promise<void>((r) => (listed = r));
    const kind = kindWith([{ name: 'work', run: async () => undefined }], {
      allTargets: async () => {
        await gate;
        return [{ kind: 'service', name: 'a' }];
      },
    });
    const { db, worker } = setup(kind);
    await worker.start();
    const parent = insertJob(db, { type: 'backup', targetKind: 'all', target: null, source: 'api', locks: [], requesterAdmin: true });
    worker.wake();
    await until(() => stepsOf(db, parent.id)[0]?.state === 'running');
    cancelTree(db, parent.id);
    listed();
    const done = (await worker.waitFor(parent.id, 5000))!;
    expect(done.state).toBe('canceled');
    expect(db.prepare('SELECT COUNT(*) FROM jobs WHERE parent_id = ?').pluck().get(parent.id)).toBe(0);
    expect(done.result).toEqual({ children: [] });
  });

  it('a cancel of a running parent cancels its queued children, stops the running one at its boundary, and waits for it', async () => {
    const ran: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const kind = kindWith(
      [
        { name: 'first', run: async (ctx) => { ran.push(`first ${ctx.job.target}`); await gate; } },
        { name: 'second', run: async (ctx) => void ran.push(`second ${ctx.job.target}`) },
        { name: 'restore', always: true, run: async (ctx) => void ran.push(`restore ${ctx.job.target}`) },
      ],
      { allTargets: async () => ['a', 'b', 'c'].map((name) => ({ kind: 'service' as const, name })) },
    );
    const { db, worker } = setup(kind, { concurrency: 1 });
    await worker.start();
    const parent = insertJob(db, { type: 'backup', targetKind: 'all', target: null, source: 'api', locks: [], requesterAdmin: true });
    worker.wake();
    await until(() => ran.includes('first a'));
    cancelTree(db, parent.id);
    await sleep(100);
    expect(getJob(db, parent.id)!.state).toBe('running'); // still waiting for child a
    release();
    const done = (await worker.waitFor(parent.id, 5000))!;
    expect(done.state).toBe('canceled');
    expect(ran).toEqual(['first a', 'restore a']);
    expect((done.result as any).children.map((c: any) => c.state)).toEqual(['canceled', 'canceled', 'canceled']);
  });
});

describe('housekeeping and start-up', () => {
  it('cron runs are pruned with the finished jobs past retention', async () => {
    const dbPath = tempDbPath();
    const db = openDb(dbPath);
    const old = Date.now() - 40 * 86_400_000;
    const clean = insertJob(db, { type: 'clean', targetKind: 'all', target: null, source: 'cron', locks: [] }, old);
    db.prepare("UPDATE jobs SET state = 'succeeded', finished_at = ? WHERE id = ?").run(old, clean.id);
    claimSlot(db, 'old-slot', old);
    setSlotJobs(db, 'old-slot', clean.id, null);
    claimSlot(db, 'skipped-slot', old);
    claimSlot(db, 'new-slot');
    const { worker } = setup(kindWith([]), { dbPath });
    await worker.start();
    expect(getJob(db, clean.id)).toBeNull();
    expect(cronRuns(db).map((r) => r.slot)).toEqual(['new-slot']);
  });

  it('one process per database file: a second process is refused while the first lives, and takes over right after a kill -9', async () => {
    const dbPath = tempDbPath();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '-e', `import('./src/db/lockfile.ts').then((m) => { m.acquireProcessLock(${JSON.stringify(dbPath)}); console.log('held'); setInterval(() => {}, 1000); })`],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (d) => String(d).includes('held') && resolve());
        child.once('exit', (code) => reject(new Error(`lock holder exited with ${code}`)));
      });
      expect(acquireProcessLock(dbPath)).toBeNull();
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    const lock = acquireProcessLock(dbPath);
    expect(lock).not.toBeNull();
    lock!.release();
  });
});
