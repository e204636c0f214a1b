import type { Db } from './index.js';

/** holders of any of `names` other than `jobId` */
export function lockHolders(db: Db, names: string[], jobId: number): { name: string; jobId: number }[] {
  if (!names.length) return [];
  return db
    .prepare(`SELECT name, job_id AS jobId FROM locks WHERE name IN (${names.map(() => '?').join(',')}) AND job_id != ?`)
    .all(...names, jobId) as { name: string; jobId: number }[];
}

export function takeLocks(db: Db, names: string[], jobId: number, now = Date.now()): void {
  const stmt = db.prepare('INSERT OR IGNORE INTO locks (name, job_id, acquired_at) VALUES (?, ?, ?)');
  for (const n of names) stmt.run(n, jobId, now);
}

export function locksOf(db: Db, jobId: number): string[] {
  return db.prepare('SELECT name FROM locks WHERE job_id = ? ORDER BY name').pluck().all(jobId) as string[];
}
