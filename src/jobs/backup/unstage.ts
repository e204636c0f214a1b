/**
 * Staging volumes are removed when their job ends (the `unstage` step, which runs whatever happened before
 * it) and, for a job that ended without it (a node that was down, a removal that failed), by a sweep at
 * start-up and every hour. Both find the volumes on each node by the job's staging label, and by the names
 * the job recorded before they could exist (db/staging.ts). A staging volume is in use by the stopped
 * containers of the job's helpers (Docker 20.10 leaves those behind): they go first.
 *
 * The label also tells who made a volume: a staging copy that had gone missing before its archive ran is
 * made again, empty, by Docker at the archive's mount; its `archive` origin fails the job here rather than
 * leave an empty archive unnoticed.
 */
import { AppError } from '../../errors.js';
import { HELPER_STOP_MS } from '../../engine/helpers.js';
import { ShutdownSignal } from '../../engine/limits.js';
import type { Deps, StepContext, StepOutcome } from '../../engine/types.js';
import { type StagingRow, markStagingRemoved, orphanStaging, pendingStagingOf } from '../../db/staging.js';
import { helperName } from '../../swarm/helpers.js';
import type { Logger } from '../../log.js';
import { tail } from '../exec.js';
import { registryAuthFor } from '../image.js';
import { RESOLVE } from './resolve.js';
import { STAGING_LABEL, STAGING_ORIGIN_LABEL } from './staging-helper.js';

/** one removal helper may take this long (a node that is down never answers; the sweep tries again) */
const REMOVAL_MAX_MS = 120_000;
/** how often the sweep looks for staging volumes of jobs that are over */
export const SWEEP_EVERY_MS = 3600_000;

const UNSTAGE_SH = `set -u
rc=0
vols=$( { for v in $SWARM_UTILS_VOLUMES; do echo "$v"; done; docker volume ls -q --filter "label=$SWARM_UTILS_LABEL"; } | sort -u)
for v in $vols; do
  if ! docker volume inspect "$v" >/dev/null 2>&1; then echo "swarm-utils-unstage gone $v"; continue; fi
  origin=$(docker volume inspect -f '{{ index .Labels "${STAGING_ORIGIN_LABEL}" }}' "$v" 2>/dev/null)
  for c in $(docker ps -aq --filter "volume=$v"); do docker rm -f "$c" >/dev/null 2>&1; done
  if err=$(docker volume rm "$v" 2>&1 >/dev/null); then
    echo "swarm-utils-unstage removed $v origin=$origin"
  else
    echo "swarm-utils-unstage kept $v $err"; rc=1
  fi
done
exit $rc
`;

export interface NodeRemoval {
  removed: string[];
  /** volumes Docker made at an archive's mount: their copy was gone when the archive ran */
  emptied: string[];
  error: string | null;
}

const LINE = /^swarm-utils-unstage (removed|gone|kept) (\S+)(?: (.*))?$/;

/** reads the removal helper's output: `removed` and `gone` volumes are no more, `kept` ones could not be removed */
export function parseUnstageOutput(output: string): Omit<NodeRemoval, 'error'> & { kept: string[] } {
  const out = { removed: [] as string[], emptied: [] as string[], kept: [] as string[] };
  for (const line of output.split(/\r?\n/)) {
    const m = LINE.exec(line.trim());
    if (!m) continue;
    if (m[1] === 'kept') out.kept.push(m[2]!);
    else out.removed.push(m[2]!);
    if (m[1] === 'removed' && m[3] === `origin=archive`) out.emptied.push(m[2]!);
  }
  return out;
}

