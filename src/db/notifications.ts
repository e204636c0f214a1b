import type { Db } from './index.js';
import type { JobState } from './jobs.js';

/** one event of one job to deliver (migrations/0005_notifications.sql) */
export interface NotificationRow {
  jobId: number;
  event: string;
  /** the delivery target (migrations/0008_notification_targets.sql): 'notify-url' or a hash of the URL */
  target: string;
  createdAt: number;
  attempts: number;
  nextAt: number;
}

interface RawNotification {
  job_id: number;
  event: string;
  target: string;
  created_at: number;
  attempts: number;
  next_at: number;
}

const fromRaw = (r: RawNotification): NotificationRow => ({
  jobId: r.job_id,
  event: r.event,
  target: r.target,
  createdAt: r.created_at,
  attempts: r.attempts,
  nextAt: r.next_at,
});

/** the targets as a SQL table expression (one column `target`), bound as parameters */
const targetsSql = (targets: readonly string[]): string => `(SELECT ? AS target${' UNION ALL SELECT ?'.repeat(targets.length - 1)})`;

/** records an event to deliver to each target; a second call for the same (job, event, target) changes nothing */
export function insertNotification(db: Db, jobId: number, event: string, targets: readonly string[], now = Date.now()): boolean {
  if (!targets.length) return false;
  return (
    db
      .prepare(
        `INSERT OR IGNORE INTO notifications (job_id, event, target, created_at, next_at) SELECT id, ?, t.target, ?, ? FROM jobs, ${targetsSql(targets)} t WHERE id = ?`,
      )
      .run(event, now, now, ...targets, jobId).changes > 0
  );
}

/**
 * One notification per top-level job that ended in one of `states` at or after `since` (its final state
 * is the event); children of an `all` job are reported through their parent. Returns how many were added.
 */
export function insertFinishedNotifications(db: Db, states: readonly JobState[], since: number, targets: readonly string[], now = Date.now()): number {
  if (!states.length || !targets.length) return 0;
  return db
    .prepare(
      `INSERT OR IGNORE INTO notifications (job_id, event, target, created_at, next_at)
       SELECT id, state, t.target, ?, ? FROM jobs, ${targetsSql(targets)} t
       WHERE parent_id IS NULL AND finished_at >= ? AND state IN (${states.map(() => '?').join(', ')})`,
    )
    .run(now, now, ...targets, since, ...states).changes;
}

/**
 * One `compensation_left_to_operator` per job (top-level or child) whose compensation the worker left to
 * an operator (jobs.compensation = 'operator', migrations/0003_holds.sql), for jobs ended at or after
 * `since`: sent whatever NOTIFY_ON says. Derived from the rows, so a kill -9 loses none.
 */
export function insertCompensationNotifications(db: Db, since: number, targets: readonly string[], now = Date.now()): number {
  if (!targets.length) return 0;
  return db
    .prepare(
      `INSERT OR IGNORE INTO notifications (job_id, event, target, created_at, next_at)
       SELECT id, 'compensation_left_to_operator', t.target, ?, ? FROM jobs, ${targetsSql(targets)} t WHERE compensation = 'operator' AND finished_at >= ?`,
    )
    .run(now, now, ...targets, since).changes;
}

/** undelivered notifications whose next attempt is due, oldest first */
export function dueNotifications(db: Db, now = Date.now(), limit = 20): NotificationRow[] {
  return (
    db
      .prepare(
        'SELECT * FROM notifications WHERE delivered_at IS NULL AND given_up_at IS NULL AND next_at <= ? ORDER BY next_at, job_id, target LIMIT ?',
      )
      .all(now, limit) as RawNotification[]
  ).map(fromRaw);
}

/** when the next undelivered notification is due (null: none pending) */
export function nextNotificationAt(db: Db): number | null {
  return db.prepare('SELECT MIN(next_at) FROM notifications WHERE delivered_at IS NULL AND given_up_at IS NULL').pluck().get() as
    | number
    | null;
}

/** delivered: the notification and the job (notifiedAt) in one transaction */
export function markNotificationDelivered(db: Db, jobId: number, event: string, target: string, now = Date.now()): void {
  db.transaction(() => {
    db.prepare(
      'UPDATE notifications SET delivered_at = ?, attempts = attempts + 1, last_error = NULL WHERE job_id = ? AND event = ? AND target = ?',
    ).run(now, jobId, event, target);
    db.prepare('UPDATE jobs SET notified_at = ? WHERE id = ?').run(now, jobId);
  })();
}

/** a failed attempt: retried at `nextAt`, or given up when `nextAt` is null */
export function markNotificationFailed(
  db: Db,
  jobId: number,
  event: string,
  target: string,
  error: string,
  nextAt: number | null,
  now = Date.now(),
): void {
  db.prepare(
    'UPDATE notifications SET attempts = attempts + 1, last_error = ?, next_at = COALESCE(?, next_at), given_up_at = CASE WHEN ? IS NULL THEN ? END WHERE job_id = ? AND event = ? AND target = ?',
  ).run(error, nextAt, nextAt, now, jobId, event, target);
}

/** a value of the meta table (migrations/0002_meta.sql), null when unset */
export function getMeta(db: Db, key: string): string | null {
  return (db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get(key) as string | undefined) ?? null;
}

export function setMeta(db: Db, key: string, value: string | null): void {
  if (value === null) db.prepare('DELETE FROM meta WHERE key = ?').run(key);
  else db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
}
