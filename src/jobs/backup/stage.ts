/**
 * Staging (README "Staging: the downtime of a stop=true backup"), around the stop of a stop=true backup:
 *   prepare (before stop) — a staging helper per node is started and measures the free space while the service
 *     still runs; it then waits on its node for the service's containers to exit;
 *   stage (after stop)    — the copies, made the moment the containers exited, are collected with their file
 *     count and byte total; the service is started right after (the `start` step), and the copies are
 *     archived while it runs (`archive-staged`).
 * A pair without room for its copy (or whose copy failed) is archived in place while the service is stopped,
 * by the `archive` step, and the output says why. Every staging volume is recorded before a helper can make
 * it (db/staging.ts), so `unstage` and the sweep find it again whatever happens.
 *
 * A copy must never see the service write. The helper copies once no container of the service runs on its
 * node; a task that started on that node after the helpers were launched (a crash and restart before the
 * stop) means the copy may be torn: it is made again now that the service is stopped for sure.
 */
import { z } from 'zod';
import { type StepContext, type StepOutcome, stepRef } from '../../engine/types.js';
import { recordStaging } from '../../db/staging.js';
import type { HelperRef, HelperResult, TaskInfo } from '../../swarm/port.js';
import { HELPER_STOP_MS } from '../../engine/helpers.js';
import { ShutdownSignal, labelMs, sleep, withLimit } from '../../engine/limits.js';
import { tail } from '../exec.js';
import { registryAuthFor } from '../image.js';
import { LIMIT, type Pair } from './plan.js';
import { type Resolved, resolvedOf, serviceById } from './resolve.js';
import { type PairReport, type StagingReport, helperEnded, isFinal, parseStagingOutput, stagingHelperName, stagingHelperSpec, stagingVolume } from './staging-helper.js';

export const PrepareDetail = z.object({
  /** every task of the service when the staging helpers were launched */
  knownTasks: z.array(z.string()),
  /** pair index → why it is archived in place (no room, no helper ready) */
  inPlace: z.record(z.string(), z.string()),
});
export type PrepareDetail = z.infer<typeof PrepareDetail>;
export const PREPARE = stepRef('prepare', PrepareDetail);

const Staged = z.object({ staged: z.literal(true), node: z.string(), volume: z.string(), stagingVolume: z.string(), files: z.number(), bytes: z.number() });
const NotStaged = z.object({ staged: z.literal(false), node: z.string(), volume: z.string(), reason: z.string() });
export const StageOutcome = z.discriminatedUnion('staged', [Staged, NotStaged]);
export type StageOutcome = z.infer<typeof StageOutcome>;
/** pair index → its outcome, committed as each node ends */
export const StageDetail = z.object({ pairs: z.record(z.string(), StageOutcome) });
export type StageDetail = z.infer<typeof StageDetail>;
export const STAGE = stepRef('stage', StageDetail);

/** how often a staging helper is looked at while it gets ready or copies (the copy is in the downtime) */
const POLL_MS = 50;
/** a staging helper that is not ready after this long is given up: its pairs are archived in place */
const READY_MAX_MS = 120_000;

/** the pairs of each node, in pair order */
export function byNode(pairs: Pair[]): Pair[][] {
  const out = new Map<string, Pair[]>();
  for (const p of pairs) out.set(p.nodeId, [...(out.get(p.nodeId) ?? []), p]);
  return [...out.values()];
}

const notStaged = (r: Pick<Resolved, 'stop' | 'stage'>): StepOutcome<never> | null =>
  !r.stop ? { skipped: true, output: 'swarm-utils.backup.stop is not true: nothing is staged' } : !r.stage ? { skipped: true, output: 'staging is off (SWARM_UTILS_BACKUP_STAGE or swarm-utils.backup.stage): archived in place while stopped' } : null;

