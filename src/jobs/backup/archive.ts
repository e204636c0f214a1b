/**
 * Step 4 of a backup: per (node, volume) pair, a helper on that node runs the backup image once with the
 * volume, or its staging copy, mounted read-only at /backup/<volume> (so the archive's content is the same
 * either way); it archives and uploads under the key committed by `resolve`. Each finished pair is committed
 * as it ends, so a re-entered step does not redo it, and a pair whose helper still exists after a crash is
 * reattached (the helper's name is deterministic). Nodes run in parallel, the pairs of one node one by one.
 *
 * Two steps use it (`archive-staged` is in archive-staged.ts):
 * - `archive`: the pairs archived in place (staging off, no room for a copy) while the service is stopped. It is
 *   `whileDown` (backup.ts): on a shutdown the runner stops its helper before giving the service back, and the
 *   next process takes the job up again from `stop` (no archive is ever made of the volume of a running service).
 * - `archive-staged`: the staging copies, after the service started again. A shutdown leaves its helpers
 *   running (nothing is held down any more) and the next process reattaches to them.
 */
import { z } from 'zod';
import { AppError } from '../../errors.js';
import { ShutdownSignal, labelMs } from '../../engine/limits.js';
import { HELPER_STOP_MS } from '../../engine/helpers.js';
import { type StepContext, type StepOutcome, stepRef } from '../../engine/types.js';
import type { HelperRef, HelperSpec, Mount, SecretMount } from '../../swarm/port.js';
import { tail } from '../exec.js';
import { registryAuthFor } from '../image.js';
import { LIMIT, type Pair, archiveHelperName, helperEnv, scrub } from './plan.js';
import { type Resolved, resolvedOf, serviceById } from './resolve.js';
import { jobSecretMounts, removeJobSecrets } from './secrets.js';
import { byNode, stagedPairs } from './stage.js';
import { stagingLabels, stagingVolume } from './staging-helper.js';

const Finished = z.object({ node: z.string(), volume: z.string(), key: z.string(), finishedAt: z.string() });
/** each finished (node, volume) pair by its index, committed as it ends */
export const ArchiveDetail = z.object({ done: z.record(z.string(), Finished) });
export type ArchiveDetail = z.infer<typeof ArchiveDetail>;
export const ARCHIVE = stepRef('archive', ArchiveDetail);
export const ARCHIVE_STAGED = stepRef('archive-staged', ArchiveDetail);

/** what a helper mounts at /backup/<volume>: the volume itself, or the staging copy `stage` made of it */
export type ArchiveSource = 'volume' | 'staged';

/** step `archive`: the pairs not staged, while the service is stopped (every pair when nothing is staged) */
export async function archive(ctx: StepContext<ArchiveDetail>): Promise<StepOutcome<ArchiveDetail>> {
  const r = resolvedOf(ctx);
  const staged = stagedPairs(ctx, r);
  const pairs = r.pairs.filter((p) => !staged.has(p.index));
  if (!pairs.length) return { skipped: true, output: 'every volume was staged: the copies are archived after the start (archive-staged)' };
  return archivePairs(ctx, pairs, { source: 'volume', timeoutMs: await uploadLimit(ctx, r) });
}

export async function uploadLimit(ctx: StepContext, r: Resolved): Promise<number> {
  const svc = await serviceById(ctx, r.serviceId);
  return labelMs(svc.labels, LIMIT.upload, ctx.deps.config.lockMaxExecutionMs);
}

/** archives and uploads `pairs` from `source`; the pairs the step's detail has as done are not redone */
export async function archivePairs(ctx: StepContext<ArchiveDetail>, pairs: Pair[], o: { source: ArchiveSource; timeoutMs: number }): Promise<StepOutcome<ArchiveDetail>> {
  // verify needs the S3 client next: it loads while the helpers work (it is not loaded at start-up)
  void import('../../s3.js').catch(() => undefined);
  const done: ArchiveDetail['done'] = { ...(ctx.detail.done ?? {}) };
  const todo = pairs.filter((p) => !done[p.index]);
  const lines: string[] = [];
  let outcomes: PromiseSettledResult<void>[];
  try {
    // the credentials reach the helpers as Docker secrets of this job, never in their specs
    const secrets = todo.length ? await jobSecretMounts(ctx) : [];
    outcomes = await Promise.allSettled(
      byNode(todo).map(async (nodePairs) => {
        for (const p of nodePairs) {
          // committed before the helper is removed: a re-entered step never archives that pair again
          const output = await archivePair(ctx, p, o, secrets, () => {
            done[p.index] = { node: p.node, volume: p.volume, key: p.key, finishedAt: new Date().toISOString() };
            ctx.save({ done });
          });
          lines.push(`[${p.node} ${p.volume}] ${lastLine(output)}`);
        }
      }),
    );
  } finally {
    // every helper of the step is gone (or kept for the next process on a shutdown, and its secrets with it)
    await removeJobSecrets(ctx);
  }
  const errors = outcomes.flatMap((x) => (x.status === 'rejected' ? [x.reason as unknown] : []));
  if (errors.length) throw firstError(errors);
  const reused = pairs.length - todo.length;
  const from = o.source === 'staged' ? ' from the staging copies' : '';
  const head = `${pairs.length} archive(s) uploaded${from}${reused ? ` (${reused} finished before a restart)` : ''}`;
  return { detail: { done }, output: [head, ...lines].join('\n') };
}

