/**
 * The journal of a job's steps: the one place where "what runs after a failure" is decided.
 * - Steps run in plan order from the first unfinished one, matched to the recorded rows by name (journal.ts).
 * - After a failure, a cancel, a timeout or an engine error only `always` steps (compensation) run.
 * - A step ends at its limit even when its code never settles; compensation is not cut short by the
 *   limit that caused it, nor by a shutdown.
 * - Shutdown: a job that holds a service scaled down stops its helpers, gives the service back, and is
 *   left `running` for the next process (from the `whileDown` step's `from` when that step was interrupted).
 * - A job that ends still holding a service down keeps its locks; its compensation is retried (compensation.ts).
 */
import { AppError } from '../errors.js';
import { type JobRow, type JobState, finishJob, isCancelRequested, mergeJobResult, recordJobError } from '../db/jobs.js';
import { heldBy, recordHoldAttempt } from '../db/holds.js';
import { endStep, resetStep } from '../db/steps.js';
import type { Logger } from '../log.js';
import { compensationSummary } from './compensation.js';
import { stopJobHelpers } from './helpers.js';
import { FINAL_STEP_STATES, type Planned, isNamed, reconcile } from './journal.js';
import { ShutdownSignal, deadline } from './limits.js';
import { type StepEnv, executeStep, toAppError } from './step.js';
import type { Deps, StepDef } from './types.js';

export { ShutdownSignal, toAppError };

export interface RunOptions {
  /** aborted when the process starts to stop (reason: ShutdownSignal) */
  shutdown: AbortSignal;
  /** aborted when the process must exit: bounds what compensation still runs after a shutdown began */
  exit?: AbortSignal;
  /** the job was running on a manager that was lost: this process took it over from the bucket's copy */
  takeover?: TakeoverNote;
}

/** what a job's result says when another instance took it over (`result.takeover`) */
export interface TakeoverNote {
  at: string;
  /** the generation of the bucket's copy it was restored from */
  generation: number;
  /** the process that wrote that copy */
  from: string;
  /** the worker that ran the job before */
  previousOwner: string | null;
}

export async function runJob(deps: Deps, job: JobRow, plan: StepDef[], opts: RunOptions): Promise<JobState> {
  // 'running': interrupted by a shutdown, the next process takes the job up again
  return new JobRun(deps, job, plan, opts).run();
}

class JobRun {
  private failure: AppError | null;
  private order: Planned[] = [];
  private readonly env: StepEnv;
  private readonly exit: AbortSignal;
  private readonly log: Logger;

  constructor(
    private readonly deps: Deps,
    private readonly job: JobRow,
    plan: StepDef[],
    private readonly opts: RunOptions,
  ) {
    this.log = deps.log.child({ jobId: job.id, type: job.type });
    this.env = { deps, job, plan, log: this.log };
    this.exit = opts.exit ?? new AbortController().signal;
    this.failure = job.errorCode ? new AppError(job.errorCode as AppError['code'], job.errorMessage ?? '') : null;
  }

  async run(): Promise<JobState> {
    // `all` parents only wait for their children: no occupation limit applies to them
    const occupation =
      this.job.targetKind === 'all'
        ? null
        : deadline([this.opts.shutdown], (this.job.startedAt ?? Date.now()) + this.deps.config.lockMaxOccupationMs - Date.now(), 'the job');
    try {
      return await this.steps(occupation?.signal ?? this.opts.shutdown);
    } catch (e) {
      // the engine itself failed (SQLITE_BUSY past its wait, a malformed row): the compensation still runs
      this.log.error({ err: e }, 'job runner failed: running its compensation');
      this.fail(toAppError(e));
      await this.compensateAfterEngineError();
      return this.finish();
    } finally {
      occupation?.dispose();
    }
  }

  private async steps(jobSignal: AbortSignal): Promise<JobState> {
    this.order = reconcile(this.deps.db, this.job, this.env.plan, this.log);
    for (const p of this.order) {
      if (FINAL_STEP_STATES.includes(p.row.state)) continue;
      if (this.opts.shutdown.aborted) return this.atShutdown(null);
      if (!this.failure && isCancelRequested(this.deps.db, this.job.id)) this.fail(new AppError('CANCELED', 'canceled on request'));
      if (!this.failure && jobSignal.aborted) this.fail(toAppError(jobSignal.reason));
      if (this.failure && !p.def.always) {
        endStep(this.deps.db, this.job.id, p.row.idx, 'skipped');
        p.row.state = 'skipped';
        continue;
      }
      const end = await this.execute(p, jobSignal);
      if (end === 'shutdown') return this.atShutdown(p);
      if (end) this.fail(end);
    }
    return this.finish();
  }

  /** the step under its signal: the job's limit for normal steps; compensation gets its own */
  private async execute(p: Planned, jobSignal: AbortSignal) {
    if (!p.def.always) return executeStep(this.env, p, jobSignal);
    const undo = this.undoSteps().includes(p);
    // giving a service back goes on through a shutdown (until the process must exit); other compensation
    // (an `all` parent waiting for its children) is resumed by the next process
    const parent = this.job.targetKind === 'all';
    const limit = deadline([undo ? this.exit : this.opts.shutdown], parent ? null : this.deps.config.lockMaxOccupationMs, `step ${p.def.name}`);
    try {
      if (undo) {
        const err = await this.stopHelpers(limit.signal);
        if (err) {
          endStep(this.deps.db, this.job.id, p.row.idx, 'failed', `${err.code}: ${err.message}`);
          p.row.state = 'failed';
          this.recordAttempt(err);
          return err;
        }
      }
      const end = await executeStep(this.env, p, limit.signal);
      if (undo && end && end !== 'shutdown') this.recordAttempt(end);
      return end;
    } finally {
      limit.dispose();
    }
  }

