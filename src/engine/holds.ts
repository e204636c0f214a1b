/**
 * What a running job holds besides its locks, decided step by step because it is only known then: a
 * service it scaled down (with the nodes its tasks ran on) and a node it prunes. The two exclude each
 * other per node: a prune's `image prune -a` must never remove the image of a service that is stopped
 * and about to start again there. Each check-and-take is one IMMEDIATE transaction; a conflict is waited
 * out for at most LOCK_TIMEOUT, then the step fails LOCK_TIMEOUT.
 */
import { AppError } from '../errors.js';
import { immediate } from '../db/index.js';
import type { JobRow } from '../db/jobs.js';
import { endHold, heldBy, holdsOnNodes, insertPrune, prunesOnNodes, setHoldVersion, upsertHold } from '../db/holds.js';
import { sleep } from './limits.js';
import type { Deps, Holds } from './types.js';

const POLL_MS = 500;

export function createHolds(deps: Pick<Deps, 'db' | 'config' | 'log'>, job: Pick<JobRow, 'id'>, signal: AbortSignal): Holds {
  const { db } = deps;
  return {
    async holdService(h) {
      await waitOut(deps, signal, `scale ${h.service} down`, () =>
        immediate(db, () => {
          const prunes = prunesOnNodes(db, h.nodes, job.id);
          if (prunes.length) return prunes.map((p) => `node ${p.nodeId} is being pruned by job ${p.jobId}`).join(', ');
          upsertHold(db, { jobId: job.id, serviceId: h.serviceId, service: h.service, nodes: h.nodes, undoStep: h.undo, replicas: h.replicas });
          return null;
        }),
      );
    },
    setVersion: (serviceId, version) => setHoldVersion(db, job.id, serviceId, version),
    releaseService: (serviceId) => endHold(db, job.id, serviceId, 'released'),
    isHeld: (serviceId) => heldBy(db, job.id).some((h) => h.serviceId === serviceId),
    async holdNode(nodeId, hostname) {
      const node = hostname ? `${hostname} (${nodeId})` : nodeId;
      await waitOut(deps, signal, `prune node ${node}`, () =>
        immediate(db, () => {
          const holds = holdsOnNodes(db, [nodeId], job.id);
          if (holds.length) return holds.map((x) => `job ${x.jobId} holds service ${x.service}, which had a task there, scaled down`).join(', ');
          const prunes = prunesOnNodes(db, [nodeId], job.id);
          if (prunes.length) return `job ${prunes[0]!.jobId} prunes it`;
          insertPrune(db, nodeId, job.id);
          return null;
        }),
      );
    },
  };
}

/** retries `attempt` (null: taken; otherwise why not) until it succeeds or LOCK_TIMEOUT passed */
async function waitOut(deps: Pick<Deps, 'config' | 'log'>, signal: AbortSignal, what: string, attempt: () => string | null): Promise<void> {
  const limit = deps.config.lockTimeoutMs;
  const end = Date.now() + limit;
  let waiting = false;
  for (;;) {
    const why = attempt();
    if (why === null) {
      if (waiting) deps.log.info({ what }, 'no longer waiting');
      return;
    }
    if (Date.now() >= end) throw new AppError('LOCK_TIMEOUT', `could not ${what} within ${limit} ms: ${why}`);
    if (!waiting) deps.log.info({ what, why }, 'waiting');
    waiting = true;
    await sleep(Math.min(POLL_MS, Math.max(1, end - Date.now())), signal);
  }
}
