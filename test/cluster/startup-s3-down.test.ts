// S3 down at start-up (docs/upgrading.md "S3 down at start-up"), with real servers, the real swarm and
// s3rver behind a proxy that refuses connections: the process answers /healthz at once and /readyz names
// the wait; with a local database it starts from it after SWARM_UTILS_STATE_COPY_START_TIMEOUT (an
// update and a clean run, a backup fails S3_ERROR and is notified), and the copy resumes when S3 is back,
// the fence still holding; without a local database jobs get 503 STATE_COPY_UNAVAILABLE until the
// bucket answers, GET /jobs answers.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { IMAGES, S3 } from '../helpers/testbed.js';
import { startServer, waitJob, type RunningServer } from '../helpers/server.js';
import { tempDbPath } from '../helpers/engine-fixture.js';
import { createAppService, removeServices, serverEnv, uid } from '../helpers/cluster.js';
import { deleteS3Prefix, removeVolumes, s3Client } from '../helpers/leftovers.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';

const id = uid();
const PREFIX = `sd-${id}`;
const KEY = `${PREFIX}/.swarm-utils/state.db.gz`;
const S3_SECRET = `sd-s3-secret-${id}`;
const SVC = `sd-svc-${id}`;
const W1 = 'su-worker-1';
const VOL = `sd-data-${id}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let proxy: Proxy;
let receiver: http.Server;
let receiverUrl = '';
const received: any[] = [];
const servers: RunningServer[] = [];

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
    SWARM_UTILS_STATE_COPY_START_TIMEOUT: '5',
    SWARM_UTILS_NOTIFY_URL: receiverUrl,
    ...extra,
  });
}

async function server(e: Record<string, string>, opts: { dbPath?: string } = {}): Promise<RunningServer> {
  const s = await startServer(e, { ...opts, early: true });
  servers.push(s);
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

async function copyEtag(): Promise<string | null> {
  try {
    return (await s3Client.send(new HeadObjectCommand({ Bucket: S3.bucket, Key: KEY }))).ETag ?? null;
  } catch {
    return null;
  }
}

/** a GET; the moment the start-up answerer hands the port to the API a connection can be refused or reset: asked again */
async function get(s: RunningServer, path: string): Promise<{ status: number; json: any }> {
  for (let attempt = 1; ; attempt++) {
    try {
      const r = await fetch(s.url + path);
      return { status: r.status, json: await r.json().catch(() => null) };
    } catch (e) {
      if (attempt >= 5) throw new Error(`GET ${path}: ${(e as Error).message} ${String((e as any).cause?.code ?? '')}`);
      await sleep(200);
    }
  }
}

beforeAll(async () => {
  proxy = await startProxy({ listen: { host: '10.77.0.1', port: 0 }, target: { host: '10.77.0.1', port: 9000 } });
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      received.push(JSON.parse(body));
      res.end('ok');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  await createAppService(SVC, {
    constraints: [`node.hostname==${W1}`],
    mounts: [{ Type: 'volume', Source: VOL, Target: '/data' }],
    labels: {
      'swarm-utils.backup.enable': 'true',
      'swarm-utils.clean.enable': 'true',
      'swarm-utils.clean.exec': 'echo cleaned',
    },
  });
});

afterAll(async () => {
  proxy?.refuse(false);
  for (const s of servers) if (s.proc.exitCode === null && s.proc.signalCode === null) await s.stop().catch(() => undefined);
  await proxy?.close();
  await new Promise((r) => receiver?.close(r));
  await removeServices(SVC);
  await removeVolumes([VOL]).catch(() => undefined);
  await deleteS3Prefix(PREFIX).catch(() => undefined);
});

describe('S3 down at start-up', () => {
  it('with a local database: /healthz at once, /readyz names the wait; after the timeout update and clean run, a backup fails S3_ERROR and is notified; S3 back: copied, ready; the fence holds', async () => {
    // a first process writes its database and its copy, then stops
    const a = await server(env());
    await until('the first copy', 30_000, async () => (await copyEtag()) !== null);
    const dbPath = a.dbPath;
    await a.stop();
    const before = await copyEtag();

    proxy.refuse(true);
    const t0 = Date.now();
    const b = await server(env(), { dbPath });
    // listening while the bucket is read
    const health = await get(b, '/healthz');
    expect(health.status).toBe(200);
    expect(health.json.status).toBe('ok');
    expect(typeof health.json.version).toBe('string');
    const waiting = await get(b, '/readyz');
    expect(waiting.status).toBe(503);
    expect(waiting.json.checks.stateCopy.message).toMatch(/waiting for the bucket since \S+, last error/);
    expect(JSON.stringify(waiting.json)).not.toContain(S3_SECRET);

    // after SWARM_UTILS_STATE_COPY_START_TIMEOUT (5 s) it runs from the local database, and says so
    const started = await until('start from the local database', 60_000, async () => {
      const r = await get(b, '/readyz');
      return r.json?.checks?.stateCopy?.message?.includes('started from the local database') ? r : null;
    });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(5_000);
    expect(started.status).toBe(503);
    expect(b.output()).toContain('starting from the local database unread');

    const upd = await b.api('POST', '/jobs', { type: 'update', service: SVC, image: IMAGES.appV2 });
    expect(upd.status, JSON.stringify(upd.json)).toBe(202);
    const updJob = await waitJob(b, upd.json.id);
    expect(updJob.state, JSON.stringify(updJob)).toBe('succeeded');
    const cln = await b.api('POST', '/jobs', { type: 'clean', service: SVC });
    expect(cln.status, JSON.stringify(cln.json)).toBe(202);
    const clnJob = await waitJob(b, cln.json.id);
    expect(clnJob.state, JSON.stringify(clnJob)).toBe('succeeded');
    const bk = await b.api('POST', '/jobs', { type: 'backup', service: SVC });
    expect(bk.status, JSON.stringify(bk.json)).toBe(202);
    const bkJob = await waitJob(b, bk.json.id);
    expect(bkJob.state).toBe('failed');
    expect(bkJob.error.code, JSON.stringify(bkJob.error)).toBe('S3_ERROR');
    await until('the failure notification', 60_000, async () => received.some((n) => n.job?.id === bkJob.id));
    expect(received.filter((n) => n.job?.id === bkJob.id)).toHaveLength(1);
    expect(b.output()).not.toContain(S3_SECRET);

    // S3 back: the copy is written (a new object), /readyz ready
    proxy.refuse(false);
    await until('ready once the bucket answers', 60_000, async () => (await get(b, '/readyz')).status === 200);
    const after = await until('a new copy', 30_000, async () => {
      const e = await copyEtag();
      return e && e !== before ? e : null;
    });
    expect(after).not.toBe(before);
    expect(b.proc.exitCode).toBeNull();

    // the fence: a second process with no database takes the copy over; the first exits 3, acting on nothing
    const c = await server(env(), { dbPath: tempDbPath() });
    await until('the second process ready', 60_000, async () => (await get(c, '/readyz')).status === 200);
    // the second one writes first (a job of its own, copied before it acts) ...
    const cj = await c.api('POST', '/jobs', { type: 'clean', service: SVC });
    expect((await waitJob(c, cj.json.id)).state).toBe('succeeded');
    // ... and the first learns it at its next write (a job submitted to it): it exits 3 before acting
    const cleanedBefore = b.output().split('echo cleaned').length;
    await b.api('POST', '/jobs', { type: 'clean', service: SVC }).catch(() => undefined);
    const exit = await until('the first process fenced', 60_000, async () => (b.proc.exitCode !== null ? { code: b.proc.exitCode } : null));
    expect(exit.code).toBe(3);
    expect(b.output()).toContain('another swarm-utils instance took over');
    expect(b.output().split('echo cleaned').length).toBe(cleanedBefore);
    expect(c.proc.exitCode).toBeNull();
    await c.stop();
  });

  it('with no local database: jobs get 503 STATE_COPY_UNAVAILABLE, GET /jobs answers, until the bucket answers', async () => {
    proxy.refuse(true);
    const d = await server(env(), { dbPath: tempDbPath() });
    const ready = await get(d, '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.json.checks.stateCopy.message).toMatch(/waiting for the bucket since/);
    const job = await d.api('POST', '/jobs', { type: 'clean', service: SVC });
    expect(job.status).toBe(503);
    expect(job.json.error.code).toBe('STATE_COPY_UNAVAILABLE');
    const list = await d.api('GET', '/jobs');
    expect(list.status).toBe(200);
    expect(list.json.jobs).toEqual([]);
    expect((await d.api('GET', '/jobs', undefined, 'not-a-token')).status).toBe(503);
    expect((await fetch(`${d.url}/jobs`)).status).toBe(401);
    // still waiting well after the start timeout: no local database means no start without the bucket
    await sleep(7_000);
    expect(d.proc.exitCode).toBeNull();
    expect((await d.api('POST', '/jobs', { type: 'clean', service: SVC })).json.error.code).toBe('STATE_COPY_UNAVAILABLE');

    proxy.refuse(false);
    await until('ready once the bucket answers', 60_000, async () => (await get(d, '/readyz')).status === 200);
    const again = await d.api('POST', '/jobs', { type: 'clean', service: SVC });
    expect(again.status, JSON.stringify(again.json)).toBe(202);
    expect((await waitJob(d, again.json.id)).state).toBe('succeeded');
    // the copy's history came with it: the jobs of the first test are listed
    expect((await d.api('GET', '/jobs')).json.jobs.length).toBeGreaterThan(1);
    await d.stop();
  });
});
