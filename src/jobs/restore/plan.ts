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
import { type ArchiveRef, newestArchive, parseForVolume, parseOffen } from '../../backups/archives.js';
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
  /** the directory of the archive's tree (`backup/<archiveVolume>/`) when it is not `volume` (a new volume) */
  archiveVolume: z.string().optional(),
  /** an archive offen wrote: its one directory under backup/ is taken whatever its name */
  offen: z.boolean().optional(),
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
export function pickNode(svc: ServiceInfo, tasks: TaskInfo[], nodes: NodeInfo[], given: string | undefined, opts: { anyNode?: boolean } = {}): NodeInfo {
  const running = [...new Set(tasks.filter(isRunning).map((t) => t.nodeId!))];
  const latest = [...tasks].filter((t) => t.nodeId).sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))[0];
  const candidates = running.length ? running : latest ? [latest.nodeId!] : [];
  const byId = (id: string) => nodes.find((n) => n.id === id);
  if (given !== undefined) {
    const node = nodes.find((n) => n.id === given) ?? nodes.find((n) => n.hostname === given);
    if (node && candidates.includes(node.id)) return node;
    // the volume's node is gone (or the service runs nowhere): any node that can run a helper takes the archive
    if (node && (opts.anyNode || !running.length)) {
      if (node.state === 'ready' && node.availability === 'active') return node;
      throw new AppError('VALIDATION', `node ${given} is ${node.state}/${node.availability}: a restore needs a ready, active node`, [{ field: 'node', message: 'not ready' }]);
    }
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
export async function pickArchive(config: Pick<Config, 's3' | 'backupEnv' | 'offenFilenames'>, volume: string, node: string, key: string | undefined, signal?: AbortSignal): Promise<ArchiveRef> {
  const store = createObjectStore(config.s3);
  try {
    let archive: ArchiveRef;
    if (key !== undefined) {
      const parsed = parseForVolume(config.s3.path, key, volume) ?? parseOffen(config.s3.path, config.offenFilenames, key, volume);
      if (!parsed) {
        throw new AppError('VALIDATION', `key ${key} is not an archive of volume ${volume} under the configured path`, [
          { field: 'key', message: `must be <path>/<node>_${volume}_<YYYY-MM-DDTHH-mm-ssZ>.tar.gz[.gpg|.age], or an archive of offen's (SWARM_UTILS_OFFEN_FILENAMES)` },
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
  /** the volume restored into */
  volume: string;
  /** the service's volume the archive is of (its tree `backup/<archiveVolume>/`) */
  archiveVolume: string;
  /** `volume` is not one of the service's volumes: a new one, made on `node` */
  newVolume: boolean;
  node: NodeInfo;
  archive: ArchiveRef;
}

/** what Docker accepts as a volume name */
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export async function planRestore(deps: Pick<Deps, 'docker' | 'config'>, svc: ServiceInfo, params: RestoreParams, signal?: AbortSignal): Promise<RestorePlan> {
  const refused = restoreRefusal(svc, deps.config);
  if (refused) throw refused;
  const own = volumesOf(svc);
  const offen = params.key !== undefined && isOffenKey(deps.config, params.key);
  const newVolume = params.volume !== undefined && params.key !== undefined && params.node !== undefined && !isOwnVolume(svc, own, params.volume);
  if (newVolume && !VOLUME_NAME.test(params.volume!)) {
    throw new AppError('VALIDATION', `volume ${params.volume} is not a Docker volume name`, [{ field: 'volume', message: 'letters, digits, "_", "." and "-"' }]);
  }
  const volume = newVolume ? params.volume! : pickVolume(svc, own, params.volume);
  // offen's archive names no volume: its tree is restored into the volume given
  const archiveVolume = newVolume && !offen ? volumeOfKey(svc, own, params.key!) : volume;
  const [tasks, nodes] = await Promise.all([deps.docker.listTasks(svc.id), deps.docker.listNodes()]);
  const node = pickNode(svc, tasks, nodes, params.node, { anyNode: newVolume });
  const archive = await pickArchive(deps.config, archiveVolume, node.hostname, params.key, signal);
  return { volume, archiveVolume, newVolume, node, archive };
}

/** an archive offen wrote itself, by its name */
export const isOffenKey = (config: Pick<Config, 's3' | 'offenFilenames'>, key: string): boolean => parseOffen(config.s3.path, config.offenFilenames, key, '') !== null;

function isOwnVolume(svc: ServiceInfo, own: string[], given: string): boolean {
  const stack = svc.labels[STACK_LABEL];
  return own.includes(given) || (!!stack && own.includes(`${stack}_${given}`));
}

/** the service's volume an archive's key names (`…_<volume>_<stamp>…`) */
export function volumeOfKey(svc: ServiceInfo, own: string[], key: string): string {
  const base = key.split('/').at(-1) ?? key;
  const match = own.filter((v) => base.includes(`_${v}_`));
  if (match.length === 1) return match[0]!;
  throw new AppError('VALIDATION', `key ${key} is not an archive of a volume service ${svc.name} backs up (${own.join(', ')})`, [
    { field: 'key', message: 'not an archive of this service' },
  ]);
}
