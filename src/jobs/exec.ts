import { AppError } from '../errors.js';
import { HELPER_STOP_MS } from '../engine/helpers.js';
import { ShutdownSignal } from '../engine/limits.js';
import type { StepContext } from '../engine/types.js';
import { helperName } from '../swarm/helpers.js';
import type { ExecResult, HelperResult, TaskInfo } from '../swarm/port.js';
import { registryAuthFor } from './image.js';

export interface ExecOutcome {
  task: string;
  node: string;
  container: string;
  exitCode: number | null;
  output: string;
}

/** tasks of a service that run now and have a container */
export async function runningTasks(ctx: Pick<StepContext, 'deps'>, serviceId: string): Promise<TaskInfo[]> {
  const tasks = await ctx.deps.docker.listTasks(serviceId);
  return tasks.filter((t) => t.state === 'running' && t.desiredState === 'running' && t.containerId && t.nodeId);
}

// The command travels as an environment value; this fixed script never splices it into shell text.
const REMOTE_EXEC = 'exec docker exec "$SWARM_UTILS_CONTAINER" sh -c "$SWARM_UTILS_COMMAND"';

/**
 * Runs `sh -c <command>` in each task's container, wherever it runs: directly through the API on this
 * manager's node, through a helper service pinned to the node elsewhere. All in parallel; any non-zero
 * exit fails with EXEC_FAILED after every container has answered.
 */
export async function execInTasks(
  ctx: StepContext,
  tasks: TaskInfo[],
  command: string,
  opts: { step: string; timeoutMs: number },
): Promise<ExecOutcome[]> {
  const [self, nodes] = await Promise.all([ctx.deps.docker.self(), ctx.deps.docker.listNodes()]);
  const raw = await Promise.all(
    tasks.map((t) => (t.nodeId === self.nodeId ? execLocal(ctx, t, command, opts.timeoutMs) : execRemote(ctx, t, command, opts))),
  );
  // operators read hostnames, not node ids
  const outcomes = raw.map((o) => ({ ...o, node: nodes.find((n) => n.id === o.node)?.hostname ?? o.node }));
  const failed = outcomes.filter((o) => o.exitCode !== 0);
  if (failed.length) {
    const what = failed.map((o) => `container ${o.container.slice(0, 12)} on node ${o.node}: exit ${o.exitCode ?? 'none'}: ${tail(o.output)}`);
    throw new AppError('EXEC_FAILED', `${opts.step} command failed in ${failed.length} of ${outcomes.length} containers: ${what.join('; ')}`, {
      outcomes: outcomes.map(({ output, ...o }) => ({ ...o, output: tail(output, 2000) })),
    });
  }
  return outcomes;
}

async function execLocal(ctx: StepContext, t: TaskInfo, command: string, timeoutMs: number): Promise<ExecOutcome> {
  ctx.log.info({ task: t.id, container: t.containerId }, 'exec in local container');
  const r: ExecResult = await ctx.deps.docker.execLocal(t.containerId!, ['sh', '-c', command], { timeoutMs, signal: ctx.signal });
  return { task: t.id, node: t.nodeId!, container: t.containerId!, exitCode: r.exitCode, output: r.stdout + r.stderr };
}

async function execRemote(ctx: StepContext, t: TaskInfo, command: string, opts: { step: string; timeoutMs: number }): Promise<ExecOutcome> {
  ctx.log.info({ task: t.id, container: t.containerId, node: t.nodeId }, 'exec in remote container through a helper');
  const r = await runCliHelper(ctx, {
    step: opts.step,
    key: t.id,
    nodeId: t.nodeId!,
    command: ['sh', '-c', REMOTE_EXEC],
    env: { SWARM_UTILS_CONTAINER: t.containerId!, SWARM_UTILS_COMMAND: command },
    timeoutMs: opts.timeoutMs,
  });
  const output = r.exitCode === null ? `helper did not run (${r.state}): ${r.error ?? ''}\n${r.output}` : r.output;
  return { task: t.id, node: t.nodeId!, container: t.containerId!, exitCode: r.exitCode, output };
}

/**
 * Runs `command` in a helper on `nodeId` with the Docker CLI image and that node's socket, waits for it
 * and removes it. The name is deterministic (a re-entered step reattaches); on shutdown the helper stays
 * for the next process.
 */
export async function runCliHelper(
  ctx: StepContext,
  h: { step: string; key: string; nodeId: string; command: string[]; env: Record<string, string>; timeoutMs: number },
): Promise<HelperResult> {
  const { docker, config } = ctx.deps;
  const image = config.dockerCliImage;
  const ref = await docker.createHelper({
    name: helperName(ctx.deps.instance, ctx.job.id, h.step, h.key),
    jobId: ctx.job.id,
    nodeId: h.nodeId,
    image,
    command: h.command,
    env: h.env,
    mounts: [{ type: 'bind', source: '/var/run/docker.sock', target: '/var/run/docker.sock', readOnly: false }],
    auth: registryAuthFor(image, { config }),
  });
  let ended = false;
  try {
    const res = await docker.waitHelper(ref, { timeoutMs: h.timeoutMs, signal: ctx.signal });
    ended = true;
    return res;
  } finally {
    if (!(ctx.signal.aborted && ctx.signal.reason instanceof ShutdownSignal)) {
      // one still running (its wait timed out or was canceled) is stopped, not only removed: its command ends
      const gone = ended ? docker.removeService(ref.id) : docker.stopHelper(ref, { timeoutMs: HELPER_STOP_MS });
      await gone.catch((e: unknown) => ctx.log.warn({ err: e, helper: ref.name }, 'could not remove helper'));
    }
  }
}

export const tail = (s: string, n = 500): string => (s.length > n ? '…' + s.slice(-n) : s).trim();
