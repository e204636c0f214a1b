-- Notifications (README "Notifications"): one row per (job, event) to deliver to SWARM_UTILS_NOTIFY_URL.
-- Rows of finished jobs are derived from the jobs table after every job end, at start-up and every
-- few seconds, so a job that ended just before a kill -9 is still notified after the restart; the
-- primary key makes a second derivation a no-op, so each event is delivered once.
CREATE TABLE notifications (
  job_id       INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  -- the job's final state (failed, succeeded, canceled) or compensation_left_to_operator
  event        TEXT    NOT NULL,
  created_at   INTEGER NOT NULL,
  attempts     INTEGER NOT NULL DEFAULT 0,
  next_at      INTEGER NOT NULL,
  delivered_at INTEGER,
  -- retries stop 10 minutes after created_at
  given_up_at  INTEGER,
  last_error   TEXT,
  PRIMARY KEY (job_id, event)
);
CREATE INDEX notifications_due ON notifications (next_at) WHERE delivered_at IS NULL AND given_up_at IS NULL;

-- when the job's last notification was delivered (the job object's notifiedAt)
ALTER TABLE jobs ADD COLUMN notified_at INTEGER;
