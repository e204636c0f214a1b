// Finished drill jobs as the drill job type records them (README "Restore drills"), for tests of what
// reads them (GET /backups, GET /services, the last-verified metric).
import type { Db } from '../../src/db/index.js';
import { finishJob, insertJob, markRunning, recordJobError, setJobResult, type JobType } from '../../src/db/jobs.js';

export interface DrillRow {
  service: string;
  state: 'succeeded' | 'failed';
  finishedAt: number;
  result?: unknown;
  params?: Record<string, unknown>;
  error?: { code: string; message: string };
}

/**
 * Inserts a finished drill job. The drill job type comes with its own migration, which widens the jobs
 * table's CHECK on `type`; on a schema without it the row is inserted with CHECK constraints ignored for
 * that one statement (the same row a drill job writes on a schema that has it).
 */
export function drillJob(db: Db, d: DrillRow): number {
  db.pragma('ignore_check_constraints = ON');
  let id: number;
  try {
    id = insertJob(db, { type: 'drill' as JobType, targetKind: 'service', target: d.service, params: d.params ?? {}, source: 'api', locks: [] }).id;
  } finally {
    db.pragma('ignore_check_constraints = OFF');
  }
  markRunning(db, id, 'boot', d.finishedAt - 1000);
  if (d.result !== undefined) setJobResult(db, id, d.result);
  if (d.error) recordJobError(db, id, d.error.code, d.error.message);
  finishJob(db, id, d.state, d.finishedAt);
  return id;
}
