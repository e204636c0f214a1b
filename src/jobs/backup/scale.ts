/**
 * Steps 3 and 5 of a backup: stop (record the replica count, scale to 0, wait) and start (scale back
 * to the recorded count, wait). Start is the compensation users trust with their uptime: it runs
 * after a failure, a cancel, a timeout, an engine error, a crash and a shutdown, re-reads the service
 * before every attempt and retries what a busy or re-electing manager may answer. While the service is
 * down the job holds it (engine/holds.ts): no prune runs on its nodes, and a start that could not
 * finish is retried until it does, unless an operator changed the spec meanwhile.
 *
 * Both waits follow Docker closely (the task list, looked at every WAIT_POLL_MS): they are the service's
 * downtime, so they cost what Docker takes and not a polling interval more.
 */
import { z } from 'zod';
import { AppError, isAppError } from '../../errors.js';
import { labelMs, sleep, withLimit } from '../../engine/limits.js';
import { type StepContext, type StepOutcome, stepRef } from '../../engine/types.js';
import type { TaskInfo } from '../../swarm/port.js';
import { registryAuthFor } from '../image.js';
import { LIMIT } from './plan.js';
import { type Resolved, resolvedOf, serviceById } from './resolve.js';

/** what `stop` commits before it scales (older versions wrote only `replicas`) */
export const StopRecord = z.object({
  replicas: z.number().int().nonnegative(),
  /** start-timeout-ms as labelled when the service was stopped: start needs no read before it acts */
  startTimeoutMs: z.number().int().positive().optional(),
  recordedAt: z.string().optional(),
});
export type StopRecord = z.infer<typeof StopRecord>;
export const STOP = stepRef('stop', StopRecord);

export const StartDetail = z.object({ replicas: z.number().int().nonnegative(), scaled: z.boolean() });
export type StartDetail = z.infer<typeof StartDetail>;
/** the compensation step; versions before `restore` became a job type named it `restore`: such jobs resume under this name */
export const START = stepRef('start', StartDetail, ['restore']);

const ATTEMPTS = 8;
/** how often the task list is read while waiting for a stop or a start */
export const WAIT_POLL_MS = 50;
/** states in which a task has, or is about to have, a container */
const LIVE = new Set(['assigned', 'accepted', 'preparing', 'ready', 'starting', 'running']);

export async function stop(ctx: StepContext<StopRecord>): Promise<StepOutcome<StopRecord>> {
  const r = resolvedOf(ctx);
  if (!r.stop) return { skipped: true, output: 'swarm-utils.backup.stop is not true' };
  const svc = await serviceById(ctx, r.serviceId);
  if (svc.mode !== 'replicated' || svc.replicas === null) {
    throw new AppError('UNSUPPORTED', `${svc.name} is a ${svc.mode} service: it cannot be scaled to 0`);
  }
  // committed before scaling; a re-entered step keeps the first record (the service may already be at 0)
  const limit = labelMs(svc.labels, LIMIT.stop, ctx.deps.config.lockMaxExecutionMs);
  const startTimeoutMs = labelMs(svc.labels, LIMIT.start, ctx.deps.config.lockMaxExecutionMs);
  const before = ctx.detail;
  const record: StopRecord = before.replicas !== undefined ? { ...before, replicas: before.replicas } : { replicas: svc.replicas, startTimeoutMs, recordedAt: new Date().toISOString() };
  if (before.replicas === undefined) ctx.save(record);
  // no prune runs on the nodes of its tasks while it is down (committed before scaling, too)
  await ctx.holds.holdService({
    serviceId: r.serviceId,
    service: r.service,
    nodes: await taskNodes(ctx, r),
    undo: START.name,
    replicas: record.replicas,
  });
  await withLimit(`the stop of ${svc.name}`, limit, ctx.signal, async (signal) => {
    const { version } = await scaleTo(ctx, r.serviceId, 0, signal, ATTEMPTS);
    ctx.holds.setVersion(r.serviceId, version);
    await waitTasks(ctx, r.serviceId, signal, (tasks) => !tasks.some(isLive));
  });
  return { detail: record, output: `scaled ${svc.name} from ${record.replicas} to 0; no task runs` };
}

