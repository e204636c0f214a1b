-- Node jobs target a node id (a hostname can name a live node and a stale Down entry at once);
-- the hostname is kept beside it for display. Rows written before hold a hostname in `target`.
ALTER TABLE jobs ADD COLUMN target_label TEXT;
UPDATE jobs SET target_label = target WHERE target_kind = 'node';
CREATE INDEX jobs_target_label ON jobs (target_kind, target_label, id);
