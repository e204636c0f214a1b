import { describe, it, expect, afterEach } from 'vitest';
import { openDb } from '../../src/db/index.js';
import { getJob, insertJob, type JobRow } from '../../src/db/jobs.js';
import { stepsOf } from '../../src/db/steps.js';
import { locksOf } from '../../src/db/locks.js';
import { Worker } from '../../src/engine/worker.js';
import { AppError } from '../../src/errors.js';
import { sleep } from '../../src/engine/limits.js';
import type { JobKind, StepDef, StepContext } from '../../src/engine/types.js';
import { fakeDocker, makeDeps, tempDbPath, testConfig } from '../helpers/engine-fixture.js';

const workers: Worker[] = [];
afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop(100);
});

function kindWith(steps: StepDef[], extra: Partial<JobKind> = {}): JobKind {
  return { type: 'clean', locks: (t) => [`clean_service_${t.name}`], steps: () => steps, ...extra };
}

function setup(kind: JobKind, env: Record<string, string> = {}, dbPath = tempDbPath()) {
  const db = openDb(dbPath);
  const deps = makeDeps(db, fakeDocker(), testConfig(env));
  const worker = new Worker(deps, { clean: kind }, { concurrency: 4, lockTimeoutMs: Number(env.SWARM_UTILS_LOCK_TIMEOUT ?? 10_000), retentionDays: 30 });
  workers.push(worker);
  const submit = (service: string) =>
    insertJob(db, { type: 'clean', targetKind: 'service', target: service, source: 'api', locks: kind.locks({ kind: 'service', name: service }) });
  return { db, deps, worker, submit, dbPath };
}

const until = async (fn: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(20);
  }
};

