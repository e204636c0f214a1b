/**
 * Steps 1 and 2 of a backup: resolve (the tasks, nodes, volumes and object keys, committed once)
 * and exec (the label's command in every container of those tasks).
 */
import { z } from 'zod';
import type { Config } from '../../config.js';
import { AppError } from '../../errors.js';
import { labelMs } from '../../engine/limits.js';
import { type StepContext, type StepOutcome, stepRef } from '../../engine/types.js';
import type { ServiceInfo, TaskInfo } from '../../swarm/port.js';
import { execInTasks } from '../exec.js';
import { L, flag } from '../labels.js';
import { LIMIT, STACK_LABEL, backupStamp, namedVolumes, planPairs, selectVolumes } from './plan.js';

const ResolvedTask = z.object({ id: z.string(), nodeId: z.string(), node: z.string(), containerId: z.string() });
export type ResolvedTask = z.infer<typeof ResolvedTask>;

const PairSchema = z.object({
  index: z.number().int().nonnegative(),
  nodeId: z.string(),
  node: z.string(),
  volume: z.string(),
  filename: z.string(),
  key: z.string(),
});

/** the committed detail of `resolve`: every later step (and a resumed job) works from it */
export const ResolvedSchema = z.object({
  serviceId: z.string(),
  service: z.string(),
  stop: z.boolean(),
  /** stop=true and staging on (README "Staging: the downtime of a stop=true backup"); absent in jobs of older versions, which never staged */
  stage: z.boolean().optional(),
  tasks: z.array(ResolvedTask),
  volumes: z.array(z.string()),
  stamp: z.string(),
  pairs: z.array(PairSchema),
});
export type Resolved = z.infer<typeof ResolvedSchema>;
export const RESOLVE = stepRef('resolve', ResolvedSchema);

export const S3_VARS = ['SWARM_UTILS_S3_DOMAIN', 'SWARM_UTILS_S3_BUCKET_NAME', 'SWARM_UTILS_S3_ACCESS_KEY', 'SWARM_UTILS_S3_SECRET_ACCESS_KEY'];

/** why this service cannot be backed up now (NOT_ENABLED / UNSUPPORTED), checked at submission and again when the job runs */
export function refusal(svc: ServiceInfo, config: Pick<Config, 's3'>): AppError | null {
  if (!flag(svc.labels, L.backupEnable, false)) return new AppError('NOT_ENABLED', `service ${svc.name} does not have ${L.backupEnable}=true`);
  const s3 = s3Refusal(config);
  if (s3) return s3;
  if (flag(svc.labels, L.backupStop, false) && svc.mode !== 'replicated') {
    return new AppError('UNSUPPORTED', `${L.backupStop}=true needs a replicated service; ${svc.name} is ${svc.mode} and cannot be scaled to 0`);
  }
  return null;
}

/** staging of a stop=true backup: on unless SWARM_UTILS_BACKUP_STAGE=false or the service says `swarm-utils.backup.stage=false` */
export const stagingOn = (labels: Record<string, string>, config: Pick<Config, 'backupStage'>): boolean => flag(labels, L.backupStage, config.backupStage);

export function s3Refusal(config: Pick<Config, 's3'>): AppError | null {
  const s3 = config.s3;
  if (!s3.domain || !s3.bucket || !s3.accessKey || !s3.secretAccessKey) {
    return new AppError('UNSUPPORTED', `backups need S3: set ${S3_VARS.join(', ')}`);
  }
  return null;
}

export async function serviceById(ctx: Pick<StepContext, 'deps'>, id: string): Promise<ServiceInfo> {
  const svc = await ctx.deps.docker.getService(id);
  if (!svc) throw new AppError('NOT_FOUND', `service ${id} no longer exists`);
  return svc;
}

/** what `resolve` committed; every later step needs it */
export function resolvedOf(ctx: Pick<StepContext, 'detailOf'>): Resolved {
  const r = ctx.detailOf(RESOLVE);
  if (!r) throw new AppError('INTERNAL', 'the resolve step committed nothing: the job cannot go on');
  return r;
}

