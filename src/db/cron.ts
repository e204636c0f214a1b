import type { Db } from './index.js';

/** records a firing; false when this slot was already recorded (a restart, or a second instance) */
export function claimSlot(db: Db, slot: string, now = Date.now()): boolean {
  return db.prepare('INSERT OR IGNORE INTO cron_runs (slot, created_at) VALUES (?, ?)').run(slot, now).changes === 1;
}

export function setSlotJobs(db: Db, slot: string, cleanJobId: number | null, backupJobId: number | null): void {
  db.prepare('UPDATE cron_runs SET clean_job_id = ?, backup_job_id = ? WHERE slot = ?').run(cleanJobId, backupJobId, slot);
}

export function markSlotSkipped(db: Db, slot: string, reason: string): void {
  db.prepare('UPDATE cron_runs SET skipped = ? WHERE slot = ?').run(reason, slot);
}

export interface CronRun {
  slot: string;
  createdAt: number;
  cleanJobId: number | null;
  backupJobId: number | null;
  skipped: string | null;
}

export function cronRuns(db: Db, limit = 50): CronRun[] {
  return db
    .prepare(
      'SELECT slot, created_at AS createdAt, clean_job_id AS cleanJobId, backup_job_id AS backupJobId, skipped FROM cron_runs ORDER BY slot DESC LIMIT ?',
    )
    .all(limit) as CronRun[];
}

/**
 * Cron jobs not yet ended: a firing while one of them runs is skipped. `all`: the jobs of the common run
 * (params.common, src/scheduler.ts); otherwise the `type` jobs of one service's own schedule.
 */
export function unfinishedCronJobs(db: Db, of: { all: true } | { type: string; service: string }): number[] {
  if ('all' in of) {
    return db
      .prepare("SELECT id FROM jobs WHERE source = 'cron' AND state IN ('queued', 'running') AND json_extract(params, '$.common') = 1")
      .pluck()
      .all() as number[];
  }
  return db
    .prepare("SELECT id FROM jobs WHERE source = 'cron' AND state IN ('queued', 'running') AND type = ? AND target_kind = 'service' AND target = ?")
    .pluck()
    .all(of.type, of.service) as number[];
}

/** the jobs recorded for a slot, null when the slot was not fired */
export function slotJobs(db: Db, slot: string): { cleanJobId: number | null; backupJobId: number | null } | null {
  return (
    (db.prepare('SELECT clean_job_id AS cleanJobId, backup_job_id AS backupJobId FROM cron_runs WHERE slot = ?').get(slot) as
      | { cleanJobId: number | null; backupJobId: number | null }
      | undefined) ?? null
  );
}
