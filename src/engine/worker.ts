import { EventEmitter, setMaxListeners } from 'node:events';
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
import { retryCompensations } from './compensation.js';
import { fanOutSteps } from './fanout.js';
import { HELPER_STOP_MS, ownHelpers, stopJobHelpers } from './helpers.js';
import { helperPrefix } from '../swarm/helpers.js';
import { ShutdownSignal } from './limits.js';
import { type TakeoverNote, runJob } from './runner.js';
import type { Deps, JobKind, StepDef } from './types.js';

/** how often compensation left pending is tried again */
export const COMPENSATION_RETRY_MS = 60_000;
/** what a shutdown keeps for recording the end of compensation before the process must exit */
const EXIT_MARGIN_MS = 1500;

export interface WorkerOptions {
  concurrency: number;
  lockTimeoutMs: number;
  retentionDays: number;
}

/**
 * Claims queued jobs (in one IMMEDIATE transaction: locks checked and taken together), runs them with
 * bounded concurrency, fails jobs that wait for a lock past LOCK_TIMEOUT, resumes the jobs a dead process
 * left running, and retries compensation left pending. The API and the cron only insert rows and call `wake()`.
 *
 * Events: `finished` (job), `finished:<id>`, `compensation` ({ job, outcome: 'done' | 'operator' }) when a
 * pending compensation ended (`operator`: the service was left to the operator).
 */
export class Worker {
  readonly events = new EventEmitter();
  readonly bootId = crypto.randomUUID();
  private readonly queue: PQueue;
  private readonly shutdown = new AbortController();
  /** aborted when the process must exit: ends what compensation still runs after a shutdown began */
  private readonly exit = new AbortController();
  private readonly parents = new Set<Promise<unknown>>();
  private tickScheduled = false;
  private deadlineTimer: NodeJS.Timeout | null = null;
  private housekeeping: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retrying: Promise<void> | null = null;
  private running = 0;

  constructor(
    private readonly deps: Deps,
    private readonly kinds: Record<string, JobKind>,
    private readonly opts: WorkerOptions,
  ) {
    this.queue = new PQueue({ concurrency: opts.concurrency });
    this.events.setMaxListeners(0);
    // every running job and every waitRes request listens to these: many at once is normal
    setMaxListeners(0, this.shutdown.signal, this.exit.signal);
  }

  async start(): Promise<void> {
    await this.removeOrphanHelpers();
    await this.removeOrphanSecrets();
    this.resume();
    this.housekeeping = setInterval(() => this.purgeOld(), 3600_000).unref();
    this.purgeOld();
    this.retryTimer = setInterval(() => void this.retryCompensations(), COMPENSATION_RETRY_MS).unref();
    void this.retryCompensations();
    this.wake();
  }

  /** true once a shutdown began: nothing is claimed any more */
  get stopping(): boolean {
    return this.shutdown.signal.aborted;
  }

  /** one pass over pending compensation; a pass still going is not doubled */
  retryCompensations(): Promise<void> {
    if (this.stopping) return Promise.resolve();
    this.retrying ??= retryCompensations({
      deps: this.deps,
      planOf: (job) => this.stepsFor(job),
      signal: this.shutdown.signal,
      ended: (job, outcome) => this.events.emit('compensation', { job, outcome }),
    })
      .catch((e: unknown) => this.deps.log.error({ err: e }, 'compensation retry pass failed'))
      .finally(() => (this.retrying = null));
    return this.retrying;
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

  /** resolves when job `id` reaches a final state, after `ms`, or at once when a shutdown begins */
  waitFor(id: number, ms: number): Promise<JobRow | null> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        clearInterval(poll);
        this.events.off(`finished:${id}`, done);
        this.shutdown.signal.removeEventListener('abort', done);
        resolve(getJob(this.deps.db, id));
      };
      this.shutdown.signal.addEventListener('abort', done, { once: true });
      const timer = setTimeout(done, ms);
      // jobs canceled while queued end without passing through the runner: look at the row now and then
      const poll = setInterval(() => {
        const j = getJob(this.deps.db, id);
        if (!j || FINAL_STATES.includes(j.state)) done();
      }, 1000);
      this.events.on(`finished:${id}`, done);
      const now = getJob(this.deps.db, id);
      if (!now || FINAL_STATES.includes(now.state) || this.stopping) done();
    });
  }

  /**
   * Shutdown: stop claiming, wake every waiter, interrupt running steps; jobs that hold a service scaled
   * down give it back first (runner.ts). Resolves when every job runner settled, or after `graceMs`; what
   * compensation still runs is ended shortly before that.
   */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.stopping) this.shutdown.abort(new ShutdownSignal());
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    if (this.housekeeping) clearInterval(this.housekeeping);
    if (this.retryTimer) clearInterval(this.retryTimer);
    const exitTimer = setTimeout(() => this.exit.abort(new AppError('SHUTTING_DOWN', 'the process must exit')), Math.max(0, graceMs - EXIT_MARGIN_MS));
    const idle = Promise.all([this.queue.onIdle(), ...this.parents, this.retrying]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([idle, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    clearTimeout(exitTimer);
  }

  /** helpers whose job is not running any more (it ended while we were down, or never existed) are stopped and removed */
  private async removeOrphanHelpers(): Promise<void> {
    try {
      for (const h of await ownHelpers(this.deps)) {
        const job = h.jobId === null ? null : getJob(this.deps.db, h.jobId);
        if (job?.state === 'running') continue; // its step re-enters and reattaches to it
        this.deps.log.warn({ helper: h.name, jobId: h.jobId }, 'removing orphan helper service');
        await this.deps.docker.stopHelper(h, { timeoutMs: HELPER_STOP_MS });
      }
    } catch (e) {
      this.deps.log.warn({ err: e }, 'could not list helper services at start-up');
    }
  }

  /**
   * Jobs a dead process left running still hold their locks: run them again from their first unfinished step.
   * After a takeover (the bucket's copy restored at start-up) their result says so.
   */
  private resume(): void {
    const takeover = this.deps.state?.takeover ?? null;
    for (const job of jobsInState(this.deps.db, 'running')) {
      const how = takeover ? 'resuming job taken over from a lost manager' : 'resuming job interrupted by a restart';
      this.deps.log.warn({ jobId: job.id, type: job.type, previousOwner: job.owner, takeover: takeover ?? undefined }, how);
      markRunning(this.deps.db, job.id, this.bootId);
      this.launch(job, takeover ? { ...takeover, previousOwner: job.owner } : undefined);
    }
  }

  private tick(): void {
    // a manager cut off from the swarm's quorum claims nothing: its jobs wait for whichever instance reaches it
    if (this.deps.state?.waiting) return this.scheduleAt(Date.now() + 1000);
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

  private launch(job: JobRow, takeover?: TakeoverNote): void {
    const run = async () => {
      try {
        const state = await runJob(this.deps, job, this.stepsFor(job), { shutdown: this.shutdown.signal, exit: this.exit.signal, takeover });
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
    if (this.stopping) return;
    try {
      await stopJobHelpers(this.deps, jobId);
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
    if (this.stopping) return;
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
    if (n.jobs || n.cronRuns) this.deps.log.info({ deleted: n.jobs, cronRuns: n.cronRuns }, 'deleted finished jobs and cron runs past retention');
  }
}

function isFinal(deps: Deps, id: number): boolean {
  const j = getJob(deps.db, id);
  return !j || FINAL_STATES.includes(j.state);
}
