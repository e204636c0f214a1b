/**
 * Step 4 of a backup: per (node, volume) pair, a helper on that node runs the backup image once with
 * the volume mounted read-only at /backup/<volume>; it archives and uploads under the key committed
 * by `resolve`. Each finished pair is committed as it ends, so a re-entered step does not redo it, and
 * a pair whose helper still exists after a crash is reattached (the helper's name is deterministic).
 *
 * Shutdown: the helper keeps running for the next process, unless the job gives the stopped service back
 * before it exits: the step is `whileDown` (backup.ts), so the runner stops its helper first and the next
 * process takes the job up again from `stop` (no archive is ever made of the volume of a running service).
 */
import { z } from 'zod';
import { AppError } from '../../errors.js';
import { ShutdownSignal, labelMs } from '../../engine/limits.js';
import { HELPER_STOP_MS } from '../../engine/helpers.js';
import { type StepContext, type StepOutcome, stepRef } from '../../engine/types.js';
import { helperName } from '../../swarm/helpers.js';
import type { HelperRef } from '../../swarm/port.js';
import { tail } from '../exec.js';
import { registryAuthFor } from '../image.js';
import type { SecretMount } from '../../swarm/port.js';
import { LIMIT, type Pair, helperEnv, scrub } from './plan.js';
import { resolvedOf, serviceById } from './resolve.js';
import { jobSecretMounts, removeJobSecrets } from './secrets.js';

const Finished = z.object({ node: z.string(), volume: z.string(), key: z.string(), finishedAt: z.string() });
/** each finished (node, volume) pair by its index, committed as it ends */
export const ArchiveDetail = z.object({ done: z.record(z.string(), Finished) });
type ArchiveDetail = z.infer<typeof ArchiveDetail>;
export const ARCHIVE = stepRef('archive', ArchiveDetail);

export async function archive(ctx: StepContext<ArchiveDetail>): Promise<StepOutcome<ArchiveDetail>> {
  const r = resolvedOf(ctx);
  const svc = await serviceById(ctx, r.serviceId);
  const timeoutMs = labelMs(svc.labels, LIMIT.upload, ctx.deps.config.lockMaxExecutionMs);
  const done: ArchiveDetail['done'] = { ...(ctx.detail.done ?? {}) };
  const todo = r.pairs.filter((p) => !done[p.index]);
  // nodes in parallel, the volumes of one node one after the other
  const byNode = new Map<string, Pair[]>();
  for (const p of todo) byNode.set(p.nodeId, [...(byNode.get(p.nodeId) ?? []), p]);
  const lines: string[] = [];
  let outcomes: PromiseSettledResult<void>[];
  try {
    // the credentials reach the helpers as Docker secrets of this job, never in their specs
    const secrets = todo.length ? await jobSecretMounts(ctx) : [];
    outcomes = await Promise.allSettled(
      [...byNode.values()].map(async (pairs) => {
        for (const p of pairs) {
          const output = await archivePair(ctx, p, timeoutMs, secrets);
          done[p.index] = { node: p.node, volume: p.volume, key: p.key, finishedAt: new Date().toISOString() };
          ctx.save({ done });
          lines.push(`[${p.node} ${p.volume}] ${lastLine(output)}`);
        }
      }),
    );
  } finally {
    // every helper of the step is gone (or kept for the next process on a shutdown, and its secrets with it)
    await removeJobSecrets(ctx);
  }
  const errors = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
  if (errors.length) throw firstError(errors);
  const reused = r.pairs.length - todo.length;
  const head = `${r.pairs.length} archive(s) uploaded${reused ? ` (${reused} finished before a restart)` : ''}`;
  return { detail: { done }, output: [head, ...lines].join('\n') };
}

/** one helper, waited for and removed; its (scrubbed) output, or S3_ERROR with the end of it on a non-zero exit */
async function archivePair(ctx: StepContext, p: Pair, timeoutMs: number, secrets: SecretMount[]): Promise<string> {
  const { docker, config } = ctx.deps;
  const ref = await docker.createHelper({
    name: helperName(ctx.deps.instance, ctx.job.id, 'archive', String(p.index)),
    jobId: ctx.job.id,
    nodeId: p.nodeId,
    image: config.backupImage,
    command: ['backup'],
    env: helperEnv(config.s3, config.backupEnv, p),
    secrets,
    mounts: [{ type: 'volume', source: p.volume, target: `/backup/${p.volume}`, readOnly: true }],
    auth: registryAuthFor(config.backupImage, { config }),
    networks: config.helperNetworks,
  });
  ctx.log.info({ helper: ref.name, node: p.node, volume: p.volume, key: p.key }, 'archive helper running');
  let ended = false;
  try {
    const res = await docker.waitHelper(ref, { timeoutMs, signal: ctx.signal });
    ended = true;
    const output = scrub(res.output, config.s3, config.backupEnv);
    const what = `the archive of volume ${p.volume} on ${p.node} (${p.key})`;
    if (res.exitCode === null) {
      throw new AppError('DOCKER_ERROR', `${what}: the helper did not run (${res.state}): ${scrub(res.error ?? '', config.s3, config.backupEnv)} ${tail(output)}`.trim());
    }
    if (res.exitCode !== 0) throw new AppError('S3_ERROR', `${what} failed with exit code ${res.exitCode}: ${tail(output)}`);
    ctx.log.info({ helper: ref.name, key: p.key }, 'archive uploaded');
    return output;
  } finally {
    // on a shutdown the helper keeps running: the next process reattaches to it instead of uploading again
    const shuttingDown = ctx.signal.aborted && ctx.signal.reason instanceof ShutdownSignal;
    if (!shuttingDown) await discard(ctx, ref, ended);
  }
}

/** an ended helper is removed; one still running (its wait timed out or was canceled) is stopped first */
async function discard(ctx: StepContext<ArchiveDetail>, ref: HelperRef, ended: boolean): Promise<void> {
  const { docker } = ctx.deps;
  const gone = ended ? docker.removeService(ref.id) : docker.stopHelper(ref, { timeoutMs: HELPER_STOP_MS });
  await gone.catch((e: unknown) => ctx.log.warn({ err: e, helper: ref.name }, 'could not remove archive helper'));
}

const lastLine = (text: string): string => tail(text.trim().split('\n').at(-1) ?? '', 300);

/** the first error, its message extended with the others' (each pair's failure is worth reading) */
function firstError(errors: unknown[]): AppError {
  const all = errors.map((e) => (e instanceof AppError ? e : new AppError('INTERNAL', e instanceof Error ? e.message : String(e))));
  const first = all[0]!;
  if (all.length === 1) return first;
  return new AppError(first.code, `${all.length} archives failed: ${all.map((e) => `${e.code}: ${e.message}`).join('; ')}`);
}
