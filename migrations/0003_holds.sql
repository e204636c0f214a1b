-- What a job holds: services it scaled down (until its compensation gives them back) and nodes it
-- prunes. A node prune never runs on a node where a held service had tasks, and no job scales a
-- service down on a node being pruned (README "How jobs run").
CREATE TABLE service_holds (
  job_id       INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  service_id   TEXT    NOT NULL,
  service      TEXT    NOT NULL,
  -- node ids of the service's tasks when it was scaled down (JSON array)
  nodes        TEXT    NOT NULL DEFAULT '[]',
  -- the compensation step that gives the service back, and the replica count it gives back (if known)
  undo_step    TEXT    NOT NULL,
  replicas     INTEGER,
  -- spec version after swarm-utils' own last change of the service: another version means an operator acted
  spec_version INTEGER,
  state        TEXT    NOT NULL CHECK (state IN ('held', 'released', 'operator')),
  attempts     INTEGER NOT NULL DEFAULT 0,
  last_error   TEXT,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,
  PRIMARY KEY (job_id, service_id)
);
CREATE INDEX service_holds_state ON service_holds (state);

-- A node being pruned, until the pruning job ends.
CREATE TABLE node_prunes (
  node_id     TEXT    PRIMARY KEY,
  job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  acquired_at INTEGER NOT NULL
);
CREATE INDEX node_prunes_job ON node_prunes (job_id);

-- A finished job whose compensation could not finish: 'pending' (retried), then 'done' or 'operator'
-- (the service's spec changed meanwhile: left to the operator).
ALTER TABLE jobs ADD COLUMN compensation TEXT CHECK (compensation IN ('pending', 'done', 'operator'));
CREATE INDEX jobs_compensation ON jobs (compensation) WHERE compensation IS NOT NULL;
