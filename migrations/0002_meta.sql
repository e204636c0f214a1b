-- Facts about this installation. `instance` names its helper services, so two swarm-utils databases
-- (a test run beside another, a staging copy) never adopt or remove each other's helpers.
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
