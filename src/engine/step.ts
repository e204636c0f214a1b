/**
 * Runs one step of a job: records its start and end, gives it its context (typed details, holds), and
 * ends it when its signal aborts even if the step's code never settles.
 */
import { AppError, isAppError } from '../errors.js';
import { type JobRow, getJob, setJobResult } from '../db/jobs.js';
import { endStep, saveStepDetail, startStep } from '../db/steps.js';
import type { Logger } from '../log.js';
import { gatedPort } from './gated-port.js';
import { createHolds } from './holds.js';
import { guardOmitted } from './omitted.js';
import { type Planned, isEmpty, isNamed, parseDetail, rowOf } from './journal.js';
import { ShutdownSignal, raceSignal } from './limits.js';
import type { Deps, Detail, StepContext, StepDef, StepRef } from './types.js';

export interface StepEnv {
  deps: Deps;
  job: JobRow;
  plan: StepDef[];
  log: Logger;
}

/** null: done or skipped; 'shutdown': interrupted by the process stopping (the row stays running); else the error */
export type StepEnd = AppError | 'shutdown' | null;

export async function executeStep(env: StepEnv, p: Planned, signal: AbortSignal, opts: { note?: string } = {}): Promise<StepEnd> {
  const { deps, job } = env;
  const log = env.log.child({ step: p.def.name });
  const reentered = p.row.state === 'running';
  startStep(deps.db, job.id, p.row.idx);
  p.row.state = 'running';
  log.info({ reentered }, reentered ? 'step re-entered after restart' : 'step started');
  try {
    const ctx = context(env, p, signal, log, reentered);
    const out = (await raceSignal(p.def.run(ctx), signal)) ?? {};
    if (out.detail) ctx.save(out.detail);
    const state = out.skipped ? 'skipped' : 'done';
    const output = out.output ?? null;
    endStep(deps.db, job.id, p.row.idx, state, opts.note ? `${output ?? ''}${output ? ' ' : ''}(${opts.note})` : output);
    p.row.state = state;
    log.info({ state }, 'step ended');
    return null;
  } catch (e) {
    if (signal.aborted && signal.reason instanceof ShutdownSignal) {
      log.info('step interrupted by shutdown');
      return 'shutdown';
    }
    const err = toAppError(e);
    if (err.code === 'INTERNAL') log.error({ err: e }, 'step crashed');
    endStep(deps.db, job.id, p.row.idx, 'failed', `${err.code}: ${err.message}`);
    p.row.state = 'failed';
    log.warn({ code: err.code, message: err.message }, 'step failed');
    return err;
  }
}

export function toAppError(e: unknown): AppError {
  if (isAppError(e)) return e;
  return new AppError('INTERNAL', e instanceof Error ? e.message : String(e));
}

function context(env: StepEnv, p: Planned, signal: AbortSignal, log: Logger, reentered: boolean): StepContext {
  const { job } = env;
  // with the state copied to the bucket, every action of the step waits for the copy first (gated-port.ts)
  const deps = env.deps.state ? { ...env.deps, docker: gatedPort(env.deps.docker, env.deps.state, { compensation: !!p.def.always, signal }) } : env.deps;
  const schema = p.def.detail;
  return {
    job: guardOmitted(getJob(deps.db, job.id) ?? job),
    deps,
    log,
    signal,
    // parsed here, before the step runs: a detail an older version wrote in another shape fails the step loudly
    detail: isEmpty(p.row.detail) ? {} : parseDetail(schema, p.row.detail, p.def.name),
    reentered,
    save: (detail) => {
      parseDetail(schema, detail, p.def.name);
      saveStepDetail(deps.db, job.id, p.row.idx, detail);
      p.row.detail = detail;
    },
    detailOf: ((step: string | StepRef) => readDetail(env, step)) as StepContext['detailOf'],
    setResult: (result) => setJobResult(deps.db, job.id, result),
    holds: createHolds({ db: deps.db, config: deps.config, log }, job, signal),
  };
}

function readDetail(env: StepEnv, step: string | StepRef): Detail | null {
  const ref = typeof step === 'string' ? { name: step } : step;
  const raw = rowOf(env.deps.db, env.job.id, env.plan, ref)?.detail ?? {};
  if (isEmpty(raw)) return typeof step === 'string' ? raw : null;
  const schema = typeof step === 'string' ? env.plan.find((d) => isNamed(d, step))?.detail : step.detail;
  return parseDetail(schema, raw, ref.name);
}
