import type { Db } from './index.js';

/** the archive of the newest succeeded backup of one service's volume on one node */
export interface LastBackup {
  service: string;
  volume: string;
  node: string;
  jobId: number;
  /** when the job finished (ms) */
  at: number;
  key: string | null;
  size: number | null;
}

/**
 * Per service, volume and node: the newest succeeded backup job, read from the archives its result
 * lists (children of `all` backups are service jobs too). SQLite takes the bare columns of a
 * MAX() aggregate from the row that holds the maximum.
 */
export function lastBackups(db: Db, services: string[]): LastBackup[] {
  if (!services.length) return [];
  return db
    .prepare(
      `SELECT j.target AS service, json_extract(a.value, '$.volume') AS volume, json_extract(a.value, '$.node') AS node,
              j.id AS jobId, MAX(j.finished_at) AS at, json_extract(a.value, '$.key') AS key, json_extract(a.value, '$.size') AS size
         FROM jobs j, json_each(j.result, '$.archives') a
        WHERE j.type = 'backup' AND j.state = 'succeeded' AND j.target_kind = 'service' AND j.result IS NOT NULL
          AND j.target IN (SELECT value FROM json_each(?))
        GROUP BY j.target, volume, node
        ORDER BY j.target, volume, node`,
    )
    .all(JSON.stringify(services)) as LastBackup[];
}

/** the file count and bytes a succeeded backup recorded for an archive when it was staged (null when none did) */
export function recordedCounts(db: Db, key: string): { files: number; bytes: number } | null {
  const row = db
    .prepare(
      `SELECT json_extract(a.value, '$.files') AS files, json_extract(a.value, '$.bytes') AS bytes
         FROM jobs j, json_each(j.result, '$.archives') a
        WHERE j.type = 'backup' AND j.state = 'succeeded' AND j.result IS NOT NULL
          AND json_extract(a.value, '$.key') = ? AND json_extract(a.value, '$.files') IS NOT NULL
        ORDER BY j.id DESC LIMIT 1`,
    )
    .get(key) as { files: number; bytes: number } | undefined;
  return row ? { files: Number(row.files), bytes: Number(row.bytes) } : null;
}

/** the archives `{node, volume, key, size, files?, bytes?}` a succeeded backup of `service` under the `all` job `parentId` made */
export function archivesOfChild(db: Db, parentId: number, service: string): { node: string; volume: string; key: string; size?: number; files?: number; bytes?: number }[] {
  const raw = db
    .prepare("SELECT result FROM jobs WHERE (parent_id = ? OR id = ?) AND type = 'backup' AND target_kind = 'service' AND target = ? AND state = 'succeeded' ORDER BY id DESC LIMIT 1")
    .pluck()
    .get(parentId, parentId, service) as string | null | undefined;
  const archives = raw ? (JSON.parse(raw) as { archives?: unknown }).archives : undefined;
  return Array.isArray(archives) ? (archives as ReturnType<typeof archivesOfChild>) : [];
}

/** services whose backup under the `all` job `parentId` succeeded (or the service of backup job `parentId`, when it did) */
export function succeededChildServices(db: Db, parentId: number): string[] {
  return db
    .prepare("SELECT DISTINCT target FROM jobs WHERE (parent_id = ? OR id = ?) AND type = 'backup' AND target_kind = 'service' AND state = 'succeeded' ORDER BY target")
    .pluck()
    .all(parentId, parentId) as string[];
}

/** the file count and bytes a job recorded for an archive (staged backups record them) */
export interface ArchiveCounts {
  key: string;
  files: number;
  bytes: number;
  jobId: number;
}

/**
 * The counts recorded for these keys in any job's `result.archives` (a backup's, or a restore's safety
 * backup), the newest job's first. Keys are matched exactly; callers pass both spellings of an encrypted one.
 */
export function archiveCounts(db: Db, keys: string[]): ArchiveCounts[] {
  if (!keys.length) return [];
  return db
    .prepare(
      `SELECT json_extract(a.value, '$.key') AS key, json_extract(a.value, '$.files') AS files,
              json_extract(a.value, '$.bytes') AS bytes, j.id AS jobId
         FROM jobs j, json_each(j.result, '$.archives') a
        WHERE j.result IS NOT NULL AND a.type = 'object'
          AND json_extract(a.value, '$.key') IN (SELECT value FROM json_each(?))
          AND json_type(a.value, '$.files') = 'integer' AND json_type(a.value, '$.bytes') = 'integer'
        ORDER BY j.id DESC`,
    )
    .all(JSON.stringify(keys)) as ArchiveCounts[];
}
