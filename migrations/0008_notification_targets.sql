-- Notifications per delivery target: SWARM_UTILS_NOTIFY_URL and each URL of SWARM_UTILS_NOTIFY_URLS is
-- its own target with its own attempts, backoff and delivery, so a failed one does not resend another.
-- target is 'notify-url' for SWARM_UTILS_NOTIFY_URL (rows from before this migration were for it) and
-- 'u' + a short SHA-256 hash of the URL for a SWARM_UTILS_NOTIFY_URLS entry: never the URL itself.
CREATE TABLE notifications_new (
  job_id       INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  event        TEXT    NOT NULL,
  target       TEXT    NOT NULL DEFAULT 'notify-url',
  created_at   INTEGER NOT NULL,
  attempts     INTEGER NOT NULL DEFAULT 0,
  next_at      INTEGER NOT NULL,
  delivered_at INTEGER,
  given_up_at  INTEGER,
  last_error   TEXT,
  PRIMARY KEY (job_id, event, target)
);
INSERT INTO notifications_new (job_id, event, target, created_at, attempts, next_at, delivered_at, given_up_at, last_error)
  SELECT job_id, event, 'notify-url', created_at, attempts, next_at, delivered_at, given_up_at, last_error FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_due ON notifications (next_at) WHERE delivered_at IS NULL AND given_up_at IS NULL;
