import { z } from 'zod';
import { AppError, isAppError } from '../errors.js';
import { JOB_TYPES, type JobType } from '../db/jobs.js';
import { type LastBackup, lastBackups } from '../db/backups.js';
import type { Deps, JobKind } from '../engine/types.js';
import { L, flag, ownLabels, redactLabels } from '../jobs/labels.js';
import { STACK_LABEL, namedVolumes, selectVolumes } from '../jobs/backup/plan.js';
import type { NodeInfo, ServiceInfo, TaskInfo } from '../swarm/port.js';
import type { Authorizer, Caller } from './auth.js';
import { type DrillOutcome, drillOutcomes } from '../backups/drills.js';
import type { SubmitCheck } from './jobs-service.js';

const Refusal = z.object({ code: z.string(), message: z.string() }).nullable();
const Action = z.object({
  type: z.enum(JOB_TYPES),
  /** why a job of this type would be refused now (NOT_ENABLED, UNSUPPORTED…), null when it would be accepted */
  refusal: Refusal,
});

const VolumeRow = z.object({
  volume: z.string(),
  /** null for a selected volume that has no successful backup yet */
  node: z.string().nullable(),
  lastBackup: z.object({ at: z.string(), jobId: z.number(), key: z.string().nullable(), size: z.number().nullable() }).nullable(),
  /** the newest drill of an archive of this volume (on this node), whatever its outcome; null when none */
  lastDrill: z.object({ at: z.string(), ok: z.boolean(), jobId: z.number(), key: z.string(), error: z.string().nullable() }).nullable(),
});

const ServiceView = z.object({
  id: z.string(),
  name: z.string(),
  image: z.string(),
  mode: z.string(),
  replicas: z.object({ desired: z.number().nullable(), running: z.number() }),
  labels: z.record(z.string(), z.string()),
  actions: z.array(Action),
  /** per volume and node; null when the token may neither back this service up nor restore it */
  volumes: z.array(VolumeRow).nullable(),
  /** why the volumes to back up could not be read from the labels, if so */
  volumeError: z.string().nullable(),
});

/** GET /services: what the web console (or a script) shows of the swarm for one token */
export const ServicesAnswer = z.object({
  services: z.array(ServiceView),
  /** nodes this token may clean */
  nodes: z.array(z.object({ id: z.string(), hostname: z.string(), role: z.string(), state: z.string(), availability: z.string() })),
  /** `all=true` jobs this token may start */
  all: z.array(Action),
});
export type ServicesAnswer = z.infer<typeof ServicesAnswer>;
type ServiceView = z.infer<typeof ServiceView>;
type Kinds = Record<string, JobKind & SubmitCheck>;

