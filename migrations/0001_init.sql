-- Jobs, their ordered steps, the locks (mutexes) running jobs hold, and cron slots.
CREATE TABLE jobs (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  type            TEXT    NOT NULL CHECK (type IN ('clean', 'backup', 'update', 'restore')),
  state           TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
  target_kind     TEXT    NOT NULL CHECK (target_kind IN ('service', 'node', 'all')),
  target          TEXT,
  params          TEXT    NOT NULL DEFAULT '{}',
  -- credentials a job needs while it runs (e.g. registryAuth of the request); cleared when it ends
  secrets         TEXT,
  source          TEXT    NOT NULL CHECK (source IN ('api', 'cron', 'parent')),
  parent_id       INTEGER REFERENCES jobs (id) ON DELETE CASCADE,
  depends_on      INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
  locks           TEXT    NOT NULL DEFAULT '[]',
  -- who asked: short hash for display, full sha-256 to match label tokens; never the token itself
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
  cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_state ON jobs (state, id);
CREATE INDEX jobs_parent ON jobs (parent_id);
CREATE INDEX jobs_target ON jobs (target_kind, target, id);
CREATE INDEX jobs_finished ON jobs (finished_at);

CREATE TABLE steps (
  job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  idx         INTEGER NOT NULL,
  name        TEXT    NOT NULL,
  state       TEXT    NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed', 'skipped')),
  always      INTEGER NOT NULL DEFAULT 0,
  started_at  INTEGER,
  finished_at INTEGER,
  detail      TEXT    NOT NULL DEFAULT '{}',
  output      TEXT,
  PRIMARY KEY (job_id, idx)
);

-- A row here is a held mutex; the primary key makes two holders impossible.
CREATE TABLE locks (
  name        TEXT    PRIMARY KEY,
  job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  acquired_at INTEGER NOT NULL
);
CREATE INDEX locks_job ON locks (job_id);

-- One row per cron firing, keyed by its scheduled time: a restart never repeats a slot.
CREATE TABLE cron_runs (
  slot          TEXT    PRIMARY KEY,
  created_at    INTEGER NOT NULL,
  clean_job_id  INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
  backup_job_id INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
  skipped       TEXT
);