export async function resolve(ctx: StepContext<Resolved>): Promise<StepOutcome<Resolved>> {
  // committed before a crash: keep the same tasks, stamp and keys, so no archive gets a second name
  const before = ResolvedSchema.safeParse(ctx.detail);
  if (before.success) return { output: summary(before.data) };
  const svc = await ctx.deps.docker.getService(ctx.job.target!);
  if (!svc) throw new AppError('NOT_FOUND', `service ${ctx.job.target} does not exist`);
  const refused = refusal(svc, ctx.deps.config);
  if (refused) throw refused;
  const volumes = selectVolumes(svc.name, namedVolumes(svc.spec), svc.labels[L.backupVolumes], svc.labels[STACK_LABEL]);
  const { tasks, nodes } = await tasksAndNodes(ctx, svc);
  const stamp = backupStamp(new Date());
  const stop = flag(svc.labels, L.backupStop, false);
  const detail: Resolved = {
    serviceId: svc.id,
    service: svc.name,
    stop,
    stage: stop && stagingOn(svc.labels, ctx.deps.config),
    tasks,
    volumes,
    stamp,
    pairs: planPairs(nodes, volumes, stamp, ctx.deps.config.s3.path),
  };
  ctx.save(detail);
  return { output: summary(detail) };
}

/** the running tasks and their nodes; a service with none runs on the node of its most recent task */
async function tasksAndNodes(ctx: StepContext, svc: ServiceInfo): Promise<{ tasks: ResolvedTask[]; nodes: { nodeId: string; node: string }[] }> {
  const [all, nodeList] = await Promise.all([ctx.deps.docker.listTasks(svc.id), ctx.deps.docker.listNodes()]);
  const hostname = (id: string) => nodeList.find((n) => n.id === id)?.hostname ?? id;
  const tasks = all
    .filter((t) => t.state === 'running' && t.desiredState === 'running' && t.containerId && t.nodeId)
    .map((t) => ({ id: t.id, nodeId: t.nodeId!, node: hostname(t.nodeId!), containerId: t.containerId! }));
  if (tasks.length) {
    const nodes = [...new Map(tasks.map((t) => [t.nodeId, { nodeId: t.nodeId, node: t.node }])).values()];
    return { tasks, nodes };
  }
  const latest = all.filter((t) => t.nodeId).sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))[0];
  if (!latest) {
    throw new AppError('NOT_FOUND', `service ${svc.name} has no task, running or past, so no node is known to hold its volumes (scale it up to back it up)`);
  }
  return { tasks: [], nodes: [{ nodeId: latest.nodeId!, node: hostname(latest.nodeId!) }] };
}

function summary(r: Resolved): string {
  const where = r.tasks.length ? `${r.tasks.length} running task(s)` : 'no running task, node of the last task';
  const how = r.stop ? (r.stage ? '; stop, stage, start, then archive' : '; stop, archive in place, then start') : '';
  return `${where}; volumes ${r.volumes.join(', ')}; ${r.pairs.length} archive(s): ${r.pairs.map((p) => p.key).join(', ')}${how}`;
}

const asTaskInfo = (t: ResolvedTask, serviceId: string): TaskInfo => ({
  id: t.id,
  serviceId,
  nodeId: t.nodeId,
  containerId: t.containerId,
  state: 'running',
  desiredState: 'running',
  error: null,
  message: null,
  exitCode: null,
  image: '',
  serviceVersion: null,
  createdAt: '',
  updatedAt: '',
});

/** `swarm-utils.backup.exec` in every container resolved; a non-zero exit fails the job before anything is stopped */
export async function execStep(ctx: StepContext): Promise<StepOutcome> {
  const r = resolvedOf(ctx);
  const svc = await serviceById(ctx, r.serviceId);
  const command = svc.labels[L.backupExec];
  if (!command?.trim()) return { skipped: true, output: `no ${L.backupExec} label` };
  if (!r.tasks.length) return { skipped: true, output: 'no running container to run the command in' };
  const timeoutMs = labelMs(svc.labels, LIMIT.exec, ctx.deps.config.lockMaxExecutionMs);
  const tasks = r.tasks.map((t) => asTaskInfo(t, r.serviceId));
  const outcomes = await execInTasks(ctx, tasks, command, { step: 'backup-exec', timeoutMs });
  const hostname = (nodeId: string) => r.tasks.find((t) => t.nodeId === nodeId)?.node ?? nodeId;
  return {
    detail: { containers: outcomes.map(({ output, ...o }) => ({ ...o, node: hostname(o.node) })) },
    output: outcomes.map((o) => `[${hostname(o.node)} ${o.container.slice(0, 12)}] ${o.output.trim()}`).join('\n'),
  };
}
