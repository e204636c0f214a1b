// A rollback with the state copy (docs/upgrading.md "Rolling back"): a build with a higher migration
// number writes the bucket's copy; the current build started against the same bucket, or on that build's
// local database, exits 2 with a message naming both schema versions, and overwrites nothing.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { S3 } from '../helpers/testbed.js';
import { startServer, type RunningServer } from '../helpers/server.js';
import { serverEnv, uid } from '../helpers/cluster.js';
import { deleteS3Prefix, s3Client } from '../helpers/leftovers.js';
import { knownSchemaVersion } from '../../src/db/index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const id = uid();
const PREFIX = `sr-${id}`;
const KEY = `${PREFIX}/.swarm-utils/state.db.gz`;
const FUTURE = 99;
let newer = '';
let tmp = '';
const servers: RunningServer[] = [];

const env = (extra: Record<string, string> = {}) =>
  serverEnv({
    SWARM_UTILS_S3_DOMAIN: `${S3.endpoint.replace(/^https?:\/\//, '')}`,
    SWARM_UTILS_S3_HTTPS: 'false',
    SWARM_UTILS_S3_BUCKET_NAME: S3.bucket,
    SWARM_UTILS_S3_ACCESS_KEY: S3.accessKey,
    SWARM_UTILS_S3_SECRET_ACCESS_KEY: S3.secretKey,
    SWARM_UTILS_S3_PATH: PREFIX,
    SWARM_UTILS_STATE_COPY: 'true',
    SWARM_UTILS_STATE_COPY_INTERVAL: '1_000',
    ...extra,
  });

const sha = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

async function headOf(): Promise<{ etag: string; schema: string } | null> {
  try {
    const h = await s3Client.send(new HeadObjectCommand({ Bucket: S3.bucket, Key: KEY }));
    return { etag: h.ETag ?? '', schema: h.Metadata?.schema ?? '' };
  } catch {
    return null;
  }
}

/** starts the current build and waits for its exit (its port answers /healthz while it reads the bucket) */
async function exitMessage(e: Record<string, string>, dbPath: string): Promise<string> {
  let s: RunningServer;
  try {
    s = await startServer(e, { dbPath, early: true });
  } catch (err) {
    return (err as Error).message;
  }
  servers.push(s);
  const deadline = Date.now() + 60_000;
  while (s.proc.exitCode === null && s.proc.signalCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  if (s.proc.exitCode === null) throw new Error(`the current build still runs:\n${s.output()}`);
  return `server exited with ${s.proc.exitCode}:\n${s.output()}`;
}

beforeAll(() => {
  // the "newer" build: this checkout's source with one more migration
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'su-newer-'));
  newer = path.join(tmp, 'swarm-utils');
  fs.mkdirSync(newer);
  for (const f of ['src', 'migrations', 'public']) fs.cpSync(path.join(ROOT, f), path.join(newer, f), { recursive: true });
  for (const f of ['package.json', 'tsconfig.json']) fs.copyFileSync(path.join(ROOT, f), path.join(newer, f));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(newer, 'node_modules'));
  fs.writeFileSync(path.join(newer, 'migrations', `00${FUTURE}_future.sql`), 'CREATE TABLE future_thing (id INTEGER PRIMARY KEY);\n');
});

afterAll(async () => {
  for (const s of servers) await s.stop().catch(() => undefined);
  await deleteS3Prefix(PREFIX).catch(() => undefined);
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('an older build meets a newer schema', () => {
  it('a newer copy in the bucket, then the newer local database: exit 2 naming both versions, nothing overwritten', async () => {
    const known = knownSchemaVersion();
    expect(known).toBeLessThan(FUTURE);
    const newerDb = path.join(tmp, 'newer.db');
    const n = await startServer(env(), { dbPath: newerDb, root: newer });
    servers.push(n);
    const deadline = Date.now() + 30_000;
    while (!(await headOf()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 300));
    await n.stop();
    const copy = await headOf();
    expect(copy?.schema).toBe(String(FUTURE));

    // the current build, no local database, the same bucket
    const freshDb = path.join(tmp, 'current.db');
    const msg = await exitMessage(env(), freshDb);
    expect(msg).toMatch(/exited with 2/);
    expect(msg).toContain(`schema version ${FUTURE}`);
    expect(msg).toContain(`up to ${known}`);
    expect(msg).toContain(KEY);
    expect(await headOf()).toEqual(copy);
    expect(fs.existsSync(freshDb)).toBe(false);

    // the current build on the newer build's database (copy off): refused before it is opened
    const before = sha(newerDb);
    const local = await exitMessage(env({ SWARM_UTILS_STATE_COPY: 'false' }), newerDb);
    expect(local).toMatch(/exited with 2/);
    expect(local).toContain(`the database ${newerDb} has schema version ${FUTURE}`);
    expect(local).toContain(`up to ${known}`);
    expect(sha(newerDb)).toBe(before);
    expect(await headOf()).toEqual(copy);
  });
});
