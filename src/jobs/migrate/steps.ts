/**
 * The steps of a migration that are its own (README "Migration"): resolve, check-target, transfer,
 * discard, move, confirm, put-back. Archiving, stopping and starting are the backup's phases.
 */
import { z } from 'zod';
import { AppError } from '../../errors.js';
import { labelMs, sleep, withLimit } from '../../engine/limits.js';
import { type StepContext, type StepOutcome, stepRef } from '../../engine/types.js';
import type { NodeInfo, ServiceInfo } from '../../swarm/port.js';
import { registryAuthFor } from '../image.js';
import { tail } from '../exec.js';
import { LIMIT, ResolvedSchema, backupStamp, planPairs, s3Refusal, serviceById } from '../restore/backup-phases.js';
import { fetchOnNode } from '../restore/fetch.js';
import { runOnNode } from '../restore/node-helper.js';
import { volumesOf } from '../restore/plan.js';
import { CHECK_VOLUMES_SH, SETTLE_SH, SWAP_SH, errorLine } from '../restore/scripts.js';
import { workDir } from '../restore/steps.js';
import { parseTreeCount } from '../tree-count.js';

export const MigrateParams = z.object({ to: z.string() });
const NodeRef = z.object({ nodeId: z.string(), node: z.string() });
export const MigrateResolved = ResolvedSchema.extend({ from: NodeRef, to: NodeRef });
export type MigrateResolved = z.infer<typeof MigrateResolved>;
export const MIGRATE_RESOLVE = stepRef('resolve', MigrateResolved);

const Moved = z.object({ volume: z.string(), key: z.string(), files: z.number(), bytes: z.number() });
export const TRANSFER = stepRef('transfer', z.object({ started: z.boolean(), done: z.record(z.string(), Moved) }).partial());
export const MOVE = stepRef('move', z.object({ before: z.array(z.string()), after: z.array(z.string()), moved: z.boolean() }).partial());

const isRunning = (t: { state: string; desiredState: string; nodeId: string | null }) => t.state === 'running' && t.desiredState === 'running' && !!t.nodeId;

/** why this service cannot move to `to` now (checked at submission and again when the job runs) */
export async function migrationPlan(
  ctx: Pick<StepContext, 'deps'>,
  svc: ServiceInfo,
  toGiven: string,
): Promise<{ from: NodeInfo; to: NodeInfo; volumes: string[]; tasks: { id: string; nodeId: string; containerId: string }[] }> {
  const { docker, config } = ctx.deps;
  const s3 = s3Refusal(config);
  if (s3) throw s3;
  if (svc.mode !== 'replicated') throw new AppError('UNSUPPORTED', `${svc.name} is a ${svc.mode} service: only a replicated service can be migrated`);
  const volumes = volumesOf(svc);
  const [tasks, nodes] = await Promise.all([docker.listTasks(svc.id), docker.listNodes()]);
  const running = tasks.filter(isRunning);
  const on = [...new Set(running.map((t) => t.nodeId!))];
  if (on.length !== 1) {
    throw new AppError('UNSUPPORTED', `service ${svc.name} must run its tasks on one node to be migrated; they run on ${on.length ? on.map((id) => nodes.find((n) => n.id === id)?.hostname ?? id).join(', ') : 'no node'}`);
  }
  const from = nodes.find((n) => n.id === on[0])!;
  const matches = nodes.filter((n) => n.id === toGiven || n.hostname === toGiven);
  if (matches.length > 1) throw new AppError('AMBIGUOUS_NODE', `hostname ${toGiven} names ${matches.length} nodes: give the node id`, { candidates: matches.map((n) => ({ id: n.id, state: n.state })) });
  const to = matches[0];
  if (!to) throw new AppError('NOT_FOUND', `node ${toGiven} does not exist`);
  if (to.id === from.id) throw new AppError('VALIDATION', `service ${svc.name} already runs on ${to.hostname}`, [{ field: 'to', message: 'the node it runs on now' }]);
  if (to.state !== 'ready' || to.availability !== 'active') throw new AppError('UNSUPPORTED', `node ${to.hostname} is ${to.state}/${to.availability}: a service can only move to a ready, active node`);
  return { from, to, volumes, tasks: running.map((t) => ({ id: t.id, nodeId: t.nodeId!, containerId: t.containerId ?? '' })) };
}

export async function resolveMigrate(ctx: StepContext<MigrateResolved>): Promise<StepOutcome<MigrateResolved>> {
  const before = MigrateResolved.safeParse(ctx.detail);
  if (before.success) return { output: summary(before.data) };
  const svc = await ctx.deps.docker.getService(ctx.job.target!);
  if (!svc) throw new AppError('NOT_FOUND', `service ${ctx.job.target} does not exist`);
  const { from, to, volumes, tasks } = await migrationPlan(ctx, svc, MigrateParams.parse(ctx.job.params).to);
  const stamp = backupStamp(new Date());
  const detail: MigrateResolved = {
    serviceId: svc.id,
    service: svc.name,
    stop: true,
    tasks: tasks.filter((t) => t.containerId).map((t) => ({ ...t, node: from.hostname })),
    volumes,
    stamp,
    pairs: planPairs([{ nodeId: from.id, node: from.hostname }], volumes, stamp, ctx.deps.config.s3.path),
    from: { nodeId: from.id, node: from.hostname },
    to: { nodeId: to.id, node: to.hostname },
  };
  ctx.save(detail);
  return { output: summary(detail) };
}

