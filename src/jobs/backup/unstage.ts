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
import { ShutdownSignal, sleep, withLimit } from '../../engine/limits.js';
import type { Deps, StepContext, StepOutcome } from '../../engine/types.js';
import { type StagingRow, markStagingRemoved, orphanStaging, pendingStagingOf } from '../../db/staging.js';
import { helperName } from '../../swarm/helpers.js';
import type { Logger } from '../../log.js';
import { tail } from '../exec.js';
import { registryAuthFor } from '../image.js';
import type { HelperRef } from '../../swarm/port.js';
import { ARCHIVE_STAGED } from './archive.js';
import { type Pair, archiveHelperName } from './plan.js';
import { RESOLVE } from './resolve.js';
import { stagedPairs } from './stage.js';
import { STAGING_LABEL, STAGING_ORIGIN_LABEL, helperEnded, stagingVolume } from './staging-helper.js';

/** one removal helper may take this long (a node that is down never answers; the sweep tries again) */
const REMOVAL_MAX_MS = 120_000;
/** how often the sweep looks for staging volumes of jobs that are over */
export const SWEEP_EVERY_MS = 3600_000;

/**
 * SWARM_UTILS_AFTER: archive helpers to wait for on the node first (the removal is started with the archives,
 * so that it is done when they are): each must have run and exited 0, else nothing is removed (exit 3) and
 * the job's `unstage` step removes the volumes itself.
 */