  /** a failed compensation: the holds it left say why (the job's result shows it) */
  private recordAttempt(err: AppError): void {
    for (const h of heldBy(this.deps.db, this.job.id)) recordHoldAttempt(this.deps.db, this.job.id, h.serviceId, `${err.code}: ${err.message}`);
  }

  /** compensation steps that give back a service this job holds down */
  private undoSteps(): Planned[] {
    const held = heldBy(this.deps.db, this.job.id);
    return this.order.filter((p) => p.def.always && held.some((h) => isNamed(p.def, h.undoStep)));
  }

  /** before a service is given back, no helper of the job may still work on it (an archive of its volume; one of a copy goes on) */
  private async stopHelpers(signal: AbortSignal): Promise<AppError | null> {
    try {
      await stopJobHelpers(this.deps, this.job.id, signal, { sparingCopies: true });
      return null;
    } catch (e) {
      const err = toAppError(e);
      return new AppError(err.code, `could not stop the job's helpers before giving the service back: ${err.message}`);
    }
  }

  /**
   * The process stops. A job holding a service down gives it back now (its helpers stopped first); the
   * job stays `running` and the next process takes it up again: at the interrupted step, or from the
   * `whileDown` step's `from` when the interrupted step read what was held. Undo steps are left pending,
   * to run again after the job went on.
   */
  private async atShutdown(interrupted: Planned | null): Promise<'running'> {
    const undo = this.undoSteps();
    if (!undo.length) {
      this.log.info('interrupted by shutdown: the next process resumes the job');
      return 'running';
    }
    const from = interrupted?.def.whileDown?.from;
    const helpers = await this.stopHelpers(this.exit);
    if (helpers && from) {
      // an archive may still read the volume: the service stays down, and the next process goes on with it
      this.log.error({ err: helpers.message }, 'shutdown: the service stays scaled down for the next process');
      return 'running';
    }
    if (helpers) this.log.warn({ err: helpers.message }, 'shutdown: giving the service back all the same');
    if (from && interrupted) this.rewind(from, interrupted);
    for (const p of undo) {
      const limit = deadline([this.exit], this.deps.config.lockMaxOccupationMs, `step ${p.def.name}`);
      const end = await executeStep(this.env, p, limit.signal).finally(() => limit.dispose());
      const what = end === null ? 'gave the service back at shutdown' : `could not give the service back at shutdown: ${end === 'shutdown' ? 'interrupted' : end.message}`;
      if (end === null) this.log.info('shutdown: service given back');
      else this.log.error({ error: what }, 'shutdown: compensation failed');
      resetStep(this.deps.db, this.job.id, p.row.idx, `${what}; runs again when the job is taken up`);
      p.row.state = 'pending';
    }
    return 'running';
  }

  /** rows from `from` through the interrupted one become pending again, their details kept (steps are idempotent with them) */
  private rewind(from: string, interrupted: Planned): void {
    const start = this.order.findIndex((p) => isNamed(p.def, from));
    const end = this.order.indexOf(interrupted);
    if (start < 0 || end < start) return;
    for (const p of this.order.slice(start, end + 1)) {
      resetStep(this.deps.db, this.job.id, p.row.idx, `taken up again from ${from}: a shutdown gave the service back during ${interrupted.def.name}`);
      p.row.state = 'pending';
    }
    this.log.info({ from, interrupted: interrupted.def.name }, 'shutdown: the job will be taken up again from an earlier step');
  }

  /** best effort: every compensation step not yet finished, each on its own */
  private async compensateAfterEngineError(): Promise<void> {
    for (const p of this.order) {
      if (!p.def.always || FINAL_STEP_STATES.includes(p.row.state)) continue;
      try {
        const end = await this.execute(p, this.opts.shutdown);
        if (end && end !== 'shutdown') this.fail(end);
      } catch (e) {
        this.log.error({ err: e, step: p.def.name }, 'compensation step could not run');
      }
    }
  }

  private fail(err: AppError): void {
    if (this.failure) return;
    this.failure = err;
    try {
      recordJobError(this.deps.db, this.job.id, err.code, err.message);
    } catch (e) {
      this.log.error({ err: e }, 'could not record the job error');
    }
  }

  private finish(): JobState {
    const failure = this.failure;
    const state: JobState = failure ? (failure.code === 'CANCELED' ? 'canceled' : 'failed') : 'succeeded';
    const pending = finishJob(this.deps.db, this.job.id, state);
    const takeover = this.opts.takeover;
    if (takeover) {
      const message = `the manager that ran this job was lost; another instance restored the state from the bucket (generation ${takeover.generation}) and finished it`;
      mergeJobResult(this.deps.db, this.job.id, { takeover: { ...takeover, message } });
    }
    if (pending) {
      mergeJobResult(this.deps.db, this.job.id, { compensation: compensationSummary(this.deps.db, this.job.id, 'pending') });
      this.log.error('the job ended with a service still scaled down: its compensation is retried every minute');
    }
    this.log.info({ state, error: failure ? { code: failure.code, message: failure.message } : undefined }, 'job finished');
    return state;
  }
}
