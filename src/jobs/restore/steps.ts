/**
 * The steps of a restore that are its own: resolve, download (+ unpack), swap, settle, verify. The work
 * directory `.swarm-utils-restore-<job>` lives inside the volume, so the swap is renames on one file system.
 */
import { z } from 'zod';
import { AppError } from '../../errors.js';
import { labelMs } from '../../engine/limits.js';
import { type StepContext, type StepOutcome, stepRef } from '../../engine/types.js';
import { type TreeCount, parseTreeCount } from '../tree-count.js';
import { tail } from '../exec.js';
import { LIMIT, ResolvedSchema, backupStamp, planPairs, serviceById } from './backup-phases.js';
import { fetchOnNode } from './fetch.js';
import { runOnNode } from './node-helper.js';
import { ArchiveTarget, RestoreParams, planRestore } from './plan.js';
import { SETTLE_SH, SWAP_SH, errorLine } from './scripts.js';

/** what `resolve` commits: the backup's own fields (the safety backup reuses its phases) and the archive to restore */
export const RestoreResolved = ResolvedSchema.extend({ target: ArchiveTarget, safety: z.boolean() });
export type RestoreResolved = z.infer<typeof RestoreResolved>;
export const RESTORE_RESOLVE = stepRef('resolve', RestoreResolved);

const Count = z.object({ files: z.number().int().nonnegative(), bytes: z.number().nonnegative() });
export const DOWNLOAD = stepRef('download', Count.extend({ started: z.boolean() }).partial());
export const SWAP = stepRef('swap', Count.extend({ started: z.boolean() }).partial());

/** a swap helper ignores SIGTERM: it gets this long to finish when stopped */
const SWAP_GRACE_MS = 20_000;

export const workDir = (jobId: number): string => `.swarm-utils-restore-${jobId}`;

export function restoreResolvedOf(ctx: Pick<StepContext, 'detailOf'>): RestoreResolved {
  const r = ctx.detailOf(RESTORE_RESOLVE);
  if (!r) throw new AppError('INTERNAL', 'the resolve step committed nothing: the job cannot go on');
  return r;
}

export async function resolveRestore(ctx: StepContext<RestoreResolved>): Promise<StepOutcome<RestoreResolved>> {
  const before = RestoreResolved.safeParse(ctx.detail);
  if (before.success) return { output: summary(before.data) };
  const svc = await ctx.deps.docker.getService(ctx.job.target!);
  if (!svc) throw new AppError('NOT_FOUND', `service ${ctx.job.target} does not exist`);
  const params = RestoreParams.parse(ctx.job.params);
  const plan = await planRestore(ctx.deps, svc, params, ctx.signal);
  const [all, nodes] = await Promise.all([ctx.deps.docker.listTasks(svc.id), ctx.deps.docker.listNodes()]);
  const tasks = all
    .filter((t) => t.state === 'running' && t.desiredState === 'running' && t.containerId && t.nodeId)
    .map((t) => ({ id: t.id, nodeId: t.nodeId!, node: nodes.find((n) => n.id === t.nodeId)?.hostname ?? t.nodeId!, containerId: t.containerId! }));
  // a new volume holds nothing of the service's to save
  const safety = params.safetyBackup !== false && !plan.newVolume;
  const stamp = backupStamp(new Date());
  const detail: RestoreResolved = {
    serviceId: svc.id,
    service: svc.name,
    // a restore always stops the service, whatever its backup.stop label says
    stop: true,
    tasks,
    volumes: [plan.volume],
    stamp,
    pairs: safety ? planPairs([{ nodeId: plan.node.id, node: plan.node.hostname }], [plan.volume], stamp, ctx.deps.config.s3.path) : [],
    target: {
      nodeId: plan.node.id,
      node: plan.node.hostname,
      volume: plan.volume,
      ...(plan.archiveVolume !== plan.volume ? { archiveVolume: plan.archiveVolume } : {}),
      key: plan.archive.key,
      size: plan.archive.size,
      ...(plan.archive.format === 'offen' ? { offen: true } : {}),
    },
    safety,
  };
  ctx.save(detail);
  return { output: summary(detail) };
}

function summary(r: RestoreResolved): string {
  const safety = r.safety ? `safety backup to ${r.pairs[0]?.key}` : 'no safety backup';
  return `restore ${r.target.key} (${r.target.size} bytes) into volume ${r.target.volume} on ${r.target.node}; ${safety}`;
}

