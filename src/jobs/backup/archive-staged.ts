/**
 * Step `archive-staged` of a backup: the staging copies `stage` made, archived and uploaded once the service
 * runs again (archive.ts): an upload never starts before the service is back. What does not upload is launched
 * as soon as the copies exist, at the end of `stage`, so that it is ready when the service is: the job's Docker
 * secrets, and each node's staging removal (unstage.ts), which waits on the node for the archives and removes
 * the copies once they are uploaded. A removal reads only copies: giving the service back leaves it at work.
 */
import { isAppError } from '../../errors.js';
import { ShutdownSignal } from '../../engine/limits.js';
import type { StepContext, StepOutcome } from '../../engine/types.js';
import { ARCHIVE_STAGED, type ArchiveDetail, archivePairs, uploadLimit } from './archive.js';
import type { Pair } from './plan.js';
import { type Resolved, resolvedOf } from './resolve.js';
import { type StageDetail, stage, stagedPairs } from './stage.js';
import { jobSecretMounts } from './secrets.js';
import { startRemovals } from './unstage.js';

export async function archiveStaged(ctx: StepContext<ArchiveDetail>): Promise<StepOutcome<ArchiveDetail>> {
  const r = resolvedOf(ctx);
  const pairs = stagedOf(ctx, r);
  if (!pairs.length) return { skipped: true, output: r.stage ? 'no volume was staged' : 'nothing is staged (staging off or no stop)' };
  // found again when `stage` launched them (or launched now), like the job's secrets (archive.ts)
  const [timeoutMs] = await Promise.all([uploadLimit(ctx, r), startRemovals(ctx, pairs, ctx.detail.done ?? {})]);
  return archivePairs(ctx, pairs, { source: 'staged', timeoutMs });
}

const stagedOf = (ctx: Pick<StepContext, 'detailOf'>, r: Resolved): Pair[] => {
  const staged = stagedPairs(ctx, r);
  return r.pairs.filter((p) => staged.has(p.index));
};

/** step `stage`, then the launch of what `archive-staged` will need: a head start that is no part of the downtime */
export async function stageThenLaunch(ctx: StepContext<StageDetail>): Promise<StepOutcome<StageDetail>> {
  const out = await stage(ctx);
  if (out.skipped) return out;
  try {
    const r = resolvedOf(ctx);
    const done = ctx.detailOf(ARCHIVE_STAGED)?.done ?? {};
    const pairs = stagedOf(ctx, r).filter((p) => !done[p.index]);
    if (pairs.length) {
      await startRemovals(ctx, pairs, done);
      await jobSecretMounts(ctx);
    }
  } catch (e) {
    if (ctx.signal.aborted && ctx.signal.reason instanceof ShutdownSignal) throw e;
    // only a head start: archive-staged launches whatever is missing
    ctx.log.warn({ err: isAppError(e) ? e.message : String(e) }, 'could not launch the staging removals and secrets early');
  }
  return out;
}