/** step `prepare`: the staging helpers run and are ready before the service is stopped */
export async function prepare(ctx: StepContext<PrepareDetail>): Promise<StepOutcome<PrepareDetail>> {
  const r = resolvedOf(ctx);
  const off = notStaged(r);
  if (off) return off;
  // committed before any helper exists: the tasks a copy may trust, and every staging volume to remove later
  const detail: PrepareDetail = {
    knownTasks: ctx.detail.knownTasks ?? (await ctx.deps.docker.listTasks(r.serviceId)).map((t) => t.id),
    inPlace: { ...(ctx.detail.inPlace ?? {}) },
  };
  ctx.save(detail);
  recordVolumes(ctx, r.pairs);
  const svc = await serviceById(ctx, r.serviceId);
  const limit = Math.min(labelMs(svc.labels, LIMIT.stop, ctx.deps.config.lockMaxExecutionMs), READY_MAX_MS);
  const lines = await Promise.all(
    byNode(r.pairs).map(async (pairs) => {
      const ref = await launch(ctx, r, pairs);
      const report = await untilReady(ctx, ref, limit);
      const line = `[${pairs[0]!.node}] ${report.ready ? 'staging helper ready' : 'staging helper not ready'}`;
      const notes = pairs.map((p) => roomNote(p, report)).filter((n): n is [Pair, string] => n !== null);
      for (const [p, reason] of notes) detail.inPlace[p.index] = reason;
      if (notes.length === pairs.length) {
        // nothing to copy on this node (and a helper that is not ready must not copy later on its own)
        await ctx.deps.docker.stopHelper(ref, { timeoutMs: HELPER_STOP_MS, signal: ctx.signal });
      }
      return [line, ...notes.map(([p, reason]) => `  ${p.volume}: archived in place while stopped: ${reason}`)].join('\n');
    }),
  );
  ctx.save(detail);
  return { detail, output: lines.join('\n') };
}

/** the reason a pair is not staged, from what its helper said while getting ready */
function roomNote(p: Pair, report: StagingReport): [Pair, string] | null {
  const said = report.pairs.get(p.index);
  if (!report.ready) return [p, 'its staging helper did not get ready'];
  if (said?.kind === 'room' && !said.ok) return [p, `no room on ${p.node} for a copy: ${said.text}`];
  return null;
}

function recordVolumes(ctx: StepContext, pairs: Pair[]): void {
  const { db, instance } = ctx.deps;
  for (const p of pairs) recordStaging(db, { jobId: ctx.job.id, nodeId: p.nodeId, node: p.node, volume: stagingVolume(instance, ctx.job.id, p.index) });
}

/** the node's staging helper, created now or found again (deterministic name) */
function launch(ctx: StepContext, r: Resolved, pairs: Pair[], attempt = ''): Promise<HelperRef> {
  const { docker, config, instance } = ctx.deps;
  const nodeId = pairs[0]!.nodeId;
  const spec = stagingHelperSpec({
    instance,
    jobId: ctx.job.id,
    nodeId,
    image: config.dockerCliImage,
    serviceId: r.serviceId,
    containers: r.tasks.filter((t) => t.nodeId === nodeId).map((t) => t.containerId),
    pairs,
    attempt,
  });
  return docker.createHelper({ ...spec, auth: registryAuthFor(config.dockerCliImage, { config }) });
}

/** polls the helper until it says `ready` or its task ended (then its complete output is read) */
async function untilReady(ctx: StepContext, ref: HelperRef, limit: number): Promise<StagingReport> {
  try {
    return await withLimit(`the staging helper ${ref.name}`, limit, ctx.signal, async (signal) => {
      for (;;) {
        const tasks = await ctx.deps.docker.listTasks(ref.id);
        const lines = await ctx.deps.docker.serviceLogs(ref.id, 200);
        const report = parseStagingOutput(lines.join('\n'));
        if (report.ready) return report;
        if (helperEnded(tasks)) return report;
        await sleep(POLL_MS, signal);
      }
    });
  } catch (e) {
    if (ctx.signal.aborted) throw e;
    ctx.log.warn({ helper: ref.name, err: e }, 'staging helper not ready: its volumes are archived in place');
    return { ready: false, stopped: false, pairs: new Map() };
  }
}

