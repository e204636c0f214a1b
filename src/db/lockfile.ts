import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

export interface ProcessLock {
  file: string;
  release(): void;
}

/**
 * One process per database file: a side file `<db>.lock` is itself a small SQLite database that this
 * process writes once in EXCLUSIVE locking mode and keeps open, so it holds the file's write lock for its
 * lifetime. The kernel drops that lock when the process dies (also on SIGKILL), so a restart right after
 * a crash takes it at once, while a second process beside a live one gets SQLITE_BUSY.
 * Returns null when another process holds it.
 */
export function acquireProcessLock(dbPath: string): ProcessLock | null {
  if (dbPath === ':memory:') return { file: dbPath, release: () => undefined };
  const file = `${path.resolve(dbPath)}.lock`;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const lock = new Database(file, { timeout: 0 });
  try {
    lock.pragma('locking_mode = EXCLUSIVE');
    lock.exec('CREATE TABLE IF NOT EXISTS owner (pid INTEGER NOT NULL, since INTEGER NOT NULL)');
    lock.transaction(() => {
      lock.prepare('DELETE FROM owner').run();
      lock.prepare('INSERT INTO owner (pid, since) VALUES (?, ?)').run(process.pid, Date.now());
    })();
  } catch (e) {
    lock.close();
    if ((e as { code?: string }).code === 'SQLITE_BUSY') return null;
    throw e;
  }
  return { file, release: () => lock.close() };
}
