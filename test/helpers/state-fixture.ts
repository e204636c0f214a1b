// An object store for the state copy in memory, for unit tests of the gate's rules (which generation wins,
// conditional writes or not): the real store is tested against s3rver in test/cluster/takeover.test.ts.
import crypto from 'node:crypto';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import Database from 'better-sqlite3';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StateConflict, type StateHead, type StateMeta, type StateStore } from '../../src/state/store.js';

export interface MemoryStore extends StateStore {
  object: { body: Buffer; head: StateHead } | null;
  puts: { meta: StateMeta; at: number }[];
  /** the next calls fail (S3 down) */
  failing: boolean;
  /** writes of another process, as the test wants them */
  plant(body: Buffer, meta: StateMeta): void;
}

/** `conditional`: the store honours If-Match / If-None-Match (AWS, MinIO); otherwise it ignores them (s3rver) */
export function memoryStore(opts: { conditional?: boolean } = {}): MemoryStore {
  const store: MemoryStore = {
    key: 'test/.swarm-utils/state.db.gz',
    conditional: null,
    object: null,
    puts: [],
    failing: false,
    async head() {
      if (store.failing) throw new Error('S3 is down');
      return store.object ? { ...store.object.head } : null;
    },
    async get() {
      if (store.failing) throw new Error('S3 is down');
      return store.object ? { head: { ...store.object.head }, body: store.object.body } : null;
    },
    async put(body, meta, expect) {
      if (store.failing) throw new Error('S3 is down');
      if (opts.conditional && (store.object?.head.etag ?? null) !== expect.etag) throw new StateConflict('412 PreconditionFailed');
      store.plant(body, meta);
      store.puts.push({ meta, at: Date.now() });
      return { etag: store.object!.head.etag };
    },
    plant(body, meta) {
      const etag = `"${crypto.createHash('md5').update(body).update(String(meta.generation)).update(meta.writer).digest('hex')}"`;
      store.object = { body, head: { ...meta, etag, size: body.length } };
    },
    close: () => undefined,
  };
  return store;
}

const gunzip = promisify(zlib.gunzip);

/** the copy in the store, opened as a database (read only, from a temp file) */
export async function openCopy(body: Buffer): Promise<{ db: Database.Database; raw: Buffer }> {
  const raw = await gunzip(body);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'state-copy-')), 'copy.db');
  fs.writeFileSync(file, raw);
  return { db: new Database(file, { readonly: true }), raw };
}