describe('engine', () => {
  it('runs steps in order, records each, and releases locks at the end', async () => {
    const seen: string[] = [];
    const step = (name: string): StepDef => ({ name, run: async () => (seen.push(name), { detail: { n: name }, output: `${name} ok` }) });
    const { db, worker, submit } = setup(kindWith([step('a'), step('b'), step('c')]));
    await worker.start();
    const job = submit('web');
    worker.wake();
    const done = await worker.waitFor(job.id, 5000);
    expect(done?.state).toBe('succeeded');
    expect(seen).toEqual(['a', 'b', 'c']);
    const steps = stepsOf(db, job.id);
    expect(steps.map((s) => [s.name, s.state, s.output])).toEqual([
      ['a', 'done', 'a ok'],
      ['b', 'done', 'b ok'],
      ['c', 'done', 'c ok'],
    ]);
    expect(steps.every((s) => s.startedAt && s.finishedAt)).toBe(true);
    expect(locksOf(db, job.id)).toEqual([]);
  });

  it('after a failure skips normal steps, runs compensation, and keeps the first error', async () => {
    const ran: string[] = [];
    const { db, worker, submit } = setup(
      kindWith([
        { name: 'stop', run: async () => void ran.push('stop') },
        { name: 'archive', run: async () => { ran.push('archive'); throw new AppError('S3_ERROR', 'bucket unreachable'); } },
        { name: 'verify', run: async () => void ran.push('verify') },
        { name: 'restore', always: true, run: async () => { ran.push('restore'); throw new AppError('DOCKER_ERROR', 'later'); } },
      ]),
    );
    await worker.start();
    const job = submit('db');
    worker.wake();
    const done = (await worker.waitFor(job.id, 5000))!;
    expect(done.state).toBe('failed');
    expect(done.errorCode).toBe('S3_ERROR');
    expect(ran).toEqual(['stop', 'archive', 'restore']);
    expect(stepsOf(db, job.id).map((s) => s.state)).toEqual(['done', 'failed', 'skipped', 'failed']);
  });

  it('two jobs wanting one lock: one runs, the other fails LOCK_TIMEOUT', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { worker, submit, db } = setup(kindWith([{ name: 'hold', run: () => gate }]), { SWARM_UTILS_LOCK_TIMEOUT: '300' });
    await worker.start();
    const a = submit('web');
    const b = submit('web');
    worker.wake();
    const bDone = (await worker.waitFor(b.id, 3000))!;
    expect(bDone.state).toBe('failed');
    expect(bDone.errorCode).toBe('LOCK_TIMEOUT');
    expect(bDone.errorMessage).toContain('clean_service_web');
    expect(getJob(db, a.id)!.state).toBe('running');
    release();
    expect((await worker.waitFor(a.id, 3000))!.state).toBe('succeeded');
  });

  it('jobs on different locks run at the same time', async () => {
    let running = 0;
    let peak = 0;
    const { worker, submit } = setup(kindWith([{ name: 'work', run: async () => { running++; peak = Math.max(peak, running); await sleep(100); running--; } }]));
    await worker.start();
    const jobs = ['a', 'b', 'c'].map(submit);
    worker.wake();
    for (const j of jobs) expect((await worker.waitFor(j.id, 3000))!.state).toBe('succeeded');
    expect(peak).toBe(3);
  });

  it('a job past LOCK_MAX_OCCUPATION_TIME fails TIMEOUT after its compensation ran', async () => {
    const ran: string[] = [];
    const { worker, submit } = setup(
      kindWith([
        { name: 'slow', run: (ctx) => sleep(10_000, ctx.signal) },
        { name: 'restore', always: true, run: async () => void ran.push('restore') },
      ]),
      { SWARM_UTILS_LOCK_MAX_OCCUPATION_TIME: '200', SWARM_UTILS_LOCK_MAX_EXECUTION_TIME: '100' },
    );
    await worker.start();
    const job = submit('web');
    worker.wake();
    const done = (await worker.waitFor(job.id, 5000))!;
    expect(done.errorCode).toBe('TIMEOUT');
    expect(done.state).toBe('failed');
    expect(ran).toEqual(['restore']);
  });

  it('a cancel request stops a running job at the next step boundary and compensates', async () => {
    const ran: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { worker, submit, db } = setup(
      kindWith([
        { name: 'first', run: () => gate.then(() => void ran.push('first')) },
        { name: 'second', run: async () => void ran.push('second') },
        { name: 'restore', always: true, run: async () => void ran.push('restore') },
      ]),
    );
    await worker.start();
    const job = submit('web');
    worker.wake();
    await until(() => getJob(db, job.id)!.state === 'running');
    db.prepare('UPDATE jobs SET cancel_requested = 1 WHERE id = ?').run(job.id);
    release();
    const done = (await worker.waitFor(job.id, 5000))!;
    expect(done.state).toBe('canceled');
    expect(done.errorCode).toBe('CANCELED');
    expect(ran).toEqual(['first', 'restore']);
  });

  it('a job left running by a dead process resumes at its first unfinished step with its committed detail', async () => {
    const calls: { step: string; reentered: boolean; detail: Record<string, unknown> }[] = [];
    const record = (ctx: StepContext) => calls.push({ step: ctx.job.type, reentered: ctx.reentered, detail: ctx.detail });
    let crash = true;
    const kind = kindWith([
      { name: 'one', run: async () => ({ output: 'one' }) },
      {
        name: 'two',
        run: async (ctx) => {
          record(ctx);
          if (!ctx.detail.replicas) ctx.save({ replicas: 3 });
          if (crash) await new Promise(() => undefined); // the process "dies" here
          return { output: 'two' };
        },
      },
      { name: 'three', run: async () => ({ output: 'three' }) },
    ]);
    const first = setup(kind);
    await first.worker.start();
    const job = first.submit('web');
    first.worker.wake();
    await until(() => stepsOf(first.db, job.id)[1]?.detail.replicas === 3);
    // a second process on the same file, while the first never finishes its step (as after kill -9)
    crash = false;
    const second = setup(kind, {}, first.dbPath);
    await second.worker.start();
    const done = (await second.worker.waitFor(job.id, 5000))!;
    expect(done.state).toBe('succeeded');
    expect(calls.map((c) => c.reentered)).toEqual([false, true]);
    expect(calls[1]!.detail).toEqual({ replicas: 3 });
    expect(stepsOf(second.db, job.id).map((s) => s.state)).toEqual(['done', 'done', 'done']);
  });

  it('an all job snapshots its targets once, runs a child per target and fails if any child failed', async () => {
    const kind = kindWith(
      [{ name: 'work', run: async (ctx) => { if (ctx.job.target === 'bad') throw new AppError('EXEC_FAILED', 'exit 1'); } }],
      { allTargets: async () => [{ kind: 'service', name: 'good' }, { kind: 'service', name: 'bad' }] },
    );
    const { db, worker } = setup(kind);
    await worker.start();
    const parent: JobRow = insertJob(db, { type: 'clean', targetKind: 'all', target: null, source: 'api', locks: [], requesterAdmin: true });
    worker.wake();
    const done = (await worker.waitFor(parent.id, 5000))!;
    expect(done.state).toBe('failed');
    expect(done.errorCode).toBe('EXEC_FAILED');
    const result = done.result as { children: { target: { service: string }; state: string }[] };
    expect(result.children.map((c) => [c.target.service, c.state])).toEqual([
      ['good', 'succeeded'],
      ['bad', 'failed'],
    ]);
  });

  it('concurrency bounds how many jobs run at once', async () => {
    let running = 0;
    let peak = 0;
    const kind = kindWith([{ name: 'work', run: async () => { running++; peak = Math.max(peak, running); await sleep(50); running--; } }]);
    const db = openDb(tempDbPath());
    const worker = new Worker(makeDeps(db, fakeDocker()), { clean: kind }, { concurrency: 2, lockTimeoutMs: 10_000, retentionDays: 30 });
    workers.push(worker);
    await worker.start();
    const jobs = ['a', 'b', 'c', 'd', 'e'].map((s) =>
      insertJob(db, { type: 'clean', targetKind: 'service', target: s, source: 'api', locks: [`clean_service_${s}`] }),
    );
    worker.wake();
    for (const j of jobs) expect((await worker.waitFor(j.id, 5000))!.state).toBe('succeeded');
    expect(peak).toBe(2);
  });
});
