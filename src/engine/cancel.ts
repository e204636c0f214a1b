import { immediate, type Db } from '../db/index.js';
import { FINAL_STATES, childrenOf, finishJob, getJob, recordJobError, requestCancel } from '../db/jobs.js';

/**
 * Cancels a job and its children in one transaction: a queued job ends `canceled` at once, a running one
 * stops at its next step boundary and compensates. An `all` parent goes on waiting until every child ended.
 * Returns the ids of the queued jobs it ended (their waiters are woken by the caller).
 */
export function cancelTree(db: Db, id: number): number[] {
  const ended: number[] = [];
  const walk = (jobId: number) => {
    const job = getJob(db, jobId);
    if (!job || FINAL_STATES.includes(job.state)) return;
    if (job.state === 'queued') {
      recordJobError(db, jobId, 'CANCELED', 'canceled on request before it started');
      finishJob(db, jobId, 'canceled');
      ended.push(jobId);
    } else requestCancel(db, jobId);
    for (const child of childrenOf(db, jobId)) walk(child.id);
  };
  immediate(db, () => walk(id));
  return ended;
}
