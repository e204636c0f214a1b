import { AppError } from '../errors.js';
import type { JobRow } from '../db/jobs.js';
import { labelMs, sleep, withLimit } from '../engine/limits.js';
import type { JobKind, StepContext, StepDef } from '../engine/types.js';
import type { RegistryAuth, ServiceInfo } from '../swarm/port.js';
import { execInTasks, runningTasks } from './exec.js';
import { parseImage, registryAuthFor, tagged } from './image.js';
import { L } from './labels.js';

/**
 * update: exec-pre → resolve the image to a digest → update the service to repo:tag@digest (forced
 * restart when the digest did not change) → wait for the rollout → exec-post in the new containers.
 */
export const updateKind: JobKind = {
  type: 'update',
  locks: (t) => [`update_service_${t.name}`, `backup_service_${t.name}`],
  steps: (): StepDef[] => [
    { name: 'exec-pre', run: (ctx) => execLabel(ctx, L.updateExecPre, 'exec-pre') },
    { name: 'resolve-image', run: resolveImage },
    { name: 'update-service', run: updateService },
    { name: 'wait-rollout', run: waitRollout },
    { name: 'exec-post', run: (ctx) => execLabel(ctx, L.updateExecPost, 'exec-post') },
  ],
};

export async function serviceOf(ctx: Pick<StepContext, 'deps' | 'job'>): Promise<ServiceInfo> {
  const svc = await ctx.deps.docker.getService(ctx.job.target!);
  if (!svc) throw new AppError('NOT_FOUND', `service ${ctx.job.target} does not exist`);
  return svc;
}

function requestAuth(job: JobRow): { url: string; username: string; password: string } | null {
  const a = job.secrets?.registryAuth as { url: string; username: string; password: string } | undefined;
  return a ?? null;
}

function authFor(ctx: StepContext, image: string, svc: ServiceInfo): RegistryAuth | undefined {
  return registryAuthFor(image, { request: requestAuth(ctx.job), labels: svc.labels, config: ctx.deps.config, strict: true });
}

async function execLabel(ctx: StepContext, label: string, step: string) {
  const svc = await serviceOf(ctx);
  const command = svc.labels[label];
  if (!command?.trim()) return { skipped: true, output: `no ${label} label` };
  const tasks = await runningTasks(ctx, svc.id);
  const outcomes = await execInTasks(ctx, tasks, command, { step, timeoutMs: ctx.deps.config.lockMaxExecutionMs });
  return {
    detail: { containers: outcomes.map(({ output, ...o }) => o) },
    output: outcomes.map((o) => `[${o.node} ${o.container.slice(0, 12)}] ${o.output.trim()}`).join('\n'),
  };
}

async function resolveImage(ctx: StepContext) {
  const svc = await serviceOf(ctx);
  const given = ctx.job.params.image as string | undefined;
  const requested = given ?? svc.image;
  const ref = parseImage(requested);
  if (!ref) throw new AppError('VALIDATION', `image "${requested}" is not a valid reference`);
  // a digest the request names is honoured (and checked in the registry); otherwise the tag is resolved again
  const pinned = given !== undefined && ref.digest !== null;
  const image = pinned ? `${ref.name}${ref.tag ? `:${ref.tag}` : ''}` : tagged(ref);
  const digest = await ctx.deps.docker.resolveDigest(pinned ? `${ref.name}@${ref.digest}` : image, authFor(ctx, image, svc));
  const newImage = `${image}@${digest}`;
  const forced = stripDigest(svc.image) === image && parseImage(svc.image)?.digest === digest;
  return {
    detail: { previousImage: svc.image, image, digest, newImage, forced },
    output: forced ? `${image} is still ${digest}: the tasks will be restarted` : `${image} resolved to ${digest}`,
  };
}

const stripDigest = (image: string): string => {
  const r = parseImage(image);
  return r ? tagged(r) : image;
};

