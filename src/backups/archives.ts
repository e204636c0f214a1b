/**
 * Archives as the bucket names them (README "Archive layout"): `<SWARM_UTILS_S3_PATH>/<node>_<volume>_<stamp>.tar.gz`,
 * plus `.gpg` or `.age` when offen encrypted it. Restore, drills and migration pick archives here; the
 * listing of GET /backups parses the same names, with the same parser (names.ts).
 */
import { AppError } from '../errors.js';
import type { ObjectInfo, ObjectStore } from '../s3.js';
import { objectKey, s3Prefix } from '../jobs/backup/plan.js';
import { type Encryption as Suffix, archiveDir, newestFirst, parseArchiveKey, parseOffenKey } from './names.js';

export type Encryption = Suffix | null;

export interface ArchiveRef {
  key: string;
  node: string;
  volume: string;
  /** `YYYY-MM-DDTHH-mm-ssZ` */
  stamp: string;
  /** the stamp in ms (UTC) */
  time: number;
  encrypted: Encryption;
  size: number;
  /** written by offen itself: no node nor volume in its name, its tree's directory is offen's mount name */
  format?: 'offen';
}

/** the encryption a key's suffix says offen applied */
export function encryptionOf(key: string): Encryption {
  return key.endsWith('.gpg') ? 'gpg' : key.endsWith('.age') ? 'age' : null;
}

/** an archive of `volume` on `node` when `key` is one of our names for it (names.ts parses), else null */
export function parseFor(path: string, key: string, node: string, volume: string, size = 0): ArchiveRef | null {
  const p = parseArchiveKey(key, path, [node]);
  if (!p || p.node !== node || p.volume !== volume) return null;
  return { key, node, volume, stamp: p.stamp, time: p.time, encrypted: p.encryption, size };
}

/** an archive of `volume` on any node when `key` is one of our names for it (the node is what precedes `_<volume>_`) */
export function parseForVolume(path: string, key: string, volume: string, size = 0): ArchiveRef | null {
  const name = key.slice(archiveDir(path).length);
  const at = name.lastIndexOf(`_${volume}_`);
  if (!key.startsWith(archiveDir(path)) || at <= 0) return null;
  return parseFor(path, key, name.slice(0, at), volume, size);
}

/** the archives of `volume` (on `node` when given) in the bucket, newest first */
export async function archivesOf(store: Pick<ObjectStore, 'list'>, path: string, volume: string, node?: string, signal?: AbortSignal): Promise<ArchiveRef[]> {
  // listing `<prefix>/<node>_<volume>_` when the node is known keeps the listing short
  const listPrefix = node ? objectKey(path, `${node}_${volume}_`) : s3Prefix(path) ? `${s3Prefix(path)}/` : '';
  const objects: ObjectInfo[] = await store.list(listPrefix, signal);
  const parsed = objects.map((o) => (node ? parseFor(path, o.key, node, volume, o.size) : parseForVolume(path, o.key, volume, o.size)));
  return parsed.filter((a): a is ArchiveRef => a !== null).sort(newestFirst);
}

/**
 * The archive to restore or drill when no key is given: the newest of `volume` on `node`; without a node
 * (or none there) the newest of the only node that has archives of it. NOT_FOUND says what was looked for.
 */
export async function newestArchive(
  store: Pick<ObjectStore, 'list'>,
  path: string,
  volume: string,
  nodes: { preferred?: string; strict?: boolean },
  signal?: AbortSignal,
): Promise<ArchiveRef> {
  if (nodes.preferred) {
    const [newest] = await archivesOf(store, path, volume, nodes.preferred, signal);
    if (newest) return newest;
    if (nodes.strict) throw new AppError('NOT_FOUND', `no archive of volume ${volume} from node ${nodes.preferred} in the bucket`);
  }
  const all = await archivesOf(store, path, volume, undefined, signal);
  const owners = [...new Set(all.map((a) => a.node))];
  if (!all.length) throw new AppError('NOT_FOUND', `no archive of volume ${volume} in the bucket`);
  if (owners.length > 1) {
    throw new AppError('VALIDATION', `archives of volume ${volume} come from several nodes (${owners.join(', ')}): give node or key`);
  }
  return all[0]!;
}

/**
 * The object offen uploaded for `key`: under that name, or with `.gpg` / `.age` appended when it encrypted
 * the archive. null when none of the three exists.
 */
export async function headArchive(store: Pick<ObjectStore, 'head'>, key: string, signal?: AbortSignal): Promise<ObjectInfo | null> {
  for (const name of [key, `${key}.gpg`, `${key}.age`]) {
    const head = await store.head(name, signal);
    if (head) return head;
  }
  return null;
}

/** `key` as an archive offen wrote itself (one of `patterns`), restored into `volume`; null when it is not one */
export function parseOffen(path: string, patterns: readonly string[], key: string, volume: string, size = 0, lastModified?: string | null): ArchiveRef | null {
  const p = parseOffenKey(key, path, patterns);
  if (!p) return null;
  const time = p.time ?? (lastModified ? Date.parse(lastModified) : 0);
  return { key, node: '', volume, stamp: '', time, encrypted: p.encryption, size, format: 'offen' };
}
