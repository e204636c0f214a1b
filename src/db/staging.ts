import type { Db } from './index.js';

/** a staging volume on a node (migrations/0006_staging.sql) */
export interface StagingRow {
  jobId: number;
  nodeId: string;
  node: string;
  volume: string;
  createdAt: number;
  removedAt: number | null;
}

interface RawStaging {
  job_id: number;
  node_id: string;
  node: string;
  volume: string;
  created_at: number;
  removed_at: number | null;
}

const fromRaw = (r: RawStaging): StagingRow => ({
  jobId: r.job_id,
  nodeId: r.node_id,
  node: r.node,
  volume: r.volume,
  createdAt: r.created_at,
  removedAt: r.removed_at,
});

/** recorded before the volume may exist; recording it again (a re-entered step) changes nothing */
export function recordStaging(db: Db, s: { jobId: number; nodeId: string; node: string; volume: string }, now = Date.now()): void {
  db.prepare('INSERT OR IGNORE INTO staging_volumes (job_id, node_id, node, volume, created_at) VALUES (?, ?, ?, ?, ?)').run(
    s.jobId,
    s.nodeId,
    s.node,
    s.volume,
    now,
  );
}

export function markStagingRemoved(db: Db, jobId: number, volumes: string[], now = Date.now()): void {
  const stmt = db.prepare('UPDATE staging_volumes SET removed_at = ? WHERE job_id = ? AND volume = ? AND removed_at IS NULL');
  db.transaction(() => {
    for (const v of volumes) stmt.run(now, jobId, v);
  })();
}

/** a job's staging volumes not yet removed */
export function pendingStagingOf(db: Db, jobId: number): StagingRow[] {
  return (db.prepare('SELECT * FROM staging_volumes WHERE job_id = ? AND removed_at IS NULL ORDER BY volume').all(jobId) as RawStaging[]).map(fromRaw);
}

/** staging volumes not yet removed whose job is not running (it ended, or was deleted): the sweep removes them */
export function orphanStaging(db: Db): StagingRow[] {
  const rows = db
    .prepare(
      `SELECT s.* FROM staging_volumes s LEFT JOIN jobs j ON j.id = s.job_id
       WHERE s.removed_at IS NULL AND (j.id IS NULL OR j.state <> 'running') ORDER BY s.job_id, s.volume`,
    )
    .all() as RawStaging[];
  return rows.map(fromRaw);
}
