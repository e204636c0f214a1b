import { EventEmitter } from 'node:events';
import crypto from 'node:crypto';
import PQueue from 'p-queue';
import { AppError } from '../errors.js';
import { immediate } from '../db/index.js';
import {
  type JobRow,
  FINAL_STATES,
  finishJob,
  getJob,
  jobsInState,
  markRunning,
  recordJobError,
  deleteFinishedBefore,
} from '../db/jobs.js';
import { lockHolders, takeLocks } from '../db/locks.js';
import { insertSteps } from '../db/steps.js';
import { fanOutSteps } from './fanout.js';
import { helperPrefix } from '../jobs/exec.js';
import { ShutdownSignal, runJob } from './runner.js';
import type { Deps, JobKind, StepDef } from './types.js';

export interface WorkerOptions {
  concurrency: number;
  lockTimeoutMs: number;
  retentionDays: number;
}

/**
 * Claims queued jobs (in one IMMEDIATE transaction: locks checked and taken together), runs them with
 * bounded concurrency, fails jobs that wait for a lock past LOCK_TIMEOUT, and resumes the jobs a dead
 * process left running. The API and the cron only insert rows and call `wake()`.
 */
export class Worker {
  readonly events = new EventEmitter();
  readonly bootId = crypto.randomUUID();
  private readonly queue: PQueue;
  private readonly shutdown = new AbortController();
  private readonly parents = new Set<Promise<unknown>>();
  private tickScheduled = false;
  private deadlineTimer: NodeJS.Timeout | null = null;
  private housekeeping: NodeJS.Timeout | null = null;
  private running = 0;

  constructor(
    private readonly deps: Deps,
    private readonly kinds: Record<string, JobKind>,
    private readonly opts: WorkerOptions,
  ) {
    this.queue = new PQueue({ concurrency: opts.concurrency });
    this.events.setMaxListeners(0);
  }

  async start(): Promise<void> {
    await this.removeOrphanHelpers();
    await this.removeOrphanSecrets();
    this.resume();
    this.housekeeping = setInterval(() => this.purgeOld(), 3600_000).unref();
    this.purgeOld();
    this.wake();
  }

  /** coalesces wake-ups: many inserts in one tick cause one claim pass */
  wake(): void {
    if (this.tickScheduled || this.shutdown.signal.aborted) return;
    this.tickScheduled = true;
    setImmediate(() => {
      this.tickScheduled = false;
      try {
        this.tick();
      } catch (e) {
        this.deps.log.error({ err: e }, 'claim pass failed');
        this.scheduleAt(Date.now() + 1000);
      }
    });
  }

