/**
 * Steps 3 and 5 of a backup: stop (record the replica count, scale to 0, wait) and restore (scale back
 * to the recorded count, wait). Restore is the compensation users trust with their uptime: it runs
 * after a failure, a cancel, a timeout and a crash, re-reads the service before every attempt and
 * retries what a busy or re-electing manager may answer.
 */
import { AppError, isAppError } from '../../errors.js';
import { labelMs, sleep, withLimit } from '../../engine/limits.js';
import type { StepContext, StepOutcome } from '../../engine/types.js';
import type { TaskInfo } from '../../swarm/port.js';
import { registryAuthFor } from '../image.js';
import { LIMIT } from './plan.js';
import { resolvedOf, serviceById } from './resolve.js';

/** what `stop` commits before it scales */
export interface StopRecord {
  replicas?: number;
  /** start-timeout-ms as labelled when the service was stopped: restore needs no read before it acts */
  startTimeoutMs?: number;
  recordedAt?: string;
}

const ATTEMPTS = 8;
const POLL_MS = 1000;
/** states in which a task has, or is about to have, a container */
const LIVE = new Set(['assigned', 'accepted', 'preparing', 'ready', 'starting', 'running']);

export async function stop(ctx: StepContext): Promise<StepOutcome> {
  const r = resolvedOf(ctx);
  if (!r.stop) return { skipped: true, output: 'swarm-utils.backup.stop is not true' };
  const svc = await serviceById(ctx, r.serviceId);
  if (svc.mode !== 'replicated' || svc.replicas === null) {
    throw new AppError('UNSUPPORTED', `${svc.name} is a ${svc.mode} service: it cannot be scaled to 0`);
  }
  // committed before scaling; a re-entered step keeps the first record (the service may already be at 0)
  const limit = labelMs(svc.labels, LIMIT.stop, ctx.deps.config.lockMaxExecutionMs);
  const startTimeoutMs = labelMs(svc.labels, LIMIT.start, ctx.deps.config.lockMaxExecutionMs);
  const before = ctx.detail as StopRecord;
  const record: StopRecord = before.replicas !== undefined ? before : { replicas: svc.replicas, startTimeoutMs, recordedAt: new Date().toISOString() };
  if (before.replicas === undefined) ctx.save({ ...record });
  await withLimit(`the stop of ${svc.name}`, limit, ctx.signal, async (signal) => {
    await scaleTo(ctx, r.serviceId, 0, signal, ATTEMPTS);
    await waitTasks(ctx, r.serviceId, signal, (tasks) => !tasks.some(isLive));
  });
  return { detail: { ...record }, output: `scaled ${svc.name} from ${record.replicas} to 0; no task runs` };
}

export async function restore(ctx: StepContext): Promise<StepOutcome> {
  const rec = ctx.detailOf('stop') as StopRecord;
  if (rec.replicas === undefined) return { skipped: true, output: 'nothing was stopped' };
  const r = resolvedOf(ctx);
  const want = rec.replicas;
  const limit = rec.startTimeoutMs ?? ctx.deps.config.lockMaxExecutionMs;
  const what = `the restart of ${r.service} at ${want} replica(s)`;
  // one limit for scaling and waiting: attempts go on until the count is set or the limit passes
  const changed = await withLimit(what, limit, ctx.signal, async (signal) => {
    const scaled = await scaleTo(ctx, r.serviceId, want, signal, Infinity);
    await waitTasks(ctx, r.serviceId, signal, (tasks) => runningCount(tasks) >= want);
    return scaled;
  });
  return {
    detail: { replicas: want, scaled: changed },
    output: `${r.service} runs ${want} replica(s) again${changed ? '' : ' (the count had already been restored)'}`,
  };
}

const isLive = (t: TaskInfo): boolean => t.desiredState === 'running' || LIVE.has(t.state);
const runningCount = (tasks: TaskInfo[]): number => tasks.filter((t) => t.state === 'running' && t.desiredState === 'running').length;

/**
 * Sets the desired replica count; false when it already was. Every attempt re-reads the service, so a
 * version conflict (a concurrent spec change) or a transient manager error is retried on fresh data.
 */
export async function scaleTo(ctx: StepContext, serviceId: string, replicas: number, signal: AbortSignal, attempts: number): Promise<boolean> {
  const { docker, config } = ctx.deps;
  for (let attempt = 1; ; attempt++) {
    try {
      const svc = await serviceById(ctx, serviceId);
      if (svc.replicas === replicas) return false;
      const spec = structuredClone(svc.spec);
      spec.Mode = { Replicated: { Replicas: replicas } };
      // the image's credentials go along, so a task placed on another node can still pull a private image
      await docker.updateService(svc.id, svc.version, spec, registryAuthFor(svc.image, { labels: svc.labels, config }));
      ctx.log.info({ service: svc.name, from: svc.replicas, to: replicas }, 'service scaled');
      return true;
    } catch (e) {
      if (attempt >= attempts || signal.aborted || !retryable(e)) throw e;
      ctx.log.warn({ serviceId, replicas, attempt, err: isAppError(e) ? e.message : String(e) }, 'scaling failed, retrying on a fresh read');
      await sleep(Math.min(500 * attempt, 3000), signal);
    }
  }
}

/** Docker errors other than a missing service: "update out of sequence", a leader election, a busy manager */
function retryable(e: unknown): boolean {
  if (!isAppError(e)) return true;
  return e.code === 'DOCKER_ERROR' || e.code === 'INTERNAL';
}

/** polls the service's tasks until `done`; a failed listing is retried (the caller's limit ends the wait) */
async function waitTasks(ctx: StepContext, serviceId: string, signal: AbortSignal, done: (tasks: TaskInfo[]) => boolean): Promise<void> {
  for (;;) {
    try {
      if (done(await ctx.deps.docker.listTasks(serviceId))) return;
    } catch (e) {
      if (signal.aborted || !retryable(e)) throw e;
      ctx.log.warn({ err: isAppError(e) ? e.message : String(e) }, 'could not list the tasks, retrying');
    }
    await sleep(POLL_MS, signal);
  }
}
