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