/** a helper on the node removes the job's staging volumes there: the named ones and any carrying the job's label */
export async function removeStagingOnNode(
  deps: Pick<Deps, 'docker' | 'config' | 'instance'>,
  o: { jobId: number; nodeId: string; volumes: string[]; signal: AbortSignal; log: Logger },
): Promise<NodeRemoval> {
  const { docker, config, instance } = deps;
  const ref = await docker.createHelper({
    name: helperName(instance, o.jobId, 'unstage', o.nodeId),
    jobId: o.jobId,
    nodeId: o.nodeId,
    image: config.dockerCliImage,
    command: ['sh', '-c', UNSTAGE_SH],
    env: { SWARM_UTILS_VOLUMES: o.volumes.join(' '), SWARM_UTILS_LABEL: `${STAGING_LABEL}=${instance}.${o.jobId}` },
    mounts: [{ type: 'bind', source: '/var/run/docker.sock', target: '/var/run/docker.sock', readOnly: false }],
    auth: registryAuthFor(config.dockerCliImage, { config }),
  });
  let ended = false;
  try {
    const res = await docker.waitHelper(ref, { timeoutMs: Math.min(config.lockMaxExecutionMs, REMOVAL_MAX_MS), signal: o.signal, pollMs: 200 });
    ended = true;
    // only what the helper said is gone is marked removed: lost output leaves the rest to the sweep
    const parsed = parseUnstageOutput(res.output);
    const error =
      res.exitCode === null ? `the removal helper did not run (${res.state}): ${res.error ?? ''}`.trim() : parsed.kept.length ? tail(res.output, 400) : null;
    return { removed: parsed.removed, emptied: parsed.emptied, error };
  } finally {
    if (!(o.signal.aborted && o.signal.reason instanceof ShutdownSignal)) {
      const gone = ended ? docker.removeService(ref.id) : docker.stopHelper(ref, { timeoutMs: HELPER_STOP_MS });
      await gone.catch((e: unknown) => o.log.warn({ err: e, helper: ref.name }, 'could not remove the staging removal helper'));
    }
  }
}

/** the rows of each node */
const perNode = (rows: StagingRow[]): StagingRow[][] => {
  const out = new Map<string, StagingRow[]>();
  for (const r of rows) out.set(r.nodeId, [...(out.get(r.nodeId) ?? []), r]);
  return [...out.values()];
};

/** removes the rows' volumes node by node (in parallel); marks what is gone; answers a line per node */
async function removeRows(deps: Deps, jobId: number, rows: StagingRow[], signal: AbortSignal, log: Logger): Promise<{ lines: string[]; emptied: string[] }> {
  const emptied: string[] = [];
  const lines = await Promise.all(
    perNode(rows).map(async (nodeRows) => {
      const { nodeId, node } = nodeRows[0]!;
      const volumes = nodeRows.map((r) => r.volume);
      let res: NodeRemoval;
      try {
        res = await removeStagingOnNode(deps, { jobId, nodeId, volumes, signal, log });
      } catch (e) {
        if (signal.aborted && signal.reason instanceof ShutdownSignal) throw e;
        res = { removed: [], emptied: [], error: e instanceof Error ? e.message : String(e) };
      }
      markStagingRemoved(deps.db, jobId, res.removed);
      emptied.push(...res.emptied);
      if (res.error) log.warn({ node, error: res.error }, 'staging volumes left for the sweep');
      return res.error
        ? `[${node}] ${res.removed.length} of ${volumes.length} staging volume(s) removed; the others are removed by the sweep: ${res.error}`
        : `[${node}] ${volumes.length} staging volume(s) removed`;
    }),
  );
  return { lines, emptied };
}

/** step `unstage` (always runs): the job's staging volumes are removed; one that cannot be is left to the sweep */
export async function unstage(ctx: StepContext): Promise<StepOutcome> {
  const rows = pendingStagingOf(ctx.deps.db, ctx.job.id);
  if (!rows.length) return { skipped: true, output: 'no staging volume' };
  const { lines, emptied } = await removeRows(ctx.deps, ctx.job.id, rows, ctx.signal, ctx.log);
  if (emptied.length) {
    const r = ctx.detailOf(RESOLVE);
    const keys = (r?.pairs ?? []).filter((p) => emptied.some((v) => v.endsWith(`-staged-${p.index}`))).map((p) => p.key);
    throw new AppError('DOCKER_ERROR', `staging copies were gone before their archive ran, so these archives hold an empty tree: ${keys.join(', ') || emptied.join(', ')}`);
  }
  return { output: lines.join('\n') };
}

/** staging volumes of jobs that are over, found again after a crash or a failed removal */
export async function sweepStaging(deps: Deps, signal: AbortSignal): Promise<void> {
  const rows = orphanStaging(deps.db);
  if (!rows.length) return;
  const byJob = new Map<number, StagingRow[]>();
  for (const r of rows) byJob.set(r.jobId, [...(byJob.get(r.jobId) ?? []), r]);
  for (const [jobId, jobRows] of byJob) {
    if (signal.aborted) return;
    const log = deps.log.child({ jobId, sweep: 'staging' });
    log.warn({ volumes: jobRows.map((r) => r.volume) }, 'removing staging volumes left by a job that is over');
    try {
      const { lines } = await removeRows(deps, jobId, jobRows, signal, log);
      log.info({ result: lines }, 'staging sweep');
    } catch (e) {
      log.warn({ err: e }, 'staging sweep interrupted');
    }
  }
}
