import { AppError, isAppError } from '../errors.js';
import { type JobRow, type JobState, finishJob, getJob, isCancelRequested, recordJobError, setJobResult } from '../db/jobs.js';
import { type StepRow, endStep, saveStepDetail, startStep, stepsOf } from '../db/steps.js';
import type { Deps, StepContext, StepDef } from './types.js';

export interface RunOptions {
  /** aborted when the process shuts down */
  shutdown: AbortSignal;
}

/**
 * Runs a claimed job's steps in order, from its first unfinished step (so a job resumed after a crash
 * re-enters the step it was in). After a failure, cancellation or timeout only `always` steps run.
 */
export async function runJob(deps: Deps, job: JobRow, defs: StepDef[], opts: RunOptions): Promise<JobState> {
  const log = deps.log.child({ jobId: job.id, type: job.type });
  const occupation = occupationSignal(deps, job, opts.shutdown);
  let failure: AppError | null = job.errorCode ? new AppError(job.errorCode as AppError['code'], job.errorMessage ?? '') : null;
  const fail = (err: AppError) => {
    if (failure) return;
    failure = err;
    recordJobError(deps.db, job.id, err.code, err.message);
  };
  try {
    for (const row of stepsOf(deps.db, job.id)) {
      if (row.state === 'done' || row.state === 'skipped' || row.state === 'failed') continue;
      if (opts.shutdown.aborted) return 'running'; // resumed by the next process
      if (!failure && isCancelRequested(deps.db, job.id)) fail(new AppError('CANCELED', 'canceled on request'));
      if (!failure && occupation.signal.aborted) fail(toAppError(occupation.signal.reason));
      const def = defs[row.idx];
      if (!def || def.name !== row.name) {
        fail(new AppError('INTERNAL', `step ${row.idx} (${row.name}) is not part of the ${job.type} plan`));
        endStep(deps.db, job.id, row.idx, 'failed', 'unknown step');
        continue;
      }
      if (failure && !row.always) {
        endStep(deps.db, job.id, row.idx, 'skipped');
        continue;
      }
      // compensation must not be cut short by the occupation limit that may have caused it
      const signal = row.always ? opts.shutdown : occupation.signal;
      const err = await runStep(deps, job, row, def, signal, log);
      if (err === 'shutdown') return 'running';
      if (err) fail(err);
    }
    if (opts.shutdown.aborted) return 'running';
    const state: JobState = failure ? ((failure as AppError).code === 'CANCELED' ? 'canceled' : 'failed') : 'succeeded';
    finishJob(deps.db, job.id, state);
    log.info({ state, error: failure ? { code: (failure as AppError).code, message: (failure as AppError).message } : undefined }, 'job finished');
    return state;
  } finally {
    occupation.dispose();
  }
}

async function runStep(deps: Deps, job: JobRow, row: StepRow, def: StepDef, signal: AbortSignal, jobLog: Deps['log']): Promise<AppError | 'shutdown' | null> {
  const log = jobLog.child({ step: def.name });
  const reentered = row.state === 'running';
  startStep(deps.db, job.id, row.idx);
  log.info({ reentered }, reentered ? 'step re-entered after restart' : 'step started');
  const ctx: StepContext = {
    job: getJob(deps.db, job.id) ?? job,
    deps,
    log,
    signal,
    detail: row.detail,
    reentered,
    save: (detail) => saveStepDetail(deps.db, job.id, row.idx, detail),
    detailOf: (name) => stepsOf(deps.db, job.id).find((s) => s.name === name)?.detail ?? {},
    setResult: (result) => setJobResult(deps.db, job.id, result),
  };
  try {
    const out = (await def.run(ctx)) ?? {};
    if (out.detail) saveStepDetail(deps.db, job.id, row.idx, out.detail);
    endStep(deps.db, job.id, row.idx, out.skipped ? 'skipped' : 'done', out.output ?? null);
    log.info({ state: out.skipped ? 'skipped' : 'done' }, 'step ended');
    return null;
  } catch (e) {
    if (signal.aborted && signal.reason instanceof ShutdownSignal) {
      log.info('step interrupted by shutdown; the next process re-enters it');
      return 'shutdown';
    }
    const err = toAppError(e);
    if (err.code === 'INTERNAL') log.error({ err: e }, 'step crashed');
    endStep(deps.db, job.id, row.idx, 'failed', `${err.code}: ${err.message}`);
    log.warn({ code: err.code, message: err.message }, 'step failed');
    return err;
  }
}

/** abort reason when the process stops: an interrupted step stays `running`, to be re-entered by the next process */
export class ShutdownSignal extends Error {
  constructor() {
    super('swarm-utils is shutting down');
  }
}

export function toAppError(e: unknown): AppError {
  if (isAppError(e)) return e;
  return new AppError('INTERNAL', e instanceof Error ? e.message : String(e));
}

/** aborts at startedAt + LOCK_MAX_OCCUPATION_TIME, or when the process shuts down */
function occupationSignal(deps: Deps, job: JobRow, shutdown: AbortSignal) {
  const ctrl = new AbortController();
  const limit = deps.config.lockMaxOccupationMs;
  const left = (job.startedAt ?? Date.now()) + limit - Date.now();
  const timer = setTimeout(() => ctrl.abort(new AppError('TIMEOUT', `job held its locks longer than ${limit} ms`)), Math.max(0, left));
  const onShutdown = () => ctrl.abort(shutdown.reason);
  shutdown.addEventListener('abort', onShutdown, { once: true });
  return {
    signal: ctrl.signal,
    dispose: () => {
      clearTimeout(timer);
      shutdown.removeEventListener('abort', onShutdown);
    },
  };
}
