/**
 * The names swarm-utils gives its archives (README "Backups"), read back: the bucket is the source of
 * truth for what exists, and an object whose name is not one of ours is never listed nor deleted.
 *
 *   <SWARM_UTILS_S3_PATH>/<node>_<volume>_<YYYY-MM-DDTHH-mm-ssZ>.tar.gz[.gpg|.age]
 *
 * Pure functions only: unit-tested as they are.
 */
import { s3Prefix } from '../jobs/backup/plan.js';

export type Encryption = 'gpg' | 'age';

export interface ArchiveName {
  /** the node's hostname, as the backup wrote it */
  node: string;
  volume: string;
  /** `YYYY-MM-DDTHH-mm-ssZ` */
  stamp: string;
  /** the stamp in ms (UTC) */
  time: number;
  encryption: Encryption | null;
}

export interface ParsedArchive extends ArchiveName {
  /** the object key */
  key: string;
}

const NAME = /^(.+)_(\d{4})-(\d{2})-(\d{2})T(\d{2})-(\d{2})-(\d{2})Z\.tar\.gz(?:\.(gpg|age))?$/;
/** what Docker accepts as a volume name, and what a node hostname is made of */
const PART = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const SUFFIX = /\.(gpg|age)$/;

/** the UTC time of a stamp's fields, null for a date that does not exist (2026-02-30) */
function utc(fields: string[]): number | null {
  const [y, mo, d, h, mi, s] = fields.map(Number) as [number, number, number, number, number, number];
  const t = Date.UTC(y, mo - 1, d, h, mi, s);
  const back = new Date(t);
  const same =
    back.getUTCFullYear() === y && back.getUTCMonth() === mo - 1 && back.getUTCDate() === d && back.getUTCHours() === h && back.getUTCMinutes() === mi;
  return same && back.getUTCSeconds() === s ? t : null;
}

/**
 * `<node>_<volume>` → its two parts. Volumes often hold `_` (`<stack>_<volume>`); hostnames do not (RFC 1123),
 * so the first `_` ends the node, unless a known node's hostname (which may hold one) matches longer.
 */
function splitHead(head: string, knownNodes: readonly string[]): { node: string; volume: string } | null {
  const known = [...knownNodes].sort((a, b) => b.length - a.length).find((n) => head.startsWith(`${n}_`) && head.length > n.length + 1);
  const cut = known ? known.length : head.indexOf('_');
  if (cut <= 0) return null;
  const node = head.slice(0, cut);
  const volume = head.slice(cut + 1);
  return PART.test(node) && PART.test(volume) ? { node, volume } : null;
}

/** an archive's file name (no `/`), or null when it is not one of ours */
export function parseArchiveName(filename: string, knownNodes: readonly string[] = []): ArchiveName | null {
  const m = NAME.exec(filename);
  if (!m) return null;
  const time = utc(m.slice(2, 8));
  if (time === null) return null;
  const parts = splitHead(m[1]!, knownNodes);
  if (!parts) return null;
  const stamp = `${m[2]}-${m[3]}-${m[4]}T${m[5]}-${m[6]}-${m[7]}Z`;
  return { ...parts, stamp, time, encryption: (m[8] as Encryption | undefined) ?? null };
}

/** the directory of the archives in the bucket: `<SWARM_UTILS_S3_PATH>/`, or '' at the bucket's root */
export const archiveDir = (path: string): string => {
  const prefix = s3Prefix(path);
  return prefix ? `${prefix}/` : '';
};

/** an object key directly under the archives' directory (not deeper), parsed; null when it is not one of ours */
export function parseArchiveKey(key: string, path: string, knownNodes: readonly string[] = []): ParsedArchive | null {
  const dir = archiveDir(path);
  if (!key.startsWith(dir)) return null;
  const filename = key.slice(dir.length);
  if (filename.includes('/')) return null;
  const parsed = parseArchiveName(filename, knownNodes);
  return parsed ? { key, ...parsed } : null;
}

/** the key without offen's encryption suffix: what the backup planned, whatever offen appended */
export const plainKey = (key: string): string => key.replace(SUFFIX, '');

