-- foreign_keys: off
-- Job types restore, drill and migrate (README "Restore", "Restore drills", "Migration"). SQLite cannot
-- change a CHECK constraint in place: the jobs table is rebuilt (SQLite's documented 12-step procedure),
-- with foreign keys off so dropping the old table does not cascade into steps, locks, holds, notifications.
CREATE TABLE jobs_new (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  type            TEXT    NOT NULL CHECK (type IN ('clean', 'backup', 'update', 'restore', 'drill', 'migrate')),
  state           TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
  target_kind     TEXT    NOT NULL CHECK (target_kind IN ('service', 'node', 'all')),
  target          TEXT,
  params          TEXT    NOT NULL DEFAULT '{}',
  secrets         TEXT,
  source          TEXT    NOT NULL CHECK (source IN ('api', 'cron', 'parent')),
  parent_id       INTEGER REFERENCES jobs (id) ON DELETE CASCADE,
  depends_on      INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
  locks           TEXT    NOT NULL DEFAULT '[]',
  requester       TEXT,
  requester_hash  TEXT,
  requester_admin INTEGER NOT NULL DEFAULT 0,
  created_at      INTEGER NOT NULL,
  started_at      INTEGER,
  finished_at     INTEGER,
  error_code      TEXT,
  error_message   TEXT,
  result          TEXT,
  owner           TEXT,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  compensation    TEXT CHECK (compensation IN ('pending', 'done', 'operator')),
  target_label    TEXT,
  notified_at     INTEGER
);
INSERT INTO jobs_new (id, type, state, target_kind, target, params, secrets, source, parent_id, depends_on, locks, requester,
                      requester_hash, requester_admin, created_at, started_at, finished_at, error_code, error_message, result,
                      owner, cancel_requested, compensation, target_label, notified_at)
  SELECT id, type, state, target_kind, target, params, secrets, source, parent_id, depends_on, locks, requester,
         requester_hash, requester_admin, created_at, started_at, finished_at, error_code, error_message, result,
         owner, cancel_requested, compensation, target_label, notified_at
    FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
CREATE INDEX jobs_state ON jobs (state, id);
CREATE INDEX jobs_parent ON jobs (parent_id);
CREATE INDEX jobs_target ON jobs (target_kind, target, id);
CREATE INDEX jobs_finished ON jobs (finished_at);
CREATE INDEX jobs_compensation ON jobs (compensation) WHERE compensation IS NOT NULL;
CREATE INDEX jobs_target_label ON jobs (target_kind, target_label, id);
