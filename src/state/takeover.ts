/**
 * Takeover at start-up (README "Losing its manager"), before the database is opened: when the local
 * database is missing, empty or older (a lower generation) than the bucket's copy, the copy replaces it;
 * then the process starts as after a crash (running jobs resume, helpers are found by their label,
 * compensation runs). The replaced file is kept beside it as `<db>.replaced`.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import Database from 'better-sqlite3';
import { AppError } from '../errors.js';
import { knownSchemaVersion, schemaVersionOf } from '../db/index.js';
import { version } from '../version.js';
import type { Logger } from '../log.js';
import { sleep } from '../engine/limits.js';
import type { StateHead, StateStore } from './store.js';

const gunzip = promisify(zlib.gunzip);

/**
 * A database or state copy written by a newer swarm-utils (its schema has migrations this build does not
 * know): start-up stops with exit code 2 and this message, touching nothing (docs/upgrading.md "Rolling back").
 */
export class SchemaTooNew extends Error {
  constructor(what: string, found: number, known: number) {
    super(
      `${what} has schema version ${found}, this swarm-utils ${version()} knows schema versions up to ${known}: ` +
        'it was written by a newer swarm-utils. Deploy that version again, or roll back as docs/upgrading.md "Rolling back" says ' +
        '(restore the copy of /data taken before the upgrade, and the state copy with it); nothing was changed',
    );
  }
}

/** the local database's schema is newer than this build's: SchemaTooNew, before it is opened or replaced */
export function checkLocalSchema(dbPath: string): void {
  const found = schemaVersionOf(dbPath);
  const known = knownSchemaVersion();
  if (found > known) throw new SchemaTooNew(`the database ${dbPath}`, found, known);
}

/** how long start-up tries to read the bucket before it gives up */
export const READ_BUCKET_MS = 60_000;

export interface Takeover {
  /** the object as read at start-up (null: the bucket had none): the one foreign write this process accepts */
  base: StateHead | null;
  /** set when the bucket's copy replaced the local database */
  restored: { generation: number; at: string; from: string } | null;
  /** set when the bucket did not answer within the start timeout and the local database was used unread */
  unread?: { since: string; lastError: string };
}

/** what start-up waits for while the bucket does not answer (GET /readyz) */
export interface BucketWait {
  since: string;
  lastError: string;
  /** a local database exists: after `untilMs` start-up goes on from it; without one it waits on */
  haveLocal: boolean;
}

export interface TakeoverOptions {
  dbPath: string;
  store: StateStore;
  log: Logger;
  /** with a local database, how long the bucket is waited for (SWARM_UTILS_STATE_COPY_START_TIMEOUT) */
  readBucketMs?: number;
  /** called at each failed read of the bucket */
  onWait?(wait: BucketWait): void;
  /** how long between reads of the bucket (2 s) */
  retryMs?: number;
}

interface Local {
  generation: number;
  installation: string | null;
  jobs: number;
}

/** the local database as far as the takeover needs it; null when it is missing, empty or unreadable */
export function inspectLocal(dbPath: string, log?: Logger): Local | null {
  if (!fs.existsSync(dbPath) || fs.statSync(dbPath).size === 0) return null;
  let db: Database.Database | null = null;
  try {
    db = new Database(dbPath, { fileMustExist: true });
    const has = (t: string) => db!.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").pluck().get(t) === 1;
    if (!has('jobs')) return null;
    const meta = (key: string) => (has('meta') ? (db!.prepare('SELECT value FROM meta WHERE key = ?').pluck().get(key) as string | undefined) : undefined);
    const generation = Number(meta('state_generation') ?? 0);
    return {
      generation: Number.isSafeInteger(generation) && generation > 0 ? generation : 0,
      installation: meta('instance') ?? null,
      jobs: db.prepare('SELECT COUNT(*) FROM jobs').pluck().get() as number,
    };
  } catch (e) {
    log?.error({ err: e instanceof Error ? e.message : String(e), dbPath }, 'the local database cannot be read: it counts as missing');
    return null;
  } finally {
    db?.close();
  }
}

export async function takeOver(opts: TakeoverOptions): Promise<Takeover> {
  const { dbPath, store, log } = opts;
  const local = inspectLocal(dbPath, log);
  const read = await readHead(opts, local !== null);
  if ('unread' in read) return { base: null, restored: null, unread: read.unread };
  const head = read.head;
  // a copy written by a newer build (a rollback to an older image): refused before anything is replaced
  const known = knownSchemaVersion();
  if (head && (head.schema ?? 0) > known) throw new SchemaTooNew(`the state copy ${store.key} in the bucket`, head.schema ?? 0, known);
  if (!head) {
    log.info({ key: store.key, localGeneration: local?.generation ?? 0 }, 'state copy: the bucket holds none yet; starting from the local database');
    return { base: null, restored: null };
  }
  if (local && local.generation >= head.generation) {
    if (local.generation > 0 && head.installation && local.installation && head.installation !== local.installation) {
      throw new AppError(
        'UNSUPPORTED',
        `the state copy ${store.key} in the bucket belongs to installation ${head.installation}, this database to ${local.installation}: ` +
          'two installations must not share one SWARM_UTILS_S3_PATH (give each its own path)',
      );
    }
    log.info({ key: store.key, localGeneration: local.generation, bucketGeneration: head.generation }, 'state copy: the local database is current');
    return { base: head, restored: null };
  }
  return restore(opts, local, head);
}