/** newest first; archives of the same second by key, so the order is total (the listing's cursor relies on it) */
export function newestFirst(a: Pick<ParsedArchive, 'time' | 'key'>, b: Pick<ParsedArchive, 'time' | 'key'>): number {
  if (a.time !== b.time) return b.time - a.time;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/**
 * The archives of one node and volume that retention deletes: older than `cutoff` (ms), never the newest
 * of that node and volume (nor any of the same second), never one of `keep` (compared without the
 * encryption suffix), and only names that parse as ours for exactly that node and volume.
 */
export function expiredArchives(
  archives: readonly ParsedArchive[],
  pair: { node: string; volume: string },
  cutoff: number,
  keep: ReadonlySet<string> = new Set(),
): ParsedArchive[] {
  const same = archives.filter((a) => a.node === pair.node && a.volume === pair.volume);
  if (same.length === 0) return [];
  const newest = Math.max(...same.map((a) => a.time));
  return same
    .filter((a) => a.time < cutoff && a.time !== newest && !keep.has(plainKey(a.key)))
    .sort(newestFirst);
}

// ---------------------------------------------------------------------------------------------
// Archives offen/docker-volume-backup wrote itself (README "Coming from offen")

/** offen's default BACKUP_FILENAME: `{{ .Extension }}` is tar, tar.gz or tar.zst after BACKUP_COMPRESSION */
export const OFFEN_DEFAULT_FILENAME = 'backup-%Y-%m-%dT%H-%M-%S.{{ .Extension }}';

export interface OffenName {
  /** from the strftime fields of the name (UTC: offen's TZ defaults to it), null when the pattern has no date */
  time: number | null;
  encryption: Encryption | null;
}

const TIME_FIELDS: Record<string, { re: string; field?: 'y' | 'mo' | 'd' | 'h' | 'mi' | 's' }> = {
  Y: { re: '(\\d{4})', field: 'y' },
  m: { re: '(\\d{2})', field: 'mo' },
  d: { re: '(\\d{2})', field: 'd' },
  H: { re: '(\\d{2})', field: 'h' },
  M: { re: '(\\d{2})', field: 'mi' },
  S: { re: '(\\d{2})', field: 's' },
  y: { re: '\\d{2}' },
  e: { re: '[ \\d]\\d' },
  j: { re: '\\d{3}' },
  I: { re: '\\d{2}' },
  p: { re: '(?:AM|PM)' },
  a: { re: '[A-Za-z]+' },
  A: { re: '[A-Za-z]+' },
  b: { re: '[A-Za-z]+' },
  B: { re: '[A-Za-z]+' },
  h: { re: '[A-Za-z]+' },
  s: { re: '\\d+' },
  '%': { re: '%' },
};

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** a BACKUP_FILENAME pattern (strftime and `{{ .Extension }}`) as a regular expression, with the groups of its date */
export function offenPattern(pattern: string): { re: RegExp; fields: string[] } {
  const fields: string[] = [];
  let out = '';
  const ext = /^\{\{\s*\.Extension\s*\}\}/;
  for (let i = 0; i < pattern.length; ) {
    const rest = pattern.slice(i);
    const e = ext.exec(rest);
    if (e) {
      out += '(?:tar|tar\\.gz|tar\\.zst)';
      i += e[0].length;
      continue;
    }
    if (pattern[i] === '%' && i + 1 < pattern.length) {
      const f = TIME_FIELDS[pattern[i + 1]!];
      out += f ? f.re : '.+?';
      if (f?.field) fields.push(f.field);
      i += 2;
      continue;
    }
    out += escape(pattern[i]!);
    i++;
  }
  return { re: new RegExp(`^${out}(?:\\.(gpg|age))?$`), fields };
}

/** an object key directly under the archives' directory that one of offen's patterns names, else null */
export function parseOffenKey(key: string, path: string, patterns: readonly string[]): OffenName | null {
  const dir = archiveDir(path);
  if (!key.startsWith(dir)) return null;
  const filename = key.slice(dir.length);
  if (filename.includes('/') || !/\.tar(?:\.gz|\.zst)?(?:\.(?:gpg|age))?$/.test(filename)) return null;
  for (const p of patterns) {
    const { re, fields } = offenPattern(p);
    const m = re.exec(filename);
    if (!m) continue;
    const got: Record<string, string> = {};
    fields.forEach((f, i) => (got[f] = m[i + 1]!));
    const encryption = (m[fields.length + 1] as Encryption | undefined) ?? null;
    const time = got.y && got.mo && got.d ? utc([got.y, got.mo, got.d, got.h ?? '00', got.mi ?? '00', got.s ?? '00']) : null;
    return { time, encryption };
  }
  return null;
}
