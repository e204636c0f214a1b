/**
 * Compensation that could not finish (Docker unreachable past the step's limit) is retried at every
 * start-up and every minute until it succeeds, unless the service's spec changed meanwhile (an operator
 * acted): then the job records that it left the service to the operator. Until then the job keeps its
 * locks and its hold, so no other job acts on the service and no prune runs on its nodes.
 */
import type { Db } from '../db/index.js';
import { type Compensation, type JobRow, endCompensation, getJob, jobsWithPendingCompensation, mergeJobResult } from '../db/jobs.js';
import { type ServiceHold, endHold, heldBy, holdsOf, recordHoldAttempt } from '../db/holds.js';
import { stepsOf } from '../db/steps.js';
import { stopJobHelpers } from './helpers.js';
import { isNamed } from './journal.js';
import { deadline } from './limits.js';
import { executeStep, toAppError } from './step.js';
import { AppError } from '../errors.js';
import type { Deps, StepDef } from './types.js';

/** what a job's result says about its compensation (`result.compensation`) */
export function compensationSummary(db: Db, jobId: number, state: Compensation) {
  const messages: Record<Compensation, string> = {
    pending: 'a service is still scaled down: swarm-utils retries giving it back every minute',
    done: 'every service was given back',
    operator: 'a service was left to the operator: its spec changed since swarm-utils scaled it down',
  };
  return {
    state,
    message: messages[state],
    services: holdsOf(db, jobId).map((h) => ({
      service: h.service,
      serviceId: h.serviceId,
      state: h.state === 'held' ? 'pending' : h.state === 'released' ? 'given back' : 'left to the operator',
      specVersion: h.specVersion,
      attempts: h.attempts,
      error: h.lastError,
    })),
    updatedAt: new Date().toISOString(),
  };
}

export interface RetryEnv {
  deps: Deps;
  /** the current plan of a job's type */
  planOf(job: JobRow): StepDef[];
  /** aborted when the process stops */
  signal: AbortSignal;
  /** the compensation of a job ended: done, or left to the operator */
  ended(job: JobRow, outcome: 'done' | 'operator'): void;
}

/** one pass over every finished job whose compensation is pending */
export async function retryCompensations(env: RetryEnv): Promise<void> {
  for (const job of jobsWithPendingCompensation(env.deps.db)) {
    if (env.signal.aborted) return;
    try {
      await retryJob(env, job);
    } catch (e) {
      env.deps.log.error({ err: e, jobId: job.id }, 'compensation retry failed');
    }
  }
}

async function retryJob(env: RetryEnv, job: JobRow): Promise<void> {
  const { db } = env.deps;
  const log = env.deps.log.child({ jobId: job.id, type: job.type });
  for (const hold of heldBy(db, job.id)) {
    if (env.signal.aborted) return;
    const error = await retryHold(env, job, hold, log);
    if (error !== null) {
      recordHoldAttempt(db, job.id, hold.serviceId, error);
      log.warn({ service: hold.service, error }, 'compensation retry did not succeed: tried again in a minute');
    }
  }
  if (heldBy(db, job.id).length) {
    mergeJobResult(db, job.id, { compensation: compensationSummary(db, job.id, 'pending') });
    return;
  }
  const outcome = holdsOf(db, job.id).some((h) => h.state === 'operator') ? 'operator' : 'done';
  endCompensation(db, job.id, outcome);
  mergeJobResult(db, job.id, { compensation: compensationSummary(db, job.id, outcome) });
  if (outcome === 'operator') log.error('compensation left to the operator: the service’s spec changed since swarm-utils scaled it down');
  else log.info('compensation retried with success: the service was given back');
  env.ended(getJob(db, job.id) ?? job, outcome);
}

/** null when the hold ended (given back, or left to the operator); otherwise why it is still pending */
async function retryHold(env: RetryEnv, job: JobRow, hold: ServiceHold, log: Deps['log']): Promise<string | null> {
  const { db, docker } = env.deps;
  let svc;
  try {
    svc = await docker.getService(hold.serviceId);
  } catch (e) {
    return toAppError(e).message;
  }
  if (!svc) {
    endHold(db, job.id, hold.serviceId, 'operator', `service ${hold.service} no longer exists`);
    return null;
  }
  if (hold.specVersion !== null && svc.version !== hold.specVersion && hold.replicas !== null && svc.replicas === hold.replicas) {
    // a scale-up whose answer was lost (it took effect after its call timed out), or an operator who did the same
    endHold(db, job.id, hold.serviceId, 'released', `${hold.service} is at its ${hold.replicas} replica(s) again (spec version ${svc.version})`);
    return null;
  }
  if (hold.specVersion !== null && svc.version !== hold.specVersion) {
    const note = `the spec of ${hold.service} changed (version ${hold.specVersion} → ${svc.version}) since swarm-utils scaled it down: left to the operator`;
    endHold(db, job.id, hold.serviceId, 'operator', note);
    return null;
  }
  const plan = env.planOf(job);
  const def = plan.find((d) => isNamed(d, hold.undoStep));
  const row = def && stepsOf(db, job.id).find((r) => isNamed(def, r.name));
  if (!def || !row) {
    endHold(db, job.id, hold.serviceId, 'operator', `this version has no step "${hold.undoStep}" to give ${hold.service} back: left to the operator`);
    return null;
  }
  // a stop here must not look like a shutdown: the row is recorded as failed and retried at the next start
  const stopping = new AbortController();
  const onStop = () => stopping.abort(new AppError('CANCELED', 'the process stops: retried at the next start'));
  env.signal.addEventListener('abort', onStop, { once: true });
  const limit = deadline([stopping.signal], env.deps.config.lockMaxOccupationMs, `step ${def.name}`);
  try {
    await stopJobHelpers(env.deps, job.id, limit.signal, { sparingCopies: true });
    const end = await executeStep({ deps: env.deps, job, plan, log }, { def, row }, limit.signal, { note: 'retried after the job ended' });
    if (end === null && !heldBy(db, job.id).some((h) => h.serviceId === hold.serviceId)) return null;
    return end === null ? `step ${def.name} ended without giving ${hold.service} back` : end === 'shutdown' ? 'interrupted' : end.message;
  } catch (e) {
    return toAppError(e).message;
  } finally {
    limit.dispose();
    env.signal.removeEventListener('abort', onStop);
  }
}