/**
 * The bucket's head. It does not answer: with a local database, start-up goes on from it after
 * `readBucketMs` (the first copy checks the bucket again); without one (another manager's jobs could be
 * in the bucket) it waits until the bucket answers, however long, while the API says so (503).
 */
async function readHead(opts: TakeoverOptions, haveLocal: boolean): Promise<{ head: StateHead | null } | { unread: { since: string; lastError: string } }> {
  const { store, log } = opts;
  const since = new Date();
  const end = since.getTime() + (opts.readBucketMs ?? READ_BUCKET_MS);
  let logged = false;
  for (;;) {
    try {
      const head = await store.head();
      if (logged) log.info('state copy: the bucket answers');
      return { head };
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      opts.onWait?.({ since: since.toISOString(), lastError: why, haveLocal });
      if (haveLocal && Date.now() >= end) {
        log.error(
          { err: why, waitedMs: Date.now() - since.getTime() },
          'state copy: the bucket cannot be read; starting from the local database unread (updates and cleans run; backups, restores and drills fail until S3 answers; the copy resumes when it does)',
        );
        return { unread: { since: since.toISOString(), lastError: why } };
      }
      if (!logged) {
        log.warn(
          { err: why },
          haveLocal
            ? 'state copy: the bucket cannot be read yet: trying again until the start timeout, then starting from the local database'
            : 'state copy: the bucket cannot be read and there is no local database: waiting for it (jobs are refused with 503 STATE_COPY_UNAVAILABLE meanwhile)',
        );
      }
      logged = true;
      await sleep(opts.retryMs ?? 2_000);
    }
  }
}

async function restore(opts: TakeoverOptions, local: Local | null, seen: StateHead): Promise<Takeover> {
  const { dbPath, store, log } = opts;
  const got = await store.get();
  if (!got) throw new AppError('S3_ERROR', `the state copy ${store.key} disappeared while it was read: start again`);
  const raw = await gunzip(got.body).catch((e: unknown) => {
    throw new AppError('S3_ERROR', `the state copy ${store.key} is not a gzip file: ${e instanceof Error ? e.message : String(e)}`);
  });
  fs.mkdirSync(path.dirname(path.resolve(dbPath)), { recursive: true });
  const incoming = `${dbPath}.restoring`;
  fs.writeFileSync(incoming, raw);
  try {
    prepareCopy(incoming, got.head, store.key);
  } catch (e) {
    fs.rmSync(incoming, { force: true });
    throw e;
  }
  // the local file (and its write-ahead log, which SQLite pairs by name) is kept aside, then replaced
  for (const suffix of ['', '-wal', '-shm']) {
    if (fs.existsSync(`${dbPath}${suffix}`)) fs.renameSync(`${dbPath}${suffix}`, `${dbPath}.replaced${suffix}`);
  }
  fs.renameSync(incoming, dbPath);
  const restored = { generation: got.head.generation, at: new Date().toISOString(), from: got.head.writer };
  log.warn(
    { key: store.key, generation: got.head.generation, localGeneration: local?.generation ?? null, localJobs: local?.jobs ?? 0, bytes: raw.length, seenGeneration: seen.generation },
    local ? 'state copy: the local database is older than the bucket’s copy: restored the copy (the old file is kept as .replaced)' : 'state copy: no local database: restored the bucket’s copy',
  );
  return { base: got.head, restored };
}

/**
 * Checks the copy and makes it this installation's database: a new requester key (the copy has none;
 * the old hashes then match no token), and `all` jobs of a label token that had not made their children
 * yet fail (their grant cannot be checked without the old key).
 */
function prepareCopy(file: string, head: StateHead, key: string): void {
  const db = new Database(file, { fileMustExist: true });
  try {
    const check = db.pragma('integrity_check', { simple: true });
    if (check !== 'ok') throw new AppError('S3_ERROR', `the state copy ${key} is damaged: ${String(check)}`);
    const has = (t: string) => db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").pluck().get(t) === 1;
    if (!has('jobs') || !has('meta')) throw new AppError('S3_ERROR', `the state copy ${key} is not a swarm-utils database`);
    const now = Date.now();
    db.transaction(() => {
      db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('requester_key', ?)").run(crypto.randomBytes(32).toString('hex'));
      db.prepare("INSERT INTO meta (key, value) VALUES ('state_generation', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(String(head.generation));
      const orphans = db
        .prepare(
          `SELECT id FROM jobs WHERE target_kind = 'all' AND requester_admin = 0 AND requester_hash IS NOT NULL AND state IN ('queued', 'running')
             AND NOT EXISTS (SELECT 1 FROM jobs c WHERE c.parent_id = jobs.id)`,
        )
        .pluck()
        .all() as number[];
      for (const id of orphans) {
        db.prepare(
          `UPDATE jobs SET state = 'failed', finished_at = ?, owner = NULL, error_code = 'UNSUPPORTED',
             error_message = 'taken over by another manager before its targets were listed: what the token may act on cannot be checked any more; submit it again' WHERE id = ?`,
        ).run(now, id);
        db.prepare("UPDATE steps SET state = 'skipped', finished_at = ? WHERE job_id = ? AND state IN ('pending', 'running')").run(now, id);
      }
    })();
  } finally {
    db.close();
  }
}