/** step `stage`: the copies made while the service is stopped, with their counts (a pair without one is archived in place) */
export async function stage(ctx: StepContext<StageDetail>): Promise<StepOutcome<StageDetail>> {
  const r = resolvedOf(ctx);
  const off = notStaged(r);
  if (off) return off;
  const prep = ctx.detailOf(PREPARE) ?? { knownTasks: null, inPlace: {} };
  const pairs: StageDetail['pairs'] = { ...(ctx.detail.pairs ?? {}) };
  for (const [index, reason] of Object.entries(prep.inPlace)) {
    const p = r.pairs.find((x) => String(x.index) === index);
    if (p && !pairs[index]) pairs[index] = { staged: false, node: p.node, volume: p.volume, reason };
  }
  recordVolumes(ctx, r.pairs);
  const svc = await serviceById(ctx, r.serviceId);
  const timeoutMs = labelMs(svc.labels, LIMIT.upload, ctx.deps.config.lockMaxExecutionMs);
  const todo = r.pairs.filter((p) => !pairs[p.index]);
  await Promise.all(
    byNode(todo).map(async (nodePairs) => {
      let outcomes: Record<string, StageOutcome>;
      try {
        outcomes = await stageNode(ctx, r, nodePairs, { knownTasks: prep.knownTasks, timeoutMs });
      } catch (e) {
        if (ctx.signal.aborted) throw e;
        // staging only shortens the downtime: whatever went wrong, these volumes are archived in place
        const reason = `staging failed: ${e instanceof Error ? e.message : String(e)}`;
        ctx.log.warn({ node: nodePairs[0]!.node, reason }, 'staging failed: archiving in place');
        outcomes = Object.fromEntries(nodePairs.map((p) => [p.index, { staged: false, node: p.node, volume: p.volume, reason } as const]));
      }
      Object.assign(pairs, outcomes);
      ctx.save({ pairs });
    }),
  );
  const list = r.pairs.map((p) => pairs[p.index]).filter((o): o is StageOutcome => o !== undefined);
  const staged = list.filter((o) => o.staged).length;
  const lines = list.map((o) =>
    o.staged ? `[${o.node} ${o.volume}] staged: ${o.files} files, ${o.bytes} bytes` : `[${o.node} ${o.volume}] archived in place while stopped: ${o.reason}`,
  );
  return { detail: { pairs }, output: [`${staged} of ${r.pairs.length} volume(s) staged`, ...lines].join('\n') };
}

/**
 * One node: the helper launched by `prepare` (or launched now, after a restart that lost it) is waited for.
 * A task of the service that appeared on the node since the launch may have written during the copy: then
 * the copy is made again by a fresh helper, the service being stopped for sure by now.
 */
async function stageNode(
  ctx: StepContext<StageDetail>,
  r: Resolved,
  pairs: Pair[],
  o: { knownTasks: string[] | null; timeoutMs: number },
): Promise<Record<string, StageOutcome>> {
  const early = await ctx.deps.docker.findHelper(stagingName(ctx, pairs));
  let result = await runToEnd(ctx, early ?? (await launch(ctx, r, pairs)), pairs, o.timeoutMs);
  if (early && o.knownTasks && (await newTaskOnNode(ctx, r.serviceId, pairs[0]!.nodeId, o.knownTasks))) {
    ctx.log.warn({ node: pairs[0]!.node }, 'a task of the service started on the node while its staging helper waited: copying again');
    result = await runToEnd(ctx, await launch(ctx, r, pairs, '-again'), pairs, o.timeoutMs);
  }
  const report = parseStagingOutput(result.output);
  const out: Record<string, StageOutcome> = {};
  for (const p of pairs) {
    const said = report.pairs.get(p.index);
    const base = { node: p.node, volume: p.volume };
    if (said?.kind === 'staged') {
      out[p.index] = { staged: true, ...base, stagingVolume: stagingVolume(ctx.deps.instance, ctx.job.id, p.index), ...said.count };
    } else {
      out[p.index] = { staged: false, ...base, reason: whyNot(p, said, result) };
    }
  }
  return out;
}

