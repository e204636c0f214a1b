import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

export type Db = Database.Database;

/** migrations/ sits at the repository (or image) root, two levels above src/db and dist/db */
const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

/** the highest migration this build has: the schema version it writes (and the newest it can read) */
export function knownSchemaVersion(dir = MIGRATIONS_DIR): number {
  let max = 0;
  for (const f of fs.readdirSync(dir)) if (/^\d+_.*\.sql$/.test(f)) max = Math.max(max, Number.parseInt(f, 10));
  return max;
}

/** the schema version of a database file (its highest applied migration); 0 when it has none or is missing */
export function schemaVersionOf(file: string): number {
  if (file === ':memory:' || !fs.existsSync(file) || fs.statSync(file).size === 0) return 0;
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").pluck().get() === 1;
    return has ? ((db.prepare('SELECT MAX(version) FROM schema_migrations').pluck().get() as number | null) ?? 0) : 0;
  } finally {
    db.close();
  }
}

export function openDb(file: string): Db {
  if (file !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  // FULL: a job state the API answered with survives a power loss, not only a process crash
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  // erased credentials (a job's registryAuth) are overwritten with zeros, not left in free space
  db.pragma('secure_delete = ON');
  migrate(db);
  return db;
}

/** Applies numbered SQL files (0001_name.sql …) not yet recorded, each in its own transaction. */
export function migrate(db: Db, dir = MIGRATIONS_DIR): number[] {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  const done = new Set(db.prepare('SELECT version FROM schema_migrations').pluck().all() as number[]);
  const applied: number[] = [];
  for (const file of fs.readdirSync(dir).filter((f) => /^\d+_.*\.sql$/.test(f)).sort()) {
    const version = Number.parseInt(file, 10);
    if (done.has(version)) continue;
    const sql = fs.readFileSync(path.join(dir, file), 'utf8');
    // a table rebuild (SQLite cannot alter a CHECK constraint) runs with foreign keys off, then checks them
    const fkOff = /^-- foreign_keys: off\s*$/m.test(sql.split('\n')[0] ?? '');
    const fkWasOn = db.pragma('foreign_keys', { simple: true }) === 1;
    if (fkOff) db.pragma('foreign_keys = OFF');
    try {
      db.transaction(() => {
        db.exec(sql);
        if (fkOff) {
          const broken = db.pragma('foreign_key_check') as unknown[];
          if (broken.length) throw new Error(`migration ${file} leaves ${broken.length} broken foreign key(s)`);
        }
        db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(version, file, Date.now());
      })();
    } finally {
      if (fkOff && fkWasOn) db.pragma('foreign_keys = ON');
    }
    applied.push(version);
  }
  return applied;
}

/** BEGIN IMMEDIATE: takes SQLite's write lock up front, so a claim never races another writer. */
export function immediate<T>(db: Db, fn: () => T): T {
  return db.transaction(fn).immediate();
}

/** this database's short random id, made once */
export function instanceId(db: Db): string {
  db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('instance', ?)").run(crypto.randomBytes(3).toString('hex'));
  return db.prepare("SELECT value FROM meta WHERE key = 'instance'").pluck().get() as string;
}

/** true when a write succeeds (used by /readyz) */
export function isWritable(db: Db): boolean {
  try {
    db.prepare('CREATE TABLE IF NOT EXISTS readiness_probe (at INTEGER)').run();
    db.prepare('DELETE FROM readiness_probe').run();
    db.prepare('INSERT INTO readiness_probe (at) VALUES (?)').run(Date.now());
    return true;
  } catch {
    return false;
  }
}
