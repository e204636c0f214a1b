/**
 * What a restore or drill acts on, worked out from the service, the request and the bucket: the volume,
 * the node, the archive. The same function answers at submission (so a missing archive is a 404 before
 * any job exists) and in the job's resolve step.
 */
import { z } from 'zod';
import type { Config } from '../../config.js';
import { AppError } from '../../errors.js';
import type { Deps } from '../../engine/types.js';
import type { NodeInfo, ServiceInfo, TaskInfo } from '../../swarm/port.js';
import { type ArchiveRef, newestArchive, parseForVolume } from '../../backups/archives.js';
import { createObjectStore } from '../../s3.js';
import { L } from '../labels.js';
import { STACK_LABEL, namedVolumes, s3Refusal, selectVolumes } from './backup-phases.js';
import { decryptRefusal } from './fetch.js';

/** the request's parameters of restore and drill jobs (POST /jobs bodies, README "HTTP API") */
export const RestoreParams = z.object({
  volume: z.string().optional(),
  node: z.string().optional(),
  key: z.string().optional(),
  safetyBackup: z.boolean().optional(),
});
export type RestoreParams = z.infer<typeof RestoreParams>;

export const ArchiveTarget = z.object({
  nodeId: z.string(),
  node: z.string(),
  volume: z.string(),
  key: z.string(),
  size: z.number(),
});
export type ArchiveTarget = z.infer<typeof ArchiveTarget>;

/** the volumes a service backs up (the label's selection, or every local named volume) */
export function volumesOf(svc: ServiceInfo): string[] {
  return selectVolumes(svc.name, namedVolumes(svc.spec), svc.labels[L.backupVolumes], svc.labels[STACK_LABEL]);
}

/** `volume` as given (full name or without the stack prefix) among the service's volumes; required when it has several */
export function pickVolume(svc: ServiceInfo, volumes: string[], given: string | undefined): string {
  if (given === undefined) {
    if (volumes.length === 1) return volumes[0]!;
    throw new AppError('VALIDATION', `service ${svc.name} backs up ${volumes.length} volumes (${volumes.join(', ')}): give volume`, [
      { field: 'volume', message: `one of ${volumes.join(', ')}` },
    ]);
  }
  const stack = svc.labels[STACK_LABEL];
  const found = volumes.find((v) => v === given) ?? volumes.find((v) => stack && v === `${stack}_${given}`);
  if (found) return found;
  throw new AppError('VALIDATION', `service ${svc.name} backs up no volume ${given} (it backs up: ${volumes.join(', ')})`, [
    { field: 'volume', message: `one of ${volumes.join(', ')}` },
  ]);
}

const isRunning = (t: TaskInfo): boolean => t.state === 'running' && t.desiredState === 'running' && !!t.nodeId;

/**
 * The node whose volume a restore replaces: the one given (by id or hostname), which must run (or have run
 * last) a task of the service; without one, the node of its tasks when that is one node.
 */
export function pickNode(svc: ServiceInfo, tasks: TaskInfo[], nodes: NodeInfo[], given: string | undefined): NodeInfo {
  const running = [...new Set(tasks.filter(isRunning).map((t) => t.nodeId!))];
  const latest = [...tasks].filter((t) => t.nodeId).sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))[0];
  const candidates = running.length ? running : latest ? [latest.nodeId!] : [];
  const byId = (id: string) => nodes.find((n) => n.id === id);
  if (given !== undefined) {
    const node = nodes.find((n) => n.id === given) ?? nodes.find((n) => n.hostname === given);
    if (node && candidates.includes(node.id)) return node;
    const where = candidates.map((id) => byId(id)?.hostname ?? id).join(', ') || 'no node';
    throw new AppError('VALIDATION', `service ${svc.name} has its volumes on ${where}, not on node ${given}`, [{ field: 'node', message: `one of ${where}` }]);
  }
  if (candidates.length === 1) {
    const node = byId(candidates[0]!);
    if (node) return node;
  }
  if (!candidates.length) throw new AppError('NOT_FOUND', `service ${svc.name} has no task, running or past: no node is known to hold its volumes`);
  const where = candidates.map((id) => byId(id)?.hostname ?? id).join(', ');
  throw new AppError('VALIDATION', `service ${svc.name} runs on several nodes (${where}), each with its own volume: give node`, [
    { field: 'node', message: `one of ${where}` },
  ]);
}

/** the archive given by key (one of our names for that volume, present in the bucket), or the newest of the volume from `node` */
export async function pickArchive(config: Pick<Config, 's3' | 'backupEnv'>, volume: string, node: string, key: string | undefined, signal?: AbortSignal): Promise<ArchiveRef> {
  const store = createObjectStore(config.s3);
  try {
    let archive: ArchiveRef;
    if (key !== undefined) {
      const parsed = parseForVolume(config.s3.path, key, volume);
      if (!parsed) {
        throw new AppError('VALIDATION', `key ${key} is not an archive of volume ${volume} under the configured path`, [
          { field: 'key', message: `must be <path>/<node>_${volume}_<YYYY-MM-DDTHH-mm-ssZ>.tar.gz[.gpg|.age]` },
        ]);
      }
      const head = await store.head(key, signal);
      if (!head) throw new AppError('NOT_FOUND', `no object ${key} in bucket ${config.s3.bucket}`);
      archive = { ...parsed, size: head.size };
    } else {
      archive = await newestArchive(store, config.s3.path, volume, { preferred: node }, signal);
    }
    const refused = decryptRefusal(config, archive.key);
    if (refused) throw refused;
    return archive;
  } finally {
    store.close();
  }
}

/** restore: needs S3 and a replicated service (it is scaled to 0 during the swap) */
export function restoreRefusal(svc: ServiceInfo, config: Pick<Config, 's3'>): AppError | null {
  const s3 = s3Refusal(config);
  if (s3) return s3;
  if (svc.mode !== 'replicated') return new AppError('UNSUPPORTED', `${svc.name} is a ${svc.mode} service: a restore scales it to 0, which only a replicated service can be`);
  return null;
}

export interface RestorePlan {
  volume: string;
  node: NodeInfo;
  archive: ArchiveRef;
}

export async function planRestore(deps: Pick<Deps, 'docker' | 'config'>, svc: ServiceInfo, params: RestoreParams, signal?: AbortSignal): Promise<RestorePlan> {
  const refused = restoreRefusal(svc, deps.config);
  if (refused) throw refused;
  const volume = pickVolume(svc, volumesOf(svc), params.volume);
  const [tasks, nodes] = await Promise.all([deps.docker.listTasks(svc.id), deps.docker.listNodes()]);
  const node = pickNode(svc, tasks, nodes, params.node);
  const archive = await pickArchive(deps.config, volume, node.hostname, params.key, signal);
  return { volume, node, archive };
}
