import type { HelperRef } from '../swarm/port.js';
import { helperPrefix } from '../swarm/helpers.js';
import type { Deps } from './types.js';

/** how long one helper may take to stop when a job is done with it */
export const HELPER_STOP_MS = 30_000;

/** helpers of this installation (another database's helpers are not ours to adopt or remove), optionally of one job */
export async function ownHelpers(deps: Pick<Deps, 'docker' | 'instance'>, jobId?: number): Promise<HelperRef[]> {
  const prefix = helperPrefix(deps.instance);
  return (await deps.docker.listHelpers(jobId)).filter((h) => h.name.startsWith(prefix));
}

/**
 * Stops every helper of a job and waits until none runs: before a compensation gives a service back, so no
 * helper of the job (an archive of its volume) still works on it; `sparingCopies` then leaves the helpers that
 * read only a copy (an archive of a staging volume) at their work. Throws when Docker does not answer.
 */
export async function stopJobHelpers(
  deps: Pick<Deps, 'docker' | 'instance' | 'log'>,
  jobId: number,
  signal?: AbortSignal,
  opts: { sparingCopies?: boolean } = {},
): Promise<number> {
  const helpers = (await ownHelpers(deps, jobId)).filter((h) => !(opts.sparingCopies && h.worksOnCopy));
  for (const h of helpers) {
    deps.log.info({ jobId, helper: h.name }, 'stopping helper');
    await deps.docker.stopHelper(h, { timeoutMs: HELPER_STOP_MS, signal });
  }
  return helpers.length;
}
