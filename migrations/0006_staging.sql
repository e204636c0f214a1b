-- Staging volumes (README "Backups: staging"): a copy of a volume on its node, made while its service is
-- stopped and archived after the service started again. A row is written before the helper that creates
-- the volume runs and is marked removed once the volume is gone: rows still pending when their job is no
-- longer running (a crash, a node that was down) are removed by the sweep at start-up and every hour.
-- No foreign key: a row outlives the deletion of its job past retention until its volume is gone.
CREATE TABLE staging_volumes (
  job_id     INTEGER NOT NULL,
  node_id    TEXT    NOT NULL,
  node       TEXT    NOT NULL,
  volume     TEXT    NOT NULL,
  created_at INTEGER NOT NULL,
  removed_at INTEGER,
  PRIMARY KEY (job_id, volume)
);
CREATE INDEX staging_volumes_pending ON staging_volumes (job_id) WHERE removed_at IS NULL;