export async function start(ctx: StepContext<StartDetail>): Promise<StepOutcome<StartDetail>> {
  const rec = ctx.detailOf(STOP);
  if (!rec) return { skipped: true, output: 'nothing was stopped' };
  const r = resolvedOf(ctx);
  const want = rec.replicas;
  const limit = rec.startTimeoutMs ?? ctx.deps.config.lockMaxExecutionMs;
  const what = `the restart of ${r.service} at ${want} replica(s)`;
  // one limit for scaling and waiting: attempts go on until the count is set or the limit passes
  const changed = await withLimit(what, limit, ctx.signal, async (signal) => {
    const { changed, version } = await scaleTo(ctx, r.serviceId, want, signal, Infinity);
    // our own change: a retry after this one must not take it for an operator's
    ctx.holds.setVersion(r.serviceId, version);
    await waitTasks(ctx, r.serviceId, signal, (tasks) => runningCount(tasks) >= want);
    return changed;
  });
  ctx.holds.releaseService(r.serviceId);
  return {
    detail: { replicas: want, scaled: changed },
    output: `${r.service} runs ${want} replica(s) again${changed ? '' : ' (the count had already been restored)'}`,
  };
}

const isLive = (t: TaskInfo): boolean => t.desiredState === 'running' || LIVE.has(t.state);
const runningCount = (tasks: TaskInfo[]): number => tasks.filter((t) => t.state === 'running' && t.desiredState === 'running').length;

/** node ids of the service's live tasks now, and of the nodes its archives are made on */
async function taskNodes(ctx: StepContext<StopRecord>, r: Resolved): Promise<string[]> {
  const live = (await ctx.deps.docker.listTasks(r.serviceId)).filter(isLive).flatMap((t) => (t.nodeId ? [t.nodeId] : []));
  return [...new Set([...live, ...r.tasks.map((t) => t.nodeId), ...r.pairs.map((p) => p.nodeId)])];
}

/**
 * Sets the desired replica count (`changed` false when it already was) and answers the spec version it
 * leaves. Every attempt re-reads the service, so a version conflict (a concurrent spec change) or a
 * transient manager error is retried on fresh data.
 */
export async function scaleTo(
  ctx: Pick<StepContext, 'deps' | 'log'>,
  serviceId: string,
  replicas: number,
  signal: AbortSignal,
  attempts: number,
): Promise<{ changed: boolean; version: number }> {
  const { docker, config } = ctx.deps;
  for (let attempt = 1; ; attempt++) {
    try {
      const svc = await serviceById(ctx, serviceId);
      if (svc.replicas === replicas) return { changed: false, version: svc.version };
      const spec = structuredClone(svc.spec);
      spec.Mode = { Replicated: { Replicas: replicas } };
      // the image's credentials go along, so a task placed on another node can still pull a private image
      await docker.updateService(svc.id, svc.version, spec, registryAuthFor(svc.image, { labels: svc.labels, config }));
      ctx.log.info({ service: svc.name, from: svc.replicas, to: replicas }, 'service scaled');
      const after = await serviceById(ctx, serviceId);
      return { changed: true, version: after.version };
    } catch (e) {
      if (attempt >= attempts || signal.aborted || !retryable(e)) throw e;
      ctx.log.warn({ serviceId, replicas, attempt, err: isAppError(e) ? e.message : String(e) }, 'scaling failed, retrying on a fresh read');
      await sleep(Math.min(500 * attempt, 3000), signal);
    }
  }
}

/** Docker errors other than a missing service: "update out of sequence", a leader election, a busy manager, a call that timed out */
function retryable(e: unknown): boolean {
  if (!isAppError(e)) return true;
  return e.code === 'DOCKER_ERROR' || e.code === 'INTERNAL' || e.code === 'TIMEOUT';
}

/** polls the service's tasks until `done`; a failed listing is retried (the caller's limit ends the wait) */
async function waitTasks(ctx: StepContext, serviceId: string, signal: AbortSignal, done: (tasks: TaskInfo[]) => boolean): Promise<void> {
  for (;;) {
    let pause = WAIT_POLL_MS;
    try {
      if (done(await ctx.deps.docker.listTasks(serviceId))) return;
    } catch (e) {
      if (signal.aborted || !retryable(e)) throw e;
      ctx.log.warn({ err: isAppError(e) ? e.message : String(e) }, 'could not list the tasks, retrying');
      pause = 1000; // a manager that fails is not asked ten times a second
    }
    await sleep(pause, signal);
  }
}