const stagingName = (ctx: StepContext, pairs: Pair[]): string => stagingHelperName(ctx.deps.instance, ctx.job.id, pairs);

function whyNot(p: Pair, said: PairReport | undefined, res: HelperResult): string {
  if (said?.kind === 'room' && !said.ok) return `no room on ${p.node} for a copy: ${said.text}`;
  if (said?.kind === 'failed') return `the copy failed: ${said.text}`;
  if (res.exitCode === null) return `the staging helper did not run (${res.state}): ${res.error ?? ''}`.trim();
  return `the staging helper ended (exit ${res.exitCode}) without a copy: ${tail(res.output, 300)}`;
}

/** waits for the helper's word on every pair (closely: this is downtime) and removes it; on a shutdown it is left for the next process */
async function runToEnd(ctx: StepContext, ref: HelperRef, pairs: Pair[], timeoutMs: number): Promise<HelperResult> {
  const { docker } = ctx.deps;
  let ended = false;
  try {
    const res = await withLimit(`the staging helper ${ref.name}`, timeoutMs, ctx.signal, (signal) => untilCopied(ctx, ref, pairs, signal));
    ended = true;
    return res;
  } finally {
    if (!(ctx.signal.aborted && ctx.signal.reason instanceof ShutdownSignal)) {
      const gone = ended ? docker.removeService(ref.id) : docker.stopHelper(ref, { timeoutMs: HELPER_STOP_MS });
      await gone.catch((e: unknown) => ctx.log.warn({ err: e, helper: ref.name }, 'could not remove staging helper'));
    }
  }
}

/**
 * The helper's log is read as it is written: its last word on every pair (the count printed before it) ends the
 * wait at once, without waiting for Docker to report the task's end; a task that ended otherwise is read whole.
 */
async function untilCopied(ctx: StepContext, ref: HelperRef, pairs: Pair[], signal: AbortSignal): Promise<HelperResult> {
  const { docker } = ctx.deps;
  for (;;) {
    const [tasks, lines] = await Promise.all([docker.listTasks(ref.id), docker.serviceLogs(ref.id, 1000)]);
    const output = lines.join('\n');
    const report = parseStagingOutput(output);
    if (pairs.every((p) => isFinal(report.pairs.get(p.index)))) return { exitCode: 0, state: 'copied', error: null, output };
    if (helperEnded(tasks)) return docker.waitHelper(ref, { timeoutMs: HELPER_STOP_MS, signal, pollMs: POLL_MS });
    await sleep(POLL_MS, signal);
  }
}

/** a task of the service on the node that was not there when the helpers were launched, and had a container */
async function newTaskOnNode(ctx: StepContext, serviceId: string, nodeId: string, known: string[]): Promise<boolean> {
  const tasks: TaskInfo[] = await ctx.deps.docker.listTasks(serviceId);
  return tasks.some((t) => t.nodeId === nodeId && !known.includes(t.id) && t.containerId !== null);
}

/** pair index → its staging volume, for the pairs `stage` copied (read by archive-staged, verify and others) */
export function stagedPairs(ctx: Pick<StepContext, 'detailOf'>, r: Resolved): Map<number, z.infer<typeof Staged>> {
  const detail = r.stage ? ctx.detailOf(STAGE) : null;
  const out = new Map<number, z.infer<typeof Staged>>();
  for (const p of r.pairs) {
    const o = detail?.pairs[p.index];
    if (o?.staged) out.set(p.index, o);
  }
  return out;
}