const UNSTAGE_SH = `set -u
for svc in \${SWARM_UTILS_AFTER:-}; do
  c=''
  while [ -z "$c" ]; do c=$(docker ps -aq --filter "label=com.docker.swarm.service.name=$svc" | head -n 1); [ -n "$c" ] || sleep 0.2; done
  code=$(docker wait "$c" 2>/dev/null)
  if [ "$code" != 0 ]; then echo "swarm-utils-unstage waited for $svc: exit \${code:-unknown}, nothing removed"; exit 3; fi
done
rc=0
vols=$( { for v in $SWARM_UTILS_VOLUMES; do echo "$v"; done; docker volume ls -q --filter "label=$SWARM_UTILS_LABEL"; } | sort -u)
for v in $vols; do
  if ! origin=$(docker volume inspect -f 'origin={{ index .Labels "${STAGING_ORIGIN_LABEL}" }}' "$v" 2>/dev/null); then echo "swarm-utils-unstage gone $v"; continue; fi
  users=$(docker ps -aq --filter "volume=$v")
  [ -z "$users" ] || docker rm -f $users >/dev/null 2>&1
  if err=$(docker volume rm "$v" 2>&1 >/dev/null); then
    echo "swarm-utils-unstage removed $v $origin"
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

interface RemovalTarget {
  jobId: number;
  nodeId: string;
  volumes: string[];
  /** `unstage` (started with the archives), `unstage-now` (by the step itself), `sweep` */
  kind: 'unstage' | 'unstage-now' | 'sweep';
  /** archive helpers of the node to wait for first */
  after?: string[];
}

const removalName = (instance: string, t: Pick<RemovalTarget, 'jobId' | 'nodeId' | 'kind'>): string =>
  helperName(instance, t.jobId, t.kind, t.nodeId.slice(0, 12));

/** a helper on the node that removes the job's staging volumes there: the named ones and any carrying the job's label */
function launchRemoval(deps: Pick<Deps, 'docker' | 'config' | 'instance'>, t: RemovalTarget): Promise<HelperRef> {
  const { docker, config, instance } = deps;
  return docker.createHelper({
    name: removalName(instance, t),
    jobId: t.jobId,
    nodeId: t.nodeId,
    image: config.dockerCliImage,
    command: ['sh', '-c', UNSTAGE_SH],
    env: {
      SWARM_UTILS_VOLUMES: t.volumes.join(' '),
      SWARM_UTILS_LABEL: `${STAGING_LABEL}=${instance}.${t.jobId}`,
      ...(t.after?.length ? { SWARM_UTILS_AFTER: t.after.join(' ') } : {}),
    },
    mounts: [{ type: 'bind', source: '/var/run/docker.sock', target: '/var/run/docker.sock', readOnly: false }],
    auth: registryAuthFor(config.dockerCliImage, { config }),
    // it removes copies only, once their archives are uploaded: it goes on while the job gives the service back
    worksOnCopy: true,
  });
}

/**
 * Waits for a removal helper and reads what it removed: as soon as its log has a word on each of `volumes`, or
 * else from its end. The helper is removed (or left to the next process on a shutdown).
 */
async function awaitRemoval(deps: Pick<Deps, 'docker' | 'config'>, ref: HelperRef, volumes: string[], signal: AbortSignal, log: Logger): Promise<NodeRemoval> {
  const { docker, config } = deps;
  let ended = false;
  try {
    const res = await withLimit(`the staging removal ${ref.name}`, Math.min(config.lockMaxExecutionMs, REMOVAL_MAX_MS), signal, async (s) => {
      for (;;) {
        const [tasks, lines] = await Promise.all([docker.listTasks(ref.id), docker.serviceLogs(ref.id, 1000)]);
        const said = parseUnstageOutput(lines.join('\n'));
        if (volumes.every((v) => said.removed.includes(v) || said.kept.includes(v))) {
          return { exitCode: said.kept.length ? 1 : 0, state: 'removed', error: null, output: lines.join('\n') };
        }
        if (helperEnded(tasks)) return docker.waitHelper(ref, { timeoutMs: HELPER_STOP_MS, signal: s, pollMs: 100 });
        await sleep(100, s);
      }
    });
    ended = true;
    // only what the helper said is gone is marked removed: lost output leaves the rest to the sweep
    const parsed = parseUnstageOutput(res.output);
    const error =
      res.exitCode === null ? `the removal helper did not run (${res.state}): ${res.error ?? ''}`.trim() : res.exitCode !== 0 ? tail(res.output, 400) : null;
    return { removed: parsed.removed, emptied: parsed.emptied, error };
  } finally {
    if (!(signal.aborted && signal.reason instanceof ShutdownSignal)) {
      const gone = ended ? docker.removeService(ref.id) : docker.stopHelper(ref, { timeoutMs: HELPER_STOP_MS });
      await gone.catch((e: unknown) => log.warn({ err: e, helper: ref.name }, 'could not remove the staging removal helper'));
    }
  }
}

/** the removal of the volumes on a node, now: a helper made (or found again) and waited for */
export async function removeStagingOnNode(
  deps: Pick<Deps, 'docker' | 'config' | 'instance'>,
  t: RemovalTarget,
  signal: AbortSignal,
  log: Logger,
): Promise<NodeRemoval> {
  return awaitRemoval(deps, await launchRemoval(deps, t), t.volumes, signal, log);
}

/**
 * Step `archive-staged` starts each node's removal with its archives: the helper waits there for the node's
 * archive helpers that are still to run, and removes the node's staging volumes once they all exited 0.
 */
export async function startRemovals(ctx: Pick<StepContext, 'deps' | 'job'>, pairs: Pair[], done: Record<string, unknown>): Promise<void> {
  const rows = pendingStagingOf(ctx.deps.db, ctx.job.id);
  const nodes = new Set(pairs.map((p) => p.nodeId));
  for (const nodeId of nodes) {
    const volumes = rows.filter((r) => r.nodeId === nodeId).map((r) => r.volume);
    const after = pairs.filter((p) => p.nodeId === nodeId && !done[p.index]).map((p) => archiveHelperName(ctx.deps.instance, ctx.job.id, p));
    if (volumes.length) await launchRemoval(ctx.deps, { jobId: ctx.job.id, nodeId, volumes, kind: 'unstage', after });
  }
}

/** the rows of each node */
const perNode = (rows: StagingRow[]): StagingRow[][] => {
  const out = new Map<string, StagingRow[]>();
  for (const r of rows) out.set(r.nodeId, [...(out.get(r.nodeId) ?? []), r]);
  return [...out.values()];
};

/**
 * Removes the rows' volumes node by node (in parallel) and marks what is gone; answers a line per node. With
 * `started`, a node's removal started with its archives is waited for when the archives all succeeded (it is
 * done by then), else stopped; what it did not remove is removed now.
 */
async function removeRows(
  deps: Deps,
  jobId: number,
  rows: StagingRow[],
  o: { signal: AbortSignal; log: Logger; kind: 'unstage-now' | 'sweep'; started?: 'await' | 'stop' },
): Promise<{ lines: string[]; emptied: string[] }> {
  const emptied: string[] = [];
  const lines = await Promise.all(
    perNode(rows).map(async (nodeRows) => {
      const { nodeId, node } = nodeRows[0]!;
      const volumes = nodeRows.map((r) => r.volume);
      const left = new Set(volumes);
      let error: string | null = null;
      const take = (res: NodeRemoval) => {
        markStagingRemoved(deps.db, jobId, res.removed);
        emptied.push(...res.emptied);
        for (const v of res.removed) left.delete(v);
        error = res.error;
      };
      try {
        const early = o.started ? await deps.docker.findHelper(removalName(deps.instance, { jobId, nodeId, kind: 'unstage' })) : null;
        if (early && o.started === 'await') take(await awaitRemoval(deps, early, volumes, o.signal, o.log));
        else if (early) await deps.docker.stopHelper(early, { timeoutMs: HELPER_STOP_MS, signal: o.signal });
        if (left.size) take(await removeStagingOnNode(deps, { jobId, nodeId, volumes: [...left], kind: o.kind }, o.signal, o.log));
      } catch (e) {
        if (o.signal.aborted && o.signal.reason instanceof ShutdownSignal) throw e;
        error = e instanceof Error ? e.message : String(e);
      }
      if (left.size) o.log.warn({ node, error, volumes: [...left] }, 'staging volumes left for the sweep');
      return left.size
        ? `[${node}] ${volumes.length - left.size} of ${volumes.length} staging volume(s) removed; the others are removed by the sweep: ${error ?? 'not confirmed'}`
        : `[${node}] ${volumes.length} staging volume(s) removed`;
    }),
  );
  return { lines, emptied };
}

/** step `unstage` (always runs): the job's staging volumes are removed; one that cannot be is left to the sweep */
export async function unstage(ctx: StepContext): Promise<StepOutcome> {
  const rows = pendingStagingOf(ctx.deps.db, ctx.job.id);
  if (!rows.length) return { skipped: true, output: 'no staging volume' };
  // the removals `archive-staged` started are done once its archives all succeeded; otherwise they may wait forever
  const r = ctx.detailOf(RESOLVE);
  const archived = ctx.detailOf(ARCHIVE_STAGED)?.done ?? {};
  const staged = r ? stagedPairs(ctx, r) : new Map();
  const allArchived = [...staged.keys()].every((i) => archived[i] !== undefined);
  const { lines, emptied } = await removeRows(ctx.deps, ctx.job.id, rows, { signal: ctx.signal, log: ctx.log, kind: 'unstage-now', started: allArchived ? 'await' : 'stop' });
  if (emptied.length) {
    const keys = (r?.pairs ?? []).filter((p) => emptied.includes(stagingVolume(ctx.deps.instance, ctx.job.id, p.index))).map((p) => p.key);
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
      const { lines } = await removeRows(deps, jobId, jobRows, { signal, log, kind: 'sweep' });
      log.info({ result: lines }, 'staging sweep');
    } catch (e) {
      log.warn({ err: e }, 'staging sweep interrupted');
    }
  }
}
