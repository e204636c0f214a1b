/**
 * What the drill jobs proved, read from their results (README "Restore drills"): the last drill of each
 * archive (for GET /backups and the console) and the last successful one of each service, volume and
 * node (for `swarm_utils_backup_last_verified_timestamp_seconds`).
 *
 * A drill job records one entry per archive: its result is that entry `{key, files, bytes, expected?, ok}`,
 * or lists entries under `drills` (several archives, `drill all`); each entry may also carry `service`,
 * `node`, `volume` and `error`. An entry with `ok: true` is a successful drill of its `key`, at the job's
 * end. A failed drill job that recorded no entry counts against the archive its parameters named (`key`).
 */
import type { Db } from '../db/index.js';
import { type DrillJobRow, finishedDrillJobs } from '../db/drills.js';
import { parseArchiveName, plainKey } from './names.js';

export interface DrillOutcome {
  jobId: number;
  /** when the drill job ended (ms) */
  at: number;
  key: string;
  ok: boolean;
  service: string | null;
  node: string | null;
  volume: string | null;
  files: number | null;
  bytes: number | null;
  /** what was wrong, for a failed drill */
  error: string | null;
}

type Raw = Record<string, unknown>;

const isObject = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function parseJson(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

function errorText(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (isObject(v)) return [str(v.code), str(v.message)].filter(Boolean).join(': ') || null;
  return null;
}

/** the entries of one result: the result itself when it is an entry, else its `drills` (or `archives`) list */
function entriesOf(result: unknown): Raw[] {
  if (!isObject(result)) return [];
  if (typeof result.key === 'string' && typeof result.ok === 'boolean') return [result];
  const list = Array.isArray(result.drills) ? result.drills : Array.isArray(result.archives) ? result.archives : [];
  return list.filter((e): e is Raw => isObject(e) && typeof e.key === 'string' && typeof e.ok === 'boolean');
}

/** the node and volume an entry names, else those its key's name says */
function whereOf(e: Raw, key: string): { node: string | null; volume: string | null } {
  const node = str(e.node);
  const volume = str(e.volume);
  if (node && volume) return { node, volume };
  const name = parseArchiveName(plainKey(key).split('/').pop() ?? '');
  return { node: node ?? name?.node ?? null, volume: volume ?? name?.volume ?? null };
}

/** the outcomes one finished drill job recorded */
export function outcomesOf(job: DrillJobRow): DrillOutcome[] {
  const service = job.targetKind === 'service' ? job.target : null;
  const entries = entriesOf(parseJson(job.result));
  const outcomes = entries.map((e): DrillOutcome => {
    const key = e.key as string;
    return {
      jobId: job.id,
      at: job.finishedAt,
      key,
      ok: e.ok as boolean,
      service: str(e.service) ?? service,
      ...whereOf(e, key),
      files: num(e.files),
      bytes: num(e.bytes),
      error: e.ok ? null : errorText(e.error),
    };
  });
  if (outcomes.length || job.state !== 'failed') return outcomes;
  const params = parseJson(job.params);
  const key = isObject(params) ? str(params.key) : null;
  if (!key) return [];
  const error = job.errorCode ? `${job.errorCode}: ${job.errorMessage ?? ''}`.trim() : null;
  return [{ jobId: job.id, at: job.finishedAt, key, ok: false, service, ...whereOf({}, key), files: null, bytes: null, error }];
}

/** every recorded drill outcome, newest first */
export function drillOutcomes(db: Db): DrillOutcome[] {
  return finishedDrillJobs(db).flatMap(outcomesOf);
}

export interface ArchiveDrills {
  /** the newest drill of the archive, whatever its outcome */
  last: DrillOutcome | null;
  /** when it was last drilled successfully (ms) */
  verifiedAt: number | null;
}

/**
 * Per archive key (compared without the encryption suffix, so a drill recorded under either spelling
 * counts): its last drill and its last successful one.
 */
export function drillsByKey(outcomes: readonly DrillOutcome[]): (key: string) => ArchiveDrills {
  const last = new Map<string, DrillOutcome>();
  const verified = new Map<string, number>();
  // newest first: the first seen is the newest
  for (const o of outcomes) {
    const k = plainKey(o.key);
    if (!last.has(k)) last.set(k, o);
    if (o.ok && !verified.has(k)) verified.set(k, o.at);
  }
  return (key) => ({ last: last.get(plainKey(key)) ?? null, verifiedAt: verified.get(plainKey(key)) ?? null });
}

/** per service, volume and node: the end of the newest successful drill (ms); outcomes that do not name all three are left out */
export function lastVerified(outcomes: readonly DrillOutcome[]): { service: string; volume: string; node: string; at: number }[] {
  const out = new Map<string, { service: string; volume: string; node: string; at: number }>();
  for (const o of outcomes) {
    if (!o.ok || !o.service || !o.volume || !o.node) continue;
    const k = `${o.service}\0${o.volume}\0${o.node}`;
    const seen = out.get(k);
    if (!seen || seen.at < o.at) out.set(k, { service: o.service, volume: o.volume, node: o.node, at: o.at });
  }
  return [...out.values()];
}