/** download and unpack into the work directory inside the volume; a failure leaves the old content whole */
export async function download(ctx: StepContext<Partial<TreeCount & { started: boolean }>>): Promise<StepOutcome<Partial<TreeCount & { started: boolean }>>> {
  const r = restoreResolvedOf(ctx);
  const svc = await serviceById(ctx, r.serviceId);
  ctx.save({ started: true });
  const out = await fetchOnNode(ctx, {
    key: '0',
    nodeId: r.target.nodeId,
    node: r.target.node,
    objectKey: r.target.key,
    mountVolume: r.target.volume,
    archiveVolume: r.target.archiveVolume ?? r.target.volume,
    anyDir: r.target.offen,
    work: workDir(ctx.job.id),
    timeoutMs: labelMs(svc.labels, LIMIT.upload, ctx.deps.config.lockMaxExecutionMs),
  });
  if (!out.ok) throw new AppError('RESTORE_FAILED', `${out.message}; the volume was not changed`);
  return { detail: { started: true, ...out.count }, output: `unpacked ${r.target.key}: ${out.count.files} files, ${out.count.bytes} bytes` };
}

/** the volume's content becomes exactly the unpacked tree; a re-entered swap finishes what the last one began */
export async function swap(ctx: StepContext<Partial<TreeCount & { started: boolean }>>): Promise<StepOutcome<Partial<TreeCount & { started: boolean }>>> {
  const r = restoreResolvedOf(ctx);
  ctx.save({ started: true });
  const res = await runSwap(ctx, r, 'swap', SWAP_SH);
  const count = parseTreeCount(res.output);
  if (res.exitCode !== 0 || !count) {
    const line = errorLine(res.output);
    throw new AppError('RESTORE_FAILED', `the swap in volume ${r.target.volume} on ${r.target.node} failed (exit ${res.exitCode}): ${line?.message ?? tail(res.output)}`);
  }
  return { detail: { started: true, ...count }, output: `volume ${r.target.volume} now holds ${count.files} files, ${count.bytes} bytes` };
}

function runSwap(ctx: StepContext, r: RestoreResolved, step: string, script: string) {
  return runOnNode(ctx, {
    step,
    key: '0',
    nodeId: r.target.nodeId,
    script,
    env: { SU_WORK: `/vol/${workDir(ctx.job.id)}`, SU_VOLUME: r.target.archiveVolume ?? r.target.volume },
    mounts: [{ type: 'volume', source: r.target.volume, target: '/vol', readOnly: false }],
    timeoutMs: ctx.deps.config.lockMaxExecutionMs,
    stopGracePeriodMs: SWAP_GRACE_MS,
  });
}

/**
 * Compensation, before the service starts again: a swap that began is finished (going forward is the only
 * way that never leaves a mix), a download that got no further is removed from the volume.
 */
export async function settle(ctx: StepContext): Promise<StepOutcome> {
  const r = ctx.detailOf(RESTORE_RESOLVE);
  const swapped = ctx.detailOf(SWAP);
  if (!r || swapped?.files !== undefined) return { skipped: true, output: swapped ? 'the swap finished' : 'nothing was downloaded' };
  if (!ctx.detailOf(DOWNLOAD)?.started) return { skipped: true, output: 'nothing was downloaded' };
  const res = await runSwap(ctx, r, 'settle', SETTLE_SH);
  if (res.exitCode !== 0) throw new AppError('RESTORE_FAILED', `could not settle volume ${r.target.volume} on ${r.target.node}: ${errorLine(res.output)?.message ?? tail(res.output)}`);
  const finished = /swarm-utils-phase (finishing-swap|already-swapped)/.test(res.output);
  return { output: finished ? 'the swap that had begun was finished: the volume holds the archive' : 'the unfinished download was removed: the volume holds its old content' };
}

/** the volume's count after the swap equals the archive's; the job result says what was restored */
export async function verifyRestore(ctx: StepContext): Promise<StepOutcome> {
  const r = restoreResolvedOf(ctx);
  const unpacked = ctx.detailOf(DOWNLOAD);
  const swapped = ctx.detailOf(SWAP);
  if (unpacked?.files === undefined || unpacked.bytes === undefined || swapped?.files === undefined || swapped.bytes === undefined) throw new AppError('INTERNAL', 'the download or swap recorded no count');
  const safety = (ctx.detailOf('safety-verify') as { archives?: { key: string; size: number }[] }).archives?.[0] ?? null;
  const result = {
    service: r.service,
    node: r.target.node,
    volume: r.target.volume,
    key: r.target.key,
    files: swapped.files,
    bytes: swapped.bytes,
    expected: { files: unpacked.files, bytes: unpacked.bytes },
    safetyBackup: safety ? { key: safety.key, size: safety.size } : null,
  };
  ctx.setResult(result);
  if (swapped.files !== unpacked.files || swapped.bytes !== unpacked.bytes) {
    throw new AppError(
      'RESTORE_FAILED',
      `volume ${r.target.volume} holds ${swapped.files} files, ${swapped.bytes} bytes after the swap; the archive holds ${unpacked.files} files, ${unpacked.bytes} bytes`,
    );
  }
  return { output: `volume ${r.target.volume} on ${r.target.node} holds the archive's ${unpacked.files} files, ${unpacked.bytes} bytes` };
}
