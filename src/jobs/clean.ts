import { AppError } from '../errors.js';
import type { JobRow } from '../db/jobs.js';
import { labelMs } from '../engine/limits.js';
import type { JobKind, StepContext, StepDef, SubmitCheck, Target } from '../engine/types.js';
import type { NodeInfo } from '../swarm/port.js';
import { execInTasks, runCliHelper, runningTasks, tail } from './exec.js';
import { pruneImages } from './clean-images.js';
import { L, flag } from './labels.js';
import { grants } from './tokens.js';
import { requesterKey } from '../db/meta.js';
import { serviceOf } from './update.js';

/**
 * clean of a node: container, image and build-cache prune, each a step of its own run by a helper on
 * that node (the image prune keeps what a rollback needs: clean-images.ts); down or drained nodes are skipped. clean of a service: its clean command in every running
 * container. Volumes are never pruned.
 */
export const cleanKind: JobKind & SubmitCheck = {
  type: 'clean',
  // node jobs target and lock a node id: a hostname may also name a stale Down entry of a node that re-joined
  locks: (t) => [t.kind === 'node' ? `clean_node_${t.name}` : `clean_service_${t.name}`],
  steps: (job: JobRow): StepDef[] =>
    job.targetKind === 'node'
      ? [
          { name: 'check-node', run: checkNode },
          { name: 'container-prune', run: (ctx) => prune(ctx, 'container') },
          { name: 'image-prune', run: (ctx) => prune(ctx, 'image') },
          { name: 'builder-prune', run: (ctx) => prune(ctx, 'builder') },
        ]
      : [{ name: 'exec', run: cleanService }],
  precheck(_deps, { service }) {
    if (!service) return;
    if (!flag(service.labels, L.cleanEnable, false)) {
      throw new AppError('NOT_ENABLED', `service ${service.name} does not have ${L.cleanEnable}=true`);
    }
    if (!service.labels[L.cleanExec]?.trim()) throw new AppError('NOT_ENABLED', `service ${service.name} has no ${L.cleanExec} label`);
  },
  allTargets: async (deps, grant) => {
    const [nodes, services] = await Promise.all([deps.docker.listNodes(), deps.docker.listServices()]);
    const key = requesterKey(deps.db);
    // every node entry once, by id: a Down entry left by a re-joined node is reported skipped by check-node
    const targets: Target[] = nodes
      .filter((n) => grants(n.labels[L.nodeTokenList], grant.tokenHash, key))
      .map((n) => ({ kind: 'node', name: n.id, label: n.hostname }));
    for (const s of services) {
      if (flag(s.labels, L.cleanEnable, false) && s.labels[L.cleanExec]?.trim() && grants(s.labels[L.cleanToken], grant.tokenHash, key)) {
        targets.push({ kind: 'service', name: s.name });
      }
    }
    return targets;
  },
};

type PruneKind = 'container' | 'image' | 'builder';

const PRUNE: Record<Exclude<PruneKind, 'image'>, string[]> = {
  container: ['docker', 'container', 'prune', '-f'],
  builder: ['docker', 'builder', 'prune', '-f'],
};

/** the job's node by its id (jobs written before node ids hold a hostname, which getNode also resolves) */
async function nodeOf(ctx: Pick<StepContext, 'deps' | 'job'>): Promise<NodeInfo> {
  const node = await ctx.deps.docker.getNode(ctx.job.target!);
  const what = ctx.job.targetLabel && ctx.job.targetLabel !== ctx.job.target ? `${ctx.job.targetLabel} (${ctx.job.target})` : ctx.job.target;
  if (!node) throw new AppError('NOT_FOUND', `node ${what} does not exist`);
  return node;
}

async function checkNode(ctx: StepContext) {
  const node = await nodeOf(ctx);
  const why =
    node.state !== 'ready'
      ? `node is ${node.state}`
      : node.availability !== 'active'
        ? `node availability is ${node.availability}`
        : !flag(node.labels, L.cleanEnable, true)
          ? `${L.cleanEnable}=false`
          : null;
  if (why) ctx.setResult({ node: node.hostname, nodeId: node.id, skipped: why });
  return { detail: { nodeId: node.id, hostname: node.hostname, skip: why }, output: why ? `skipped: ${why}` : 'node ready', skipped: !!why };
}

async function prune(ctx: StepContext, what: PruneKind) {
  const check = ctx.detailOf('check-node') as { nodeId: string; skip: string | null };
  if (check.skip) return { skipped: true, output: `skipped: ${check.skip}` };
  const node = await nodeOf(ctx);
  if (!flag(node.labels, `swarm-utils.clean.${what}.enable`, true)) {
    return { skipped: true, output: `skipped: swarm-utils.clean.${what}.enable=false` };
  }
  const timeoutMs = labelMs(node.labels, `swarm-utils.clean.${what}.timeout-ms`, ctx.deps.config.lockMaxExecutionMs);
  // never while a job holds a service with tasks on this node scaled down (its image must stay)
  await ctx.holds.holdNode(node.id, node.hostname);
  if (what === 'image') return pruneImages(ctx, node, timeoutMs);
  const r = await runCliHelper(ctx, { step: `${what}-prune`, key: node.id.slice(0, 12), nodeId: node.id, command: PRUNE[what], env: {}, timeoutMs });
  if (r.exitCode !== 0) {
    throw new AppError('EXEC_FAILED', `${PRUNE[what].join(' ')} on ${node.hostname} ended ${r.exitCode ?? r.state}: ${tail(r.error ?? r.output)}`);
  }
  return { detail: { node: node.hostname, reclaimedBytes: reclaimed(r.output) }, output: tail(r.output, 2000) };
}

const UNITS: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, PB: 1e15 };

/** "Total reclaimed space: 12.5MB" (container/image prune) or "Total:  1.2GB" (builder prune), in bytes */
export function reclaimed(output: string): number {
  const m = /Total(?: reclaimed space)?:\s*([\d.]+)\s*([kKMGTP]?B)/.exec(output);
  if (!m) return 0;
  return Math.round(Number(m[1]) * (UNITS[m[2]!.toUpperCase()] ?? 1));
}

async function cleanService(ctx: StepContext) {
  const svc = await serviceOf(ctx);
  const command = svc.labels[L.cleanExec];
  if (!flag(svc.labels, L.cleanEnable, false) || !command?.trim()) {
    throw new AppError('NOT_ENABLED', `service ${svc.name} is not enabled for clean (labels changed since the job was queued)`);
  }
  const timeoutMs = labelMs(svc.labels, L.cleanTimeout, ctx.deps.config.lockMaxExecutionMs);
  const tasks = await runningTasks(ctx, svc.id);
  const outcomes = await execInTasks(ctx, tasks, command, { step: 'clean', timeoutMs });
  return {
    detail: { containers: outcomes.map(({ output, ...o }) => o) },
    output: outcomes.map((o) => `[${o.node} ${o.container.slice(0, 12)}] ${o.output.trim()}`).join('\n') || 'no running container',
  };
}