export function createServicesService(deps: Deps, auth: Authorizer, kinds: Kinds) {
  const { db, docker } = deps;

  async function refusalOf(type: JobType, target: { service?: ServiceInfo }): Promise<z.infer<typeof Refusal>> {
    try {
      await kinds[type]!.precheck?.(deps, target);
      return null;
    } catch (e) {
      if (isAppError(e)) return { code: e.code, message: e.message };
      throw e;
    }
  }

  async function view(caller: Caller, svc: ServiceInfo, tasks: TaskInfo[], backups: LastBackup[], drills: DrillOutcome[]): Promise<ServiceView> {
    const types = JOB_TYPES.filter((t) => kinds[t] && auth.canService(caller, t, svc));
    const running = tasks.filter((t) => t.state === 'running' && t.desiredState === 'running').length;
    const desired = svc.mode === 'replicated' ? svc.replicas : svc.mode === 'global' ? tasks.filter((t) => t.desiredState === 'running').length : null;
    const vols = auth.canArchives(caller, svc) ? volumesOf(svc, backups, drills) : null;
    return {
      id: svc.id,
      name: svc.name,
      image: svc.image,
      mode: svc.mode,
      replicas: { desired, running },
      labels: redactLabels(ownLabels(svc.labels)),
      actions: await Promise.all(types.map(async (type) => ({ type, refusal: await refusalOf(type, { service: svc }) }))),
      volumes: vols?.rows ?? null,
      volumeError: vols?.error ?? null,
    };
  }

  return {
    async list(caller: Caller): Promise<ServicesAnswer> {
      const [services, nodes] = await Promise.all([docker.listServices(), docker.listNodes()]);
      const visible = services
        .filter((s) => !(L.helper in s.labels) && JOB_TYPES.some((t) => auth.canService(caller, t, s)))
        .sort((a, b) => a.name.localeCompare(b.name));
      const cleanable = nodes.filter((n) => auth.canNode(caller, n)).sort((a, b) => a.hostname.localeCompare(b.hostname));
      if (!caller.admin && !visible.length && !cleanable.length) {
        throw new AppError('FORBIDDEN', 'this token grants nothing: no admin token and no service or node label names it');
      }
      const tasks = await mapLimited(visible, 8, (s) => docker.listTasks(s.id));
      const backups = lastBackups(db, visible.filter((s) => auth.canArchives(caller, s)).map((s) => s.name));
      const drills = drillOutcomes(db);
      const views = await Promise.all(
        visible.map((s, i) => view(caller, s, tasks[i]!, backups.filter((b) => b.service === s.name), drills.filter((d) => d.service === s.name || d.service === null))),
      );
      const all = await Promise.all(
        JOB_TYPES.filter((t) => kinds[t]?.allTargets && (caller.admin || mayUseAll(caller, t, visible, cleanable))).map(async (type) => ({
          type,
          refusal: await refusalOf(type, {}),
        })),
      );
      return { services: views, nodes: cleanable.map(nodeView), all };
    },
  };

  /** a label token's `all` job covers what its token grants: worth offering only when that is something */
  function mayUseAll(caller: Caller, type: JobType, services: ServiceInfo[], nodes: NodeInfo[]): boolean {
    return services.some((s) => auth.canService(caller, type, s)) || (type === 'clean' && nodes.length > 0);
  }
}
export type ServicesService = ReturnType<typeof createServicesService>;

const nodeView = (n: NodeInfo) => ({ id: n.id, hostname: n.hostname, role: n.role, state: n.state, availability: n.availability });

/** the selected volumes (when backups are enabled) and every volume with a past backup, one row per node, with its last drill */
function volumesOf(svc: ServiceInfo, backups: LastBackup[], drills: DrillOutcome[]): { rows: z.infer<typeof VolumeRow>[]; error: string | null } {
  let selected: string[] = [];
  let error: string | null = null;
  if (flag(svc.labels, L.backupEnable, false)) {
    try {
      selected = selectVolumes(svc.name, namedVolumes(svc.spec), svc.labels[L.backupVolumes], svc.labels[STACK_LABEL]);
    } catch (e) {
      if (!isAppError(e)) throw e;
      error = e.message;
    }
  }
  const names = [...new Set([...selected, ...backups.map((b) => b.volume)])].sort();
  const rows = names.flatMap((volume): z.infer<typeof VolumeRow>[] => {
    const done = backups.filter((b) => b.volume === volume);
    if (!done.length) return [{ volume, node: null, lastBackup: null, lastDrill: lastDrillOf(drills, volume, null) }];
    return done.map((b) => ({
      volume,
      node: b.node,
      lastBackup: { at: new Date(b.at).toISOString(), jobId: b.jobId, key: b.key, size: b.size },
      lastDrill: lastDrillOf(drills, volume, b.node),
    }));
  });
  return { rows, error };
}

/** the newest drill (drills come newest first) of an archive of this volume, on this node when one is named */
function lastDrillOf(drills: DrillOutcome[], volume: string, node: string | null): z.infer<typeof VolumeRow>['lastDrill'] {
  const d = drills.find((o) => o.volume === volume && (node === null || o.node === node));
  return d ? { at: new Date(d.at).toISOString(), ok: d.ok, jobId: d.jobId, key: d.key, error: d.error } : null;
}

/** like Promise.all over `items`, with at most `limit` calls in flight */
async function mapLimited<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}
