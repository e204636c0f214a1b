import crypto from 'node:crypto';
import type { Db } from './index.js';

const keys = new WeakMap<Db, Buffer>();

/**
 * This installation's secret key for "who asked" (requester hashes), made once and kept in `meta`.
 * Rows written before the key existed hold unkeyed sha-256 hashes of tokens: they are re-keyed in the
 * same transaction that makes the key, so no unkeyed hash remains (and the old bytes are checkpointed away).
 */
export function requesterKey(db: Db): Buffer {
  const cached = keys.get(db);
  if (cached) return cached;
  let made = false;
  const hex = db.transaction(() => {
    made = db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('requester_key', ?)").run(crypto.randomBytes(32).toString('hex')).changes === 1;
    const value = db.prepare("SELECT value FROM meta WHERE key = 'requester_key'").pluck().get() as string;
    if (made) rekeyRequesters(db, Buffer.from(value, 'hex'));
    return value;
  }).immediate();
  if (made) scrubWal(db);
  const key = Buffer.from(hex, 'hex');
  keys.set(db, key);
  return key;
}

/** HMAC(key, old unkeyed sha-256 hex) is exactly what the keyed scheme computes for the same token */
function rekeyRequesters(db: Db, key: Buffer): void {
  const rows = db.prepare('SELECT id, requester_hash AS hash FROM jobs WHERE requester_hash IS NOT NULL').all() as { id: number; hash: string }[];
  const update = db.prepare('UPDATE jobs SET requester_hash = ?, requester = ? WHERE id = ?');
  for (const r of rows) {
    const keyed = crypto.createHmac('sha256', key).update(r.hash.toLowerCase()).digest('hex');
    update.run(keyed, keyed.slice(0, 12), r.id);
  }
}

/**
 * After a credential was erased from a row: copy the write-ahead log into the database file and truncate
 * it, so the erased bytes do not linger in old WAL frames (secure_delete, set at open, zeroes them in pages).
 * Inside a transaction the checkpoint could not run: it is done as soon as that transaction is over.
 */
export function scrubWal(db: Db): void {
  const run = () => {
    try {
      if (db.open) db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // a busy database is checkpointed by the next erase; nothing else depends on it
    }
  };
  if (db.inTransaction) setImmediate(run);
  else run();
}
