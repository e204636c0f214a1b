// The copy of the state in the bucket (README "Losing its manager") with real servers, the real swarm and
// s3rver: what the copy holds while a stop=true backup holds a service down (and what it never holds), a
// process that finds a newer generation in the bucket exits without touching anything, the instance that
// takes over with no database of its own finishes the job, and without S3 (or with the copy off) nothing
// is written. The manager itself lost, on a swarm of three managers: test/cluster/manager-loss.test.ts.
import type { ChildProcess } from 'node:child_process';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import Database from 'better-sqlite3';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { REGISTRY, REGISTRY_AUTH, S3, dockerFor } from '../helpers/testbed.js';
import { ADMIN_TOKEN, startServer, waitJob, type RunningServer } from '../helpers/server.js';
import { createAppService, inspect, manager, removeServices, runningTasks, serverEnv, uid, waitRunning } from '../helpers/cluster.js';
import { deleteS3Prefix, instanceOf, removeHelperContainers, removeVolumes, s3Client } from '../helpers/leftovers.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { openCopy } from '../helpers/state-fixture.js';
import { containerLifetimes } from '../helpers/events.js';

const id = uid();
const W1 = 'su-worker-1';
const PREFIX = `to-${id}`;
const KEY = `${PREFIX}/.swarm-utils/state.db.gz`;
// s3rver checks no signature: a unique secret shows it never reaches the copy
const S3_SECRET = `to-s3-secret-${id}-never-copied`;
const LABEL_TOKEN = `to-label-token-${id}`;
const REQUEST_PASSWORD = `to-request-password-${id}`;
const SVC = `to-svc-${id}`;
const VOL = `to-data-${id}`;
const PLAIN = `to-plain-${id}`;
const PLAIN_VOL = `to-plain-data-${id}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const stepOf = (job: any, name: string) => job.steps?.find((x: any) => x.name === name);

let proxy: Proxy;
const servers: RunningServer[] = [];
const instances = new Set<string>();
const prefixes = [PREFIX, `${PREFIX}-off`];

function env(extra: Record<string, string> = {}): Record<string, string> {
  return serverEnv({
    SWARM_UTILS_S3_DOMAIN: proxy.address,
    SWARM_UTILS_S3_HTTPS: 'false',
    SWARM_UTILS_S3_BUCKET_NAME: S3.bucket,
    SWARM_UTILS_S3_ACCESS_KEY: S3.accessKey,
    SWARM_UTILS_S3_SECRET_ACCESS_KEY: S3_SECRET,
    SWARM_UTILS_S3_PATH: PREFIX,
    SWARM_UTILS_STATE_COPY: 'true',
    SWARM_UTILS_STATE_COPY_INTERVAL: '1_000',
    // the update queued behind the backup waits for its lock as long as the test needs
    SWARM_UTILS_LOCK_TIMEOUT: '600_000',
    ...extra,
  });
}

async function server(e: Record<string, string>): Promise<RunningServer> {
  const s = await startServer(e);
  servers.push(s);
  instances.add(instanceOf(s));
  return s;
}

async function until<T>(what: string, ms: number, fn: () => Promise<T | null | undefined | false>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(250);
  }
}

async function exitOf(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode === null && proc.signalCode === null) await new Promise((r) => proc.once('exit', r));
  return proc.exitCode;
}

/** the object in the bucket, read directly from s3rver */
async function bucketCopy(key = KEY): Promise<{ body: Buffer; meta: Record<string, string>; etag: string } | null> {
  try {
    const out = await s3Client.send(new GetObjectCommand({ Bucket: S3.bucket, Key: key }));
    return { body: Buffer.from(await out.Body!.transformToByteArray()), meta: out.Metadata ?? {}, etag: out.ETag ?? '' };
  } catch (e: any) {
    if (e?.$metadata?.httpStatusCode === 404 || e?.name === 'NoSuchKey') return null;
    throw e;
  }
}

/** every `.swarm-utils/` object of the bucket with its ETag */
async function stateObjects(): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3Client.send(new ListObjectsV2Command({ Bucket: S3.bucket, ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key!.includes('.swarm-utils/')) out.push(`${o.Key} ${o.ETag}`);
    token = page.NextContinuationToken;
  } while (token);
  return out.sort();
}

let a: RunningServer;
let backupId = 0;
let updateId = 0;
let inst = '';
let copied: { body: Buffer; meta: Record<string, string>; etag: string };
let stoppedVersion = 0;
let image = '';
let since = 0;

beforeAll(async () => {
  // helpers on the workers reach the proxy on the bridge address
  proxy = await startProxy({ listen: { host: '10.77.0.1', port: 0 }, target: { host: '10.77.0.1', port: 9000 } });
  await Promise.all([
    createAppService(SVC, {
      constraints: [`node.hostname==${W1}`],
      mounts: [{ Type: 'volume', Source: VOL, Target: '/data' }],
      labels: {
        'swarm-utils.backup.enable': 'true',
        'swarm-utils.backup.stop': 'true',
        // archived while stopped (no staging copy): the service stays down as long as the archive runs
        'swarm-utils.backup.stage': 'false',
        'swarm-utils.update.token': LABEL_TOKEN,
      },
    }),
    createAppService(PLAIN, {
      constraints: [`node.hostname==${W1}`],
      mounts: [{ Type: 'volume', Source: PLAIN_VOL, Target: '/data' }],
      labels: { 'swarm-utils.backup.enable': 'true', 'swarm-utils.clean.enable': 'true', 'swarm-utils.clean.exec': 'echo cleaned' },
    }),
  ]);
});

afterAll(async () => {
  proxy?.resume();
  for (const s of servers) if (s.proc.exitCode === null && s.proc.signalCode === null) await s.stop().catch(() => undefined);
  await proxy?.close();
  await removeServices(SVC, PLAIN);
  // a helper of a server that exited on purpose is left for the next one: none comes now
  for (const h of await manager.listServices({ filters: { label: ['swarm-utils.helper'] } })) {
    if ([...instances].some((i) => h.Spec?.Name?.startsWith(`swarm-utils-${i}-`))) await manager.getService(h.ID).remove().catch(() => undefined);
  }
  await removeHelperContainers(instances);
  for (const sct of await manager.listSecrets()) {
    if ([...instances].some((i) => sct.Spec?.Name?.startsWith(`swarm-utils-${i}-`))) await manager.getSecret(sct.ID).remove().catch(() => undefined);
  }
  await removeVolumes([VOL, PLAIN_VOL]);
  for (const p of prefixes) await deleteS3Prefix(p).catch(() => undefined);
});

describe('the state in the bucket', () => {
  it('while a stop=true backup holds a service down, the bucket’s copy has its record and hold, and no token, password, S3 secret or requester key', async () => {
    since = Date.now();
    a = await server(env());
    inst = instanceOf(a);
    expect(a.output()).toContain('state copy to the bucket: on');
    // the archive's upload waits as long as the test wants; the copies of the state go through
    proxy.holdOn(new RegExp(`^PUT /${S3.bucket}/${PREFIX}/${W1}_`));
    const r = await a.api('POST', '/jobs', { type: 'backup', service: SVC });
    expect(r.status, JSON.stringify(r.json)).toBe(202);
    backupId = r.json.id;
    await until('the archive running with its helper on su-worker-1', 90_000, async () => {
      const j = (await a.api('GET', `/jobs/${backupId}`)).json;
      if (stepOf(j, 'archive')?.state !== 'running') return null;
      return (await dockerFor(W1).listContainers({ filters: { name: [`swarm-utils-${inst}-${backupId}-archive`] } })).length > 0;
    });
    const svc = await inspect(SVC);
    expect(svc.Spec.Mode.Replicated.Replicas).toBe(0);
    stoppedVersion = svc.Version.Index;
    image = svc.Spec.TaskTemplate.ContainerSpec.Image;
    // an update with its own registry credentials, queued behind the backup's lock
    const u = await a.api(
      'POST',
      '/jobs',
      { type: 'update', service: SVC, registryAuth: { url: REGISTRY, username: REGISTRY_AUTH.username, password: REQUEST_PASSWORD } },
      LABEL_TOKEN,
    );
    expect(u.status, JSON.stringify(u.json)).toBe(202);
    updateId = u.json.id;

    // an accepted job is in the bucket's copy before the answer
    copied = (await bucketCopy())!;
    const { db: atAnswer } = await openCopy(copied.body);
    expect(atAnswer.prepare('SELECT state FROM jobs WHERE id = ?').pluck().get(updateId)).toBe('queued');
    atAnswer.close();
    expect(Number(copied.meta.generation)).toBeGreaterThan(0);
    expect(copied.meta.installation).toBe(inst);
    const { db, raw } = await openCopy(copied.body);
    try {
      expect(db.prepare('SELECT state FROM jobs WHERE id = ?').pluck().get(backupId)).toBe('running');
      expect(db.prepare("SELECT state, replicas, undo_step FROM service_holds WHERE job_id = ?").get(backupId)).toEqual({ state: 'held', replicas: 1, undo_step: 'start' });
      expect(JSON.parse(db.prepare("SELECT detail FROM steps WHERE job_id = ? AND name = 'stop'").pluck().get(backupId) as string)).toMatchObject({ replicas: 1 });
      expect(db.prepare("SELECT state FROM steps WHERE job_id = ? AND name = 'archive'").pluck().get(backupId)).toBe('running');
      expect(JSON.parse(db.prepare('SELECT secrets FROM jobs WHERE id = ?').pluck().get(updateId) as string)).toEqual({ $omitted: ['registryAuth'] });
      expect(db.prepare("SELECT value FROM meta WHERE key = 'requester_key'").pluck().get()).toBeUndefined();
    } finally {
      db.close();
    }
    // the live database does keep them while the jobs run
    const live = new Database(a.dbPath, { readonly: true });
    const requesterKey = live.prepare("SELECT value FROM meta WHERE key = 'requester_key'").pluck().get() as string;
    expect(live.prepare('SELECT secrets FROM jobs WHERE id = ?').pluck().get(updateId)).toContain(REQUEST_PASSWORD);
    live.close();
    expect(requesterKey).toMatch(/^[0-9a-f]{64}$/);
    for (const secret of [ADMIN_TOKEN, LABEL_TOKEN, REQUEST_PASSWORD, REGISTRY_AUTH.password, S3_SECRET, requesterKey]) {
      expect(raw.includes(secret), `the copy holds ${secret.slice(0, 8)}…`).toBe(false);
      expect(copied.body.includes(secret)).toBe(false);
    }
  });

  it('a newer generation in the bucket: the older process exits (code 3) without touching the service, its helper or its secrets', async () => {
    expect(backupId, 'the first test did not start the backup').toBeGreaterThan(0);
    const helpersBefore = (await manager.listServices({ filters: { label: [`swarm-utils.helper=${backupId}`] } })).map((h: any) => h.Spec.Name).sort();
    const secretsBefore = (await manager.listSecrets({ filters: { label: [`swarm-utils.helper=${backupId}`] } })).map((x: any) => x.Spec.Name).sort();
    expect(helpersBefore).toEqual([`swarm-utils-${inst}-${backupId}-archive-0`]);
    expect(secretsBefore.length).toBeGreaterThan(0);
    // the process copies nothing while it waits for the upload: the copy in the bucket stays as it is
    let now = (await bucketCopy())!;
    for (let stable = 0; stable < 3; ) {
      await sleep(1000);
      const again = (await bucketCopy())!;
      stable = again.etag === now.etag ? stable + 1 : 0;
      now = again;
    }
    // another instance restored the copy and wrote its own, at a newer generation
    const generation = Number(now.meta.generation) + 10;
    await s3Client.send(
      new PutObjectCommand({ Bucket: S3.bucket, Key: KEY, Body: now.body, Metadata: { generation: String(generation), writer: 'test-instance', installation: inst } }),
    );
    const code = await Promise.race([exitOf(a.proc), sleep(30_000).then(() => 'still running' as const)]);
    expect(code, a.output().slice(-3000)).toBe(3);
    expect(a.output()).toMatch(new RegExp(`another swarm-utils instance took over: the state copy ${KEY} in the bucket is at generation ${generation} \\(written by process test-instance\\)`));
    // nothing was touched
    const svc = await inspect(SVC);
    expect(svc.Version.Index).toBe(stoppedVersion);
    expect(svc.Spec.Mode.Replicated.Replicas).toBe(0);
    expect((await manager.listServices({ filters: { label: [`swarm-utils.helper=${backupId}`] } })).map((h: any) => h.Spec.Name).sort()).toEqual(helpersBefore);
    expect((await manager.listSecrets({ filters: { label: [`swarm-utils.helper=${backupId}`] } })).map((x: any) => x.Spec.Name).sort()).toEqual(secretsBefore);
    expect(a.output()).not.toContain('shutdown: service given back');
    // its bucket object is the newer one, untouched
    expect((await bucketCopy())!.meta).toMatchObject({ generation: String(generation), writer: 'test-instance' });
  });

  it('the instance that takes over with no database restores the copy, reattaches the helper, gives the service back and ends the job; the update whose credentials were left out fails clearly', async () => {
    expect(a?.proc.exitCode, 'the older process did not exit').toBe(3);
    const b = await server(env());
    expect(b.output()).toMatch(/no local database: restored the bucket’s copy/);
    expect(instanceOf(b)).toBe(inst);
    // the held upload goes on now: the helper the lost process made finishes for the new one
    proxy.resume();
    const done = await waitJob(b, backupId);
    expect(done.state, JSON.stringify(done)).toBe('succeeded');
    expect(done.steps.map((x: any) => [x.name, x.state])).toEqual([
      ['resolve', 'done'],
      ['exec', 'skipped'],
      ['prepare', 'skipped'],
      ['stop', 'done'],
      ['stage', 'skipped'],
      ['archive', 'done'],
      ['start', 'done'],
      ['archive-staged', 'skipped'],
      ['verify', 'done'],
      ['retention', 'skipped'],
      ['unstage', 'skipped'],
    ]);
    expect(done.result.takeover).toMatchObject({ generation: Number(copied.meta.generation) + 10, from: 'test-instance' });
    expect(done.result.takeover.message).toMatch(/the manager that ran this job was lost/);
    expect(done.result.archives).toHaveLength(1);
    expect((await s3Client.send(new HeadObjectCommand({ Bucket: S3.bucket, Key: done.result.archives[0].key }))).ContentLength).toBeGreaterThan(0);
    await waitRunning(SVC, 1);
    expect((await inspect(SVC)).Spec.Mode.Replicated.Replicas).toBe(1);
    // one archive helper, the one the lost process made: reattached, not made twice
    expect(b.output()).toContain('resuming job taken over from a lost manager');
    const helpers = await containerLifetimes(dockerFor(W1), since, (n) => n.startsWith(`swarm-utils-${inst}-${backupId}-archive-`));
    expect(helpers.map((h) => h.name)).toHaveLength(1);

    const update = await waitJob(b, updateId);
    expect([update.state, update.error?.code], JSON.stringify(update)).toEqual(['failed', 'UNSUPPORTED']);
    expect(update.error.message).toMatch(/credentials \(registryAuth\) were not kept in the bucket's copy.*submit the job again/);
    expect(stepOf(update, 'resolve-image').state).toBe('failed');
    expect((await inspect(SVC)).Spec.TaskTemplate.ContainerSpec.Image).toBe(image);
    // the new instance writes the generations from now on
    const after = (await bucketCopy())!;
    expect(Number(after.meta.generation)).toBeGreaterThan(Number(copied.meta.generation) + 10);
    expect(after.meta.writer).not.toBe('test-instance');
    for (const s of [ADMIN_TOKEN, S3_SECRET, REQUEST_PASSWORD]) expect(b.output()).not.toContain(s);
    await b.stop();
  });

  it('with S3 unset nothing is written and start-up is as today; with SWARM_UTILS_STATE_COPY=false neither', async () => {
    const before = await stateObjects();
    const plain = await server(serverEnv());
    expect(plain.output()).toMatch(/"reason":"S3 is not configured"[^\n]*state copy to the bucket: off/);
    expect(plain.output()).toContain('swarm-utils started');
    const c = await plain.api('POST', '/jobs', { type: 'clean', service: PLAIN, waitRes: true });
    expect(c.status, JSON.stringify(c.json)).toBe(200);
    await plain.stop();
    const db = new Database(plain.dbPath, { readonly: true });
    expect(db.prepare("SELECT value FROM meta WHERE key = 'state_generation'").pluck().get()).toBeUndefined();
    db.close();

    const off = await server(env({ SWARM_UTILS_STATE_COPY: 'false', SWARM_UTILS_S3_PATH: `${PREFIX}-off` }));
    expect(off.output()).toMatch(/"reason":"SWARM_UTILS_STATE_COPY=false"[^\n]*state copy to the bucket: off/);
    const b = await off.api('POST', '/jobs', { type: 'backup', service: PLAIN, waitRes: true });
    expect(b.status, JSON.stringify(b.json)).toBe(200);
    await off.stop();
    expect(await bucketCopy(`${PREFIX}-off/.swarm-utils/state.db.gz`)).toBeNull();
    expect(await stateObjects()).toEqual(before);
    expect((await runningTasks(PLAIN)).length).toBe(1);
  });
});
