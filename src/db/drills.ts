import type { Db } from './index.js';

/** a finished drill job as the drill readers need it (src/backups/drills.ts) */
export interface DrillJobRow {
  id: number;
  targetKind: string;
  target: string | null;
  state: string;
  params: string;
  result: string | null;
  finishedAt: number;
  errorCode: string | null;
  errorMessage: string | null;
}

/**
 * Finished drill jobs, newest first. Reads by type only, so it runs on any schema (a database without
 * drill jobs answers nothing).
 */
export function finishedDrillJobs(db: Db): DrillJobRow[] {
  return db
    .prepare(
      `SELECT id, target_kind AS targetKind, target, state, params, result, finished_at AS finishedAt,
              error_code AS errorCode, error_message AS errorMessage
         FROM jobs
        WHERE type = 'drill' AND finished_at IS NOT NULL AND state IN ('succeeded', 'failed')
        ORDER BY finished_at DESC, id DESC`,
    )
    .all() as DrillJobRow[];
}