const summary = (r: MigrateResolved) => `move ${r.service} from ${r.from.node} to ${r.to.node} with volume(s) ${r.volumes.join(', ')}`;

export function migrateOf(ctx: Pick<StepContext, 'detailOf'>): MigrateResolved {
  const r = ctx.detailOf(MIGRATE_RESOLVE);
  if (!r) throw new AppError('INTERNAL', 'the resolve step committed nothing: the job cannot go on');
  return r;
}

/** refused before anything changes when a volume of that name exists on `to` and holds something */
export async function checkTarget(ctx: StepContext): Promise<StepOutcome> {
  const r = migrateOf(ctx);
  const res = await runOnNode(ctx, {
    step: 'check-target',
    key: '0',
    nodeId: r.to.nodeId,
    script: CHECK_VOLUMES_SH,
    env: { SU_VOLUMES: r.volumes.join(' '), SU_IMAGE: ctx.deps.config.dockerCliImage },
    socket: true,
    timeoutMs: Math.min(ctx.deps.config.lockMaxExecutionMs, 120_000),
  });
  if (res.exitCode !== 0) throw new AppError('DOCKER_ERROR', `could not look at the volumes on ${r.to.node}: ${errorLine(res.output)?.message ?? tail(res.output)}`);
  const states = new Map([...res.output.matchAll(/^swarm-utils-volume (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
  const full = r.volumes.filter((v) => states.get(v) === 'not-empty');
  if (full.length) {
    throw new AppError('UNSUPPORTED', `volume(s) ${full.join(', ')} exist on ${r.to.node} and are not empty: a migration never overwrites data; nothing was changed`);
  }
  const missing = r.volumes.filter((v) => !states.has(v));
  if (missing.length) throw new AppError('DOCKER_ERROR', `the check of ${r.to.node} said nothing about ${missing.join(', ')}: ${tail(res.output)}`);
  return { output: r.volumes.map((v) => `${v} on ${r.to.node}: ${states.get(v)}`).join('\n') };
}

/** each archive unpacked into the volume of the same name on `to` and swapped in (the volume there is empty) */
export async function transfer(ctx: StepContext<z.infer<typeof TRANSFER.detail>>): Promise<StepOutcome<z.infer<typeof TRANSFER.detail>>> {
  const r = migrateOf(ctx);
  const svc = await serviceById(ctx, r.serviceId);
  const keys = new Map(((ctx.detailOf('archive-verify') as { archives?: { volume: string; key: string }[] }).archives ?? []).map((a) => [a.volume, a.key]));
  const done = { ...(ctx.detail.done ?? {}) };
  ctx.save({ started: true, done });
  for (const [i, volume] of r.volumes.entries()) {
    if (done[volume]) continue;
    const key = keys.get(volume);
    if (!key) throw new AppError('INTERNAL', `no verified archive of ${volume}`);
    const fetched = await fetchOnNode(ctx, {
      key: String(i),
      nodeId: r.to.nodeId,
      node: r.to.node,
      objectKey: key,
      mountVolume: volume,
      archiveVolume: volume,
      work: workDir(ctx.job.id),
      timeoutMs: labelMs(svc.labels, LIMIT.upload, ctx.deps.config.lockMaxExecutionMs),
    });
    if (!fetched.ok) throw new AppError('RESTORE_FAILED', fetched.message);
    const res = await runOnNode(ctx, {
      step: 'swap',
      key: String(i),
      nodeId: r.to.nodeId,
      script: SWAP_SH,
      env: { SU_WORK: `/vol/${workDir(ctx.job.id)}`, SU_VOLUME: volume },
      mounts: [{ type: 'volume', source: volume, target: '/vol', readOnly: false }],
      timeoutMs: ctx.deps.config.lockMaxExecutionMs,
      stopGracePeriodMs: 20_000,
    });
    const count = parseTreeCount(res.output);
    if (res.exitCode !== 0 || !count) throw new AppError('RESTORE_FAILED', `volume ${volume} on ${r.to.node}: ${errorLine(res.output)?.message ?? tail(res.output)}`);
    if (count.files !== fetched.count.files || count.bytes !== fetched.count.bytes) {
      throw new AppError('RESTORE_FAILED', `volume ${volume} on ${r.to.node} holds ${count.files} files, ${count.bytes} bytes; the archive ${fetched.count.files}, ${fetched.count.bytes}`);
    }
    done[volume] = { volume, key, ...count };
    ctx.save({ started: true, done });
  }
  return { detail: { started: true, done }, output: Object.values(done).map((d) => `${d.volume} on ${r.to.node}: ${d.files} files, ${d.bytes} bytes`).join('\n') };
}

/** compensation: an unfinished transfer leaves no work directory in the volumes on `to` */
export async function discard(ctx: StepContext): Promise<StepOutcome> {
  const r = ctx.detailOf(MIGRATE_RESOLVE);
  const t = ctx.detailOf(TRANSFER);
  if (!r || !t?.started) return { skipped: true, output: 'nothing was transferred' };
  const open = r.volumes.filter((v) => !t.done?.[v]);
  if (!open.length) return { skipped: true, output: 'every volume was transferred' };
  for (const [i, volume] of r.volumes.entries()) {
    if (!open.includes(volume)) continue;
    await runOnNode(ctx, {
      step: 'discard',
      key: String(i),
      nodeId: r.to.nodeId,
      script: SETTLE_SH,
      env: { SU_WORK: `/vol/${workDir(ctx.job.id)}`, SU_VOLUME: volume },
      mounts: [{ type: 'volume', source: volume, target: '/vol', readOnly: false }],
      timeoutMs: ctx.deps.config.lockMaxExecutionMs,
      stopGracePeriodMs: 20_000,
    });
  }
  return { output: `work directories removed on ${r.to.node}` };
}

const PLACED = /^\s*node\.(hostname|id)\s*(==|!=)/;

/** the placement `node.hostname == <to>` replaces any hostname or id constraint; the one before is committed first */
export async function move(ctx: StepContext<z.infer<typeof MOVE.detail>>): Promise<StepOutcome<z.infer<typeof MOVE.detail>>> {
  const r = migrateOf(ctx);
  const svc = await serviceById(ctx, r.serviceId);
  const before = ctx.detail.before ?? constraintsOf(svc);
  const after = [...before.filter((c) => !PLACED.test(c)), `node.hostname==${r.to.node}`];
  ctx.save({ before, after, moved: false });
  await setConstraints(ctx, r.serviceId, after);
  ctx.save({ before, after, moved: true });
  return { detail: { before, after, moved: true }, output: `placement: ${before.join(', ') || 'none'} → ${after.join(', ')}` };
}

/** the service runs its recorded count on `to`, and only there */
export async function confirm(ctx: StepContext): Promise<StepOutcome> {
  const r = migrateOf(ctx);
  const svc = await serviceById(ctx, r.serviceId);
  const want = svc.replicas ?? 0;
  const limit = labelMs(svc.labels, LIMIT.start, ctx.deps.config.lockMaxExecutionMs);
  await withLimit(`${r.service} running on ${r.to.node}`, limit, ctx.signal, async (signal) => {
    for (;;) {
      const running = (await ctx.deps.docker.listTasks(r.serviceId)).filter(isRunning);
      if (running.length >= want && running.every((t) => t.nodeId === r.to.nodeId)) return;
      await sleep(1000, signal);
    }
  });
  const moved = ctx.detailOf(TRANSFER)?.done ?? {};
  ctx.setResult({ service: r.service, from: r.from.node, to: r.to.node, replicas: want, volumes: Object.values(moved) });
  return { output: `${r.service} runs ${want} task(s) on ${r.to.node}` };
}

/** compensation: a migration that failed after the move gets its old placement back (the old node still has its volumes) */
export async function putBack(ctx: StepContext): Promise<StepOutcome> {
  const moved = ctx.detailOf(MOVE);
  if (!moved?.before || !moved.after) return { skipped: true, output: 'the placement was not changed' };
  if (!ctx.job.errorCode) return { skipped: true, output: 'the migration succeeded' };
  const r = migrateOf(ctx);
  await setConstraints(ctx, r.serviceId, moved.before);
  return { output: `placement put back: ${moved.before.join(', ') || 'none'}; ${r.service} runs on ${r.from.node} again with its volumes there` };
}

const constraintsOf = (svc: ServiceInfo): string[] =>
  ((svc.spec.TaskTemplate as { Placement?: { Constraints?: string[] } } | undefined)?.Placement?.Constraints ?? []).slice();

async function setConstraints(ctx: StepContext, serviceId: string, constraints: string[]): Promise<void> {
  const { docker, config } = ctx.deps;
  for (let attempt = 1; ; attempt++) {
    try {
      const svc = await serviceById(ctx, serviceId);
      const spec = structuredClone(svc.spec) as { TaskTemplate?: { Placement?: { Constraints?: string[] } } };
      spec.TaskTemplate ??= {};
      spec.TaskTemplate.Placement = { ...(spec.TaskTemplate.Placement ?? {}), Constraints: constraints };
      await docker.updateService(svc.id, svc.version, spec as Record<string, unknown>, registryAuthFor(svc.image, { labels: svc.labels, config }));
      // our own change of a held service: the compensation retry must not take it for an operator's
      if (ctx.holds.isHeld(serviceId)) ctx.holds.setVersion(serviceId, (await serviceById(ctx, serviceId)).version);
      return;
    } catch (e) {
      if (attempt >= 5 || ctx.signal.aborted || (e instanceof AppError && e.code === 'NOT_FOUND')) throw e;
      await sleep(500 * attempt, ctx.signal);
    }
  }
}