async function updateService(ctx: StepContext) {
  const r = ctx.detailOf('resolve-image') as { newImage: string; forced: boolean };
  const svc = await serviceOf(ctx);
  const before = ctx.detail as { previousVersion?: number; previousForceUpdate?: number };
  if (before.previousVersion !== undefined && alreadyApplied(svc, r, before as Required<typeof before>)) {
    return { detail: { ...before, alreadyApplied: true }, output: 'the update had been applied before a restart' };
  }
  // committed before acting: a resumed step can tell whether this update already happened
  const detail = { previousVersion: svc.version, previousForceUpdate: svc.forceUpdate, requestedAt: new Date().toISOString() };
  ctx.save(detail);
  const spec = structuredClone(svc.spec) as { TaskTemplate: { ContainerSpec: { Image: string }; ForceUpdate?: number } };
  spec.TaskTemplate.ContainerSpec.Image = r.newImage;
  if (r.forced) spec.TaskTemplate.ForceUpdate = svc.forceUpdate + 1;
  await ctx.deps.docker.updateService(svc.id, svc.version, spec, authFor(ctx, r.newImage, svc));
  return { detail, output: r.forced ? `forced restart of ${r.newImage}` : `service now at ${r.newImage}` };
}

function alreadyApplied(svc: ServiceInfo, r: { newImage: string; forced: boolean }, before: { previousVersion: number; previousForceUpdate: number }): boolean {
  if (svc.version <= before.previousVersion || svc.image !== r.newImage) return false;
  return !r.forced || svc.forceUpdate > before.previousForceUpdate;
}

const FAILED_STATES = new Set(['paused', 'rollback_started', 'rollback_paused', 'rollback_completed']);

async function waitRollout(ctx: StepContext) {
  const r = ctx.detailOf('resolve-image') as { newImage: string; previousImage: string; digest: string; forced: boolean };
  const u = ctx.detailOf('update-service') as { requestedAt: string };
  const first = await serviceOf(ctx);
  const limit = labelMs(first.labels, L.updateTimeout, ctx.deps.config.lockMaxExecutionMs);
  const since = Date.parse(u.requestedAt) - 2000;
  const state = await withLimit(`the rollout of ${first.name}`, limit, ctx.signal, async (signal) => {
    for (;;) {
      const svc = await serviceOf(ctx);
      const verdict = await rolloutVerdict(ctx, svc, r.newImage, since);
      if (verdict) return verdict;
      await sleep(1000, signal);
    }
  });
  ctx.setResult({ previousImage: r.previousImage, image: r.newImage, digest: r.digest, forced: r.forced });
  return { detail: { state }, output: `rollout ${state}` };
}

/** null while the rollout goes on; 'completed' when done; throws UPDATE_FAILED on a failed rollout */
async function rolloutVerdict(ctx: StepContext, svc: ServiceInfo, image: string, since: number): Promise<string | null> {
  if (svc.replicas === 0) return 'completed';
  const us = svc.updateStatus;
  const ours = us && (!us.startedAt || Date.parse(us.startedAt) >= since);
  if (ours && FAILED_STATES.has(us.state)) {
    throw new AppError('UPDATE_FAILED', `rollout ${us.state}: ${us.message ?? 'no message from Docker'}`, { updateStatus: us });
  }
  const tasks = await ctx.deps.docker.listTasks(svc.id);
  const rejected = tasks.find((t) => t.image === image && t.state === 'rejected' && t.desiredState !== 'shutdown');
  if (rejected) throw new AppError('UPDATE_FAILED', `task ${rejected.id} rejected: ${rejected.error ?? rejected.message ?? ''}`);
  if (ours && us.state === 'completed') return 'completed';
  // no UpdateStatus of ours yet: done only when every task that should run runs the new image
  const wanted = tasks.filter((t) => t.desiredState === 'running');
  if (!ours && wanted.length && wanted.every((t) => t.image === image && t.state === 'running') && Date.now() - since > 15_000) {
    return 'completed';
  }
  return null;
}
