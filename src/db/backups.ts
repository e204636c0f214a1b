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