  /** resolves when job `id` reaches a final state, or after `ms` */
  waitFor(id: number, ms: number): Promise<JobRow | null> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        clearInterval(poll);
        this.events.off(`finished:${id}`, done);
        resolve(getJob(this.deps.db, id));
      };
      const timer = setTimeout(done, ms);
      // jobs canceled while queued end without passing through the runner: look at the row now and then
      const poll = setInterval(() => {
        const j = getJob(this.deps.db, id);
        if (!j || FINAL_STATES.includes(j.state)) done();
      }, 1000);
      this.events.on(`finished:${id}`, done);
      const now = getJob(this.deps.db, id);
      if (!now || FINAL_STATES.includes(now.state)) done();
    });
  }

  async stop(graceMs = 5000): Promise<void> {
    this.shutdown.abort(new ShutdownSignal());
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    if (this.housekeeping) clearInterval(this.housekeeping);
    const idle = Promise.all([this.queue.onIdle(), ...this.parents]);
    await Promise.race([idle, new Promise((r) => setTimeout(r, graceMs).unref())]);
  }

  /** helpers of this installation (another database's helpers are not ours to adopt or remove) */
  private async ownHelpers(jobId?: number) {
    const prefix = helperPrefix(this.deps.instance);
    return (await this.deps.docker.listHelpers(jobId)).filter((h) => h.name.startsWith(prefix));
  }

  /** helpers whose job is not running any more (it ended while we were down, or never existed) are removed */
  private async removeOrphanHelpers(): Promise<void> {
    try {
      for (const h of await this.ownHelpers()) {
        const job = h.jobId === null ? null : getJob(this.deps.db, h.jobId);
        if (job?.state === 'running') continue; // its step re-enters and reattaches to it
        this.deps.log.warn({ helper: h.name, jobId: h.jobId }, 'removing orphan helper service');
        await this.deps.docker.removeService(h.id);
      }
    } catch (e) {
      this.deps.log.warn({ err: e }, 'could not list helper services at start-up');
    }
  }

  /** jobs a dead process left running still hold their locks: run them again from their first unfinished step */
  private resume(): void {
    for (const job of jobsInState(this.deps.db, 'running')) {
      this.deps.log.warn({ jobId: job.id, type: job.type, previousOwner: job.owner }, 'resuming job interrupted by a restart');
      markRunning(this.deps.db, job.id, this.bootId);
      this.launch(job);
    }
  }

  private tick(): void {
    const now = Date.now();
    let next = Infinity;
    const claimed = immediate(this.deps.db, () => {
      const out: JobRow[] = [];
      let free = this.opts.concurrency - this.running;
      for (const job of jobsInState(this.deps.db, 'queued')) {
        if (job.dependsOn && !isFinal(this.deps, job.dependsOn)) continue;
        const isParent = job.targetKind === 'all';
        if (lockHolders(this.deps.db, job.locks, job.id).length) {
          const deadline = job.createdAt + this.opts.lockTimeoutMs;
          if (now >= deadline) this.failLockTimeout(job);
          else next = Math.min(next, deadline);
          continue;
        }
        if (!isParent && free <= 0) continue;
        let steps: StepDef[];
        try {
          steps = this.stepsFor(job);
        } catch (e) {
          recordJobError(this.deps.db, job.id, 'UNSUPPORTED', e instanceof Error ? e.message : String(e));
          finishJob(this.deps.db, job.id, 'failed', now);
          setImmediate(() => this.finished(job));
          continue;
        }
        if (!isParent) free--;
        takeLocks(this.deps.db, job.locks, job.id, now);
        markRunning(this.deps.db, job.id, this.bootId, now);
        insertSteps(this.deps.db, job.id, steps);
        out.push(getJob(this.deps.db, job.id)!);
      }
      return out;
    });
    for (const job of claimed) this.launch(job);
    if (next !== Infinity) this.scheduleAt(next);
  }

  private failLockTimeout(job: JobRow): void {
    const holders = lockHolders(this.deps.db, job.locks, job.id);
    const msg = `could not take ${holders.map((h) => `${h.name} (held by job ${h.jobId})`).join(', ')} within ${this.opts.lockTimeoutMs} ms`;
    recordJobError(this.deps.db, job.id, 'LOCK_TIMEOUT', msg);
    finishJob(this.deps.db, job.id, 'failed');
    this.deps.log.warn({ jobId: job.id, type: job.type }, msg);
    this.finished(job);
  }

  private scheduleAt(at: number): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = setTimeout(() => this.wake(), Math.max(0, at - Date.now()) + 5);
  }

  private stepsFor(job: JobRow): StepDef[] {
    const kind = this.kinds[job.type];
    if (!kind) throw new AppError('UNSUPPORTED', `no job type ${job.type}`);
    if (job.targetKind === 'all') return fanOutSteps(kind, () => this.wake(), (id) => this.nextChildEnd(id));
    return kind.steps(job);
  }

  private nextChildEnd(parentId: number): Promise<void> {
    return new Promise((resolve) => this.events.once(`child-finished:${parentId}`, () => resolve()));
  }

  private launch(job: JobRow): void {
    const run = async () => {
      try {
        const state = await runJob(this.deps, job, this.stepsFor(job), { shutdown: this.shutdown.signal });
        if (state !== 'running') this.finished(getJob(this.deps.db, job.id) ?? job);
      } catch (e) {
        this.deps.log.error({ err: e, jobId: job.id }, 'job runner crashed');
        recordJobError(this.deps.db, job.id, 'INTERNAL', e instanceof Error ? e.message : String(e));
        finishJob(this.deps.db, job.id, 'failed');
        this.finished(job);
      } finally {
        await this.sweepHelpers(job.id);
        await this.sweepSecrets(job.id);
      }
    };
    if (job.targetKind === 'all') {
      const p = run().finally(() => this.parents.delete(p));
      this.parents.add(p);
      return;
    }
    this.running++;
    void this.queue.add(run).finally(() => {
      this.running--;
      this.wake();
    });
  }

  /** a finished job leaves no helper service behind, whatever its steps did */
  private async sweepHelpers(jobId: number): Promise<void> {
    if (this.shutdown.signal.aborted) return;
    try {
      for (const h of await this.ownHelpers(jobId)) await this.deps.docker.removeService(h.id);
    } catch (e) {
      this.deps.log.warn({ jobId, err: e }, 'could not remove helper services of the job');
    }
  }

  /** Docker secrets of this installation's jobs (credentials of backup helpers), optionally of one job */
  private async ownSecrets(jobId?: number) {
    const prefix = helperPrefix(this.deps.instance);
    return (await this.deps.docker.listSecrets(jobId)).filter((s) => s.name.startsWith(prefix));
  }

  /** after the helper sweep: secrets whose job is not running any more (Docker refuses to remove one in use) */
  private async removeOrphanSecrets(): Promise<void> {
    try {
      for (const s of await this.ownSecrets()) {
        const job = s.jobId === null ? null : getJob(this.deps.db, s.jobId);
        if (job?.state === 'running') continue; // its helpers are reattached and still read it
        this.deps.log.warn({ secret: s.name, jobId: s.jobId }, 'removing orphan Docker secret');
        await this.deps.docker.removeSecret(s.id);
      }
    } catch (e) {
      this.deps.log.warn({ err: e }, 'could not remove orphan Docker secrets at start-up');
    }
  }

  /** a finished job leaves no Docker secret behind (its helpers were removed just before) */
  private async sweepSecrets(jobId: number): Promise<void> {
    if (this.shutdown.signal.aborted) return;
    try {
      for (const s of await this.ownSecrets(jobId)) await this.deps.docker.removeSecret(s.id);
    } catch (e) {
      this.deps.log.warn({ jobId, err: e }, 'could not remove Docker secrets of the job');
    }
  }

  private finished(job: JobRow): void {
    this.events.emit(`finished:${job.id}`);
    this.events.emit('finished', job);
    if (job.parentId) this.events.emit(`child-finished:${job.parentId}`);
    this.wake();
  }

  private purgeOld(): void {
    const cutoff = Date.now() - this.opts.retentionDays * 86_400_000;
    const n = deleteFinishedBefore(this.deps.db, cutoff);
    if (n) this.deps.log.info({ deleted: n }, 'deleted finished jobs past retention');
  }
}

function isFinal(deps: Deps, id: number): boolean {
  const j = getJob(deps.db, id);
  return !j || FINAL_STATES.includes(j.state);
}