/** /backup/<volume>: the volume, or its staging copy (labelled so that a copy gone missing shows: Docker would make an empty one) */
function sourceMount(ctx: StepContext, p: Pair, source: ArchiveSource): Mount {
  const target = `/backup/${p.volume}`;
  if (source === 'volume') return { type: 'volume', source: p.volume, target, readOnly: true };
  const { instance } = ctx.deps;
  return { type: 'volume', source: stagingVolume(instance, ctx.job.id, p.index), target, readOnly: true, labels: stagingLabels(instance, ctx.job.id, 'archive') };
}

/** the backup image once, for one pair */
export function archiveHelperSpec(ctx: StepContext, p: Pair, source: ArchiveSource, secrets: SecretMount[]): HelperSpec {
  const { config } = ctx.deps;
  return {
    name: archiveHelperName(ctx.deps.instance, ctx.job.id, p),
    jobId: ctx.job.id,
    nodeId: p.nodeId,
    image: config.backupImage,
    command: ['backup'],
    env: helperEnv(config.s3, config.backupEnv, p),
    secrets,
    mounts: [sourceMount(ctx, p, source)],
    auth: registryAuthFor(config.backupImage, { config }),
    networks: config.helperNetworks,
  };
}

/** one helper, waited for, `uploaded` called, then removed; its (scrubbed) output, or S3_ERROR with the end of it on a non-zero exit */
async function archivePair(
  ctx: StepContext,
  p: Pair,
  o: { source: ArchiveSource; timeoutMs: number },
  secrets: SecretMount[],
  uploaded: () => void,
): Promise<string> {
  const { docker, config } = ctx.deps;
  const ref = await docker.createHelper(archiveHelperSpec(ctx, p, o.source, secrets));
  ctx.log.info({ helper: ref.name, node: p.node, volume: p.volume, key: p.key, source: o.source }, 'archive helper running');
  let ended = false;
  try {
    // a staging copy's archive: its node's staging removal takes the container away as soon as it exited 0, so
    // its log is only read when it failed (then the container stays)
    const res = await docker.waitHelper(ref, { timeoutMs: o.timeoutMs, signal: ctx.signal, pollMs: ARCHIVE_POLL_MS, logs: o.source === 'staged' ? 'on-failure' : 'always' });
    ended = true;
    const output = scrub(res.output, config.s3, config.backupEnv);
    const what = `the archive of volume ${p.volume} on ${p.node} (${p.key})`;
    if (res.exitCode === null) {
      throw new AppError('DOCKER_ERROR', `${what}: the helper did not run (${res.state}): ${scrub(res.error ?? '', config.s3, config.backupEnv)} ${tail(output)}`.trim());
    }
    if (res.exitCode !== 0) throw new AppError('S3_ERROR', `${what} failed with exit code ${res.exitCode}: ${tail(output)}`);
    ctx.log.info({ helper: ref.name, key: p.key }, 'archive uploaded');
    uploaded();
    return output || `uploaded ${p.key}`;
  } finally {
    // on a shutdown the helper keeps running: the next process reattaches to it instead of uploading again
    const shuttingDown = ctx.signal.aborted && ctx.signal.reason instanceof ShutdownSignal;
    if (!shuttingDown) await discard(ctx, ref, ended);
  }
}

/** an ended helper is removed; one still running (its wait timed out or was canceled) is stopped first */
async function discard(ctx: StepContext, ref: HelperRef, ended: boolean): Promise<void> {
  const { docker } = ctx.deps;
  const gone = ended ? docker.removeService(ref.id) : docker.stopHelper(ref, { timeoutMs: HELPER_STOP_MS });
  await gone.catch((e: unknown) => ctx.log.warn({ err: e, helper: ref.name }, 'could not remove archive helper'));
}

/** an archive's end is seen within this (the job's total time counts it) */
const ARCHIVE_POLL_MS = 100;

const lastLine = (text: string): string => tail(text.trim().split('\n').at(-1) ?? '', 300);

/** the first error, its message extended with the others' (each pair's failure is worth reading) */
function firstError(errors: unknown[]): AppError {
  const all = errors.map((e) => (e instanceof AppError ? e : new AppError('INTERNAL', e instanceof Error ? e.message : String(e))));
  const first = all[0]!;
  if (all.length === 1) return first;
  return new AppError(first.code, `${all.length} archives failed: ${all.map((e) => `${e.code}: ${e.message}`).join('; ')}`);
}
