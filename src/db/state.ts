import type { Db } from './index.js';

/**
 * What the copy of the database in the bucket needs locally (README "Losing its manager"): the generation
 * of the last copy this database made or was restored from, kept in `meta`, and a count of changes made
 * through this connection, so a copy is only made when something changed since the last one.
 */

const GENERATION = 'state_generation';

/** what a copy's `jobs.secrets` holds instead of a job's credentials: `{"$omitted": [names of what was left out]}` */
export const OMITTED_SECRETS = '$omitted';

/** the generation this database holds (0: it never made nor came from a copy) */
export function localGeneration(db: Db): number {
  const v = db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get(GENERATION) as string | undefined;
  const n = v === undefined ? 0 : Number(v);
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}

export function setLocalGeneration(db: Db, generation: number): void {
  db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(GENERATION, String(generation));
}

/** tables whose rows are not state (a probe of /readyz) */
const NOT_STATE = new Set(['readiness_probe']);

/**
 * A counter of the rows inserted, updated or deleted in this database's tables through this connection:
 * TEMP triggers (they live with the connection, never in the file or its copies) bump a TEMP counter.
 * Returns a reader of the counter. Call it after migrations: a table made later is not counted.
 */
export function trackChanges(db: Db): () => number {
  db.exec('CREATE TEMP TABLE IF NOT EXISTS state_changes (n INTEGER NOT NULL)');
  if (db.prepare('SELECT COUNT(*) FROM temp.state_changes').pluck().get() === 0) db.exec('INSERT INTO temp.state_changes (n) VALUES (0)');
  const tables = (db.prepare("SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").pluck().all() as string[]).filter(
    (t) => !NOT_STATE.has(t),
  );
  for (const t of tables) {
    for (const op of ['INSERT', 'UPDATE', 'DELETE']) {
      const name = `state_changes_${t}_${op.toLowerCase()}`.replace(/[^a-zA-Z0-9_]/g, '_');
      db.exec(`CREATE TEMP TRIGGER IF NOT EXISTS "${name}" AFTER ${op} ON main."${t}" BEGIN UPDATE temp.state_changes SET n = n + 1; END`);
    }
  }
  const read = db.prepare('SELECT n FROM temp.state_changes').pluck();
  return () => read.get() as number;
}

/** whether a job is running (the copy is also checked while one runs, even when nothing changed) */
export function anyJobRunning(db: Db): boolean {
  return db.prepare("SELECT 1 FROM jobs WHERE state = 'running' LIMIT 1").pluck().get() === 1;
}
