// GET /backups against a real S3 protocol (an in-process s3rver), the real app and SQLite file, and a
// fake Docker port; plus the drill-result reader and the last-verified metric on drill rows.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import parsePrometheus from 'parse-prometheus-text-format';
import { finishJob, insertJob, setJobResult } from '../../src/db/jobs.js';
import { openBucket } from '../../src/backups/bucket.js';
import { archivesOf } from '../../src/backups/archives.js';
import { createObjectStore } from '../../src/s3.js';
import { drillOutcomes, drillsByKey, lastVerified, outcomesOf } from '../../src/backups/drills.js';
import { type Metrics, createMetrics } from '../../src/api/metrics.js';
import { JOB_KINDS } from '../../src/jobs/index.js';
import type { TaskInfo } from '../../src/swarm/port.js';
import { apiFixture, fakeNode, fakeService, type ApiFixture } from '../helpers/api-fixture.js';
import { fakeDocker, openDb, tempDbPath, testConfig } from '../helpers/engine-fixture.js';
import { drillJob } from '../helpers/drill-rows.js';
import { startLocalS3, type LocalS3 } from '../helpers/s3-local.js';

const ADMIN = 'admin-token';
const DB_TOKEN = 'db-backup-token';
const RESTORER = 'web-restore-token';
const PREFIX = 'prod';

const mounts = (...names: string[]) => ({ TaskTemplate: { ContainerSpec: { Mounts: names.map((n) => ({ Type: 'volume', Source: n, Target: `/${n}` })) } } });
const services = [
  // selects shop_db-data only (by its short name), mounts shop_db-cache too
  fakeService(
    'shop_db',
    {
      'swarm-utils.backup.enable': 'true',
      'swarm-utils.backup.token': DB_TOKEN,
      'swarm-utils.backup.volume-list': 'db-data',
      'com.docker.stack.namespace': 'shop',
    },
    { spec: mounts('shop_db-data', 'shop_db-cache') },
  ),
  // the restorer may restore web (and update db-less things: its admission needs a right of today's job types)
  fakeService('web', { 'swarm-utils.restore.token': RESTORER, 'swarm-utils.update.token': RESTORER }, { spec: mounts('web-data') }),
  fakeService('other', { 'swarm-utils.update.token': DB_TOKEN }, { spec: mounts('other-data') }),
];
const nodes = [fakeNode('w1'), fakeNode('w2'), fakeNode('odd_host')];

const key = (name: string) => `${PREFIX}/${name}`;
const K = {
  dbOld: key('w1_shop_db-data_2026-01-01T03-00-00Z.tar.gz'),
  dbNew: key('w1_shop_db-data_2026-01-02T03-00-00Z.tar.gz.gpg'),
  dbW2: key('w2_shop_db-data_2026-01-02T03-00-00Z.tar.gz'),
  cache: key('w1_shop_db-cache_2026-01-03T03-00-00Z.tar.gz'),
  web: key('w2_web-data_2026-01-04T03-00-00Z.tar.gz'),
  other: key('w1_other-data_2026-01-05T03-00-00Z.tar.gz'),
  odd: key('odd_host_web-data_2026-01-06T03-00-00Z.tar.gz'),
};
const FOREIGN = [key('notes.txt'), key('w1_shop_db-data_latest.tar.gz'), key('.swarm-utils/state.db.gz'), key('old/w1_shop_db-data_2025-01-01T03-00-00Z.tar.gz'), 'w1_web-data_2026-01-07T03-00-00Z.tar.gz'];

let s3: LocalS3;
let f: ApiFixture;
beforeAll(async () => {
  s3 = await startLocalS3();
  for (const k of Object.values(K)) await s3.put(k, `archive ${k}`);
  for (const k of FOREIGN) await s3.put(k);
});
afterAll(async () => {
  await s3?.close();
});
beforeEach(async () => {
  f = await apiFixture({ services, nodes, kinds: JOB_KINDS, env: s3.env(`/${PREFIX}/`) });
});
afterEach(async () => {
  await f.close();
});

const get = (url: string, token?: string) => f.app.inject({ url, headers: token ? { authorization: `Bearer ${token}` } : {} });
const keys = (r: { json: () => { backups: { key: string }[] } }) => r.json().backups.map((b) => b.key);

function backupJob(service: string, archives: Record<string, unknown>[], finishedAt = Date.now()) {
  const job = insertJob(f.db, { type: 'backup', targetKind: 'service', target: service, source: 'api', locks: [] });
  setJobResult(f.db, job.id, { archives });
  finishJob(f.db, job.id, 'succeeded', finishedAt);
  return job.id;
}

describe('GET /backups', () => {
  it('admin: every archive under the path, newest first, parsed from its name; other objects ignored', async () => {
    const r = await get('/backups', ADMIN);
    expect(r.statusCode, r.body).toBe(200);
    expect(keys(r)).toEqual([K.odd, K.other, K.web, K.cache, K.dbNew, K.dbW2, K.dbOld]);
    const b = r.json().backups;
    expect(b.find((x: { key: string }) => x.key === K.dbNew)).toEqual({
      key: K.dbNew,
      node: 'w1',
      volume: 'shop_db-data',
      time: '2026-01-02T03:00:00.000Z',
      size: `archive ${K.dbNew}`.length,
      encrypted: true,
    });
    // a hostname of the swarm that holds an underscore is read whole
    expect(b[0]).toMatchObject({ node: 'odd_host', volume: 'web-data', encrypted: false });
    expect(r.json().next).toBeNull();
  });

  it('joins the counts a backup recorded (also for the encrypted spelling) and the last drill', async () => {
    backupJob('shop_db', [
      { node: 'w1', volume: 'shop_db-data', key: K.dbOld, size: 10, files: 3, bytes: 1200 },
      // recorded under the planned name; offen appended .gpg
      { node: 'w1', volume: 'shop_db-data', key: K.dbNew.replace(/\.gpg$/, ''), size: 10, files: 4, bytes: 1300 },
      { node: 'w2', volume: 'shop_db-data', key: K.dbW2, size: 10 },
    ]);
    const t1 = Date.parse('2026-02-01T00:00:00Z');
    const ok = drillJob(f.db, { service: 'shop_db', state: 'succeeded', finishedAt: t1, result: { key: K.dbOld, files: 3, bytes: 1200, expected: { files: 3, bytes: 1200 }, ok: true } });
    const bad = drillJob(f.db, {
      service: 'shop_db',
      state: 'failed',
      finishedAt: t1 + 60_000,
      result: { key: K.dbOld, files: 2, bytes: 100, expected: { files: 3, bytes: 1200 }, ok: false, error: 'unexpected end of file' },
      error: { code: 'DRILL_FAILED', message: 'unexpected end of file' },
    });
    const b = (await get('/backups?service=shop_db', ADMIN)).json().backups;
    const byKey = Object.fromEntries(b.map((x: { key: string }) => [x.key, x]));
    expect(byKey[K.dbOld]).toMatchObject({ files: 3, bytes: 1200, verifiedAt: new Date(t1).toISOString() });
    expect(byKey[K.dbOld].lastDrill).toEqual({ at: new Date(t1 + 60_000).toISOString(), ok: false, jobId: bad, error: 'unexpected end of file' });
    expect(ok).toBeLessThan(bad);
    expect(byKey[K.dbNew]).toMatchObject({ files: 4, bytes: 1300 });
    expect(byKey[K.dbNew].verifiedAt).toBeUndefined();
    expect(byKey[K.dbW2].files).toBeUndefined();
  });

  it('service= lists the volumes the service backs up (not every one it mounts), volume= and node= (hostname or id) narrow', async () => {
    expect(keys(await get('/backups?service=shop_db', ADMIN))).toEqual([K.dbNew, K.dbW2, K.dbOld]);
    expect(keys(await get('/backups?service=shop_db&node=w2', ADMIN))).toEqual([K.dbW2]);
    expect(keys(await get('/backups?node=id-w2', ADMIN))).toEqual([K.web, K.dbW2]);
    expect(keys(await get('/backups?volume=shop_db-cache', ADMIN))).toEqual([K.cache]);
    expect(keys(await get('/backups?volume=web-data&node=odd_host', ADMIN))).toEqual([K.odd]);
    // a node that left the swarm still has its archives in the bucket
    expect(keys(await get('/backups?node=gone', ADMIN))).toEqual([]);
  });

  it('pages with limit and before=<next>, each archive once', async () => {
    const seen: string[] = [];
    let url = '/backups?limit=3';
    for (;;) {
      const r = await get(url, ADMIN);
      expect(r.statusCode).toBe(200);
      seen.push(...keys(r));
      const next = r.json().next;
      if (!next) break;
      url = `/backups?limit=3&before=${encodeURIComponent(next)}`;
    }
    expect(seen).toEqual([K.odd, K.other, K.web, K.cache, K.dbNew, K.dbW2, K.dbOld]);
  });

  it('a label token sees only the volumes of services it may back up or restore', async () => {
    // backup token of shop_db (and update token of other): shop_db's volumes, both mounted ones
    expect(keys(await get('/backups', DB_TOKEN))).toEqual([K.cache, K.dbNew, K.dbW2, K.dbOld]);
    expect(keys(await get('/backups?service=shop_db', DB_TOKEN))).toEqual([K.dbNew, K.dbW2, K.dbOld]);
    // restore token of web: web-data, on every node
    expect(keys(await get('/backups', RESTORER))).toEqual([K.odd, K.web]);
    expect(keys(await get(`/backups?token=${RESTORER}&volume=shop_db-data`))).toEqual([]);
  });

  it('a service it may not read, or that does not exist: 403 alike; admin: 404 for a missing service', async () => {
    for (const svc of ['other', 'web', 'nope']) {
      const r = await get(`/backups?service=${svc}`, DB_TOKEN);
      expect(r.statusCode).toBe(403);
      expect(r.json().error.code).toBe('FORBIDDEN');
      expect(r.body).not.toContain('other-data');
    }
    const missing = await get('/backups?service=nope', ADMIN);
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('NOT_FOUND');
  });

  it('no token 401; a token that grants nothing 403; a token that may read no archive 403', async () => {
    expect((await get('/backups')).statusCode).toBe(401);
    expect((await get('/backups', 'nobody')).statusCode).toBe(403);
    const updateOnly = await apiFixture({ services: [fakeService('other', { 'swarm-utils.update.token': 'upd' }, { spec: mounts('other-data') })], nodes, kinds: JOB_KINDS, env: s3.env(PREFIX) });
    try {
      const r = await updateOnly.app.inject({ url: '/backups', headers: { authorization: 'Bearer upd' } });
      expect(r.statusCode).toBe(403);
      expect(r.json().error.message).toContain('may neither back up nor restore');
    } finally {
      await updateOnly.close();
    }
  });

  it('is described in /docs with its query parameters', async () => {
    const doc = (await get('/docs', ADMIN)).json();
    const params = doc.paths['/backups'].get.parameters.map((p: { name: string }) => p.name);
    expect(params).toEqual(expect.arrayContaining(['service', 'volume', 'node', 'limit', 'before']));
  });

  it.each([
    ['limit=0', 'limit'],
    ['limit=1001', 'limit'],
    ['limit=ten', 'limit'],
    ['before=notes.txt', 'before'],
    ['volume=a%20b', 'volume'],
    ['service=..%2Fx', 'service'],
    ['node=-x', 'node'],
    ['page=2', 'page'],
  ])('?%s: 400 VALIDATION naming the field %s', async (query, field) => {
    const r = await get(`/backups?${query}`, ADMIN);
    expect(r.statusCode, r.body).toBe(400);
    expect(r.json().error.code).toBe('VALIDATION');
    expect(r.json().error.details.map((d: { field: string }) => d.field)).toContain(field);
  });
});

describe('GET /backups without a reachable bucket', () => {
  it('S3 not configured: 422 UNSUPPORTED naming the variables', async () => {
    const g = await apiFixture({ services, nodes, kinds: JOB_KINDS });
    try {
      const r = await g.app.inject({ url: '/backups', headers: { authorization: `Bearer ${ADMIN}` } });
      expect(r.statusCode).toBe(422);
      expect(r.json().error).toMatchObject({ code: 'UNSUPPORTED', message: expect.stringContaining('SWARM_UTILS_S3_BUCKET_NAME') });
    } finally {
      await g.close();
    }
  });

  it('S3 unreachable: 502 S3_ERROR naming the endpoint, never the secret', async () => {
    const env = { ...s3.env(PREFIX), SWARM_UTILS_S3_DOMAIN: '127.0.0.1:1', SWARM_UTILS_S3_SECRET_ACCESS_KEY: 'never-shown-secret' };
    const g = await apiFixture({ services, nodes, kinds: JOB_KINDS, env });
    try {
      const r = await g.app.inject({ url: '/backups', headers: { authorization: `Bearer ${ADMIN}` } });
      expect(r.statusCode).toBe(502);
      expect(r.json().error.code).toBe('S3_ERROR');
      expect(r.json().error.message).toContain('127.0.0.1:1');
      expect(r.body).not.toContain('never-shown-secret');
      expect(g.logText()).not.toContain('never-shown-secret');
    } finally {
      await g.close();
    }
  });
});

describe('the bucket listing', () => {
  it('follows ListObjectsV2 pages to the end, only directly under the path', async () => {
    const bucket = await openBucket(testConfig(s3.env(PREFIX)).s3, { pageSize: 2 });
    try {
      const all = await bucket.list();
      expect(all.map((o) => o.key).sort()).toEqual([...Object.values(K), key('notes.txt'), key('w1_shop_db-data_latest.tar.gz')].sort());
      expect((await bucket.list('w1_shop_db-data_')).map((o) => o.key).sort()).toEqual([K.dbOld, K.dbNew, key('w1_shop_db-data_latest.tar.gz')].sort());
    } finally {
      bucket.close();
    }
  });

  it('the newest archive of one node and volume (what a restore or drill takes without a key): ours only, that volume only', async () => {
    const s3cfg = testConfig(s3.env(PREFIX)).s3;
    const store = createObjectStore(s3cfg);
    const newest = async (node: string, volume: string) => (await archivesOf(store, s3cfg.path, volume, node))[0] ?? null;
    try {
      expect((await newest('w1', 'shop_db-data'))?.key).toBe(K.dbNew);
      expect(await newest('w2', 'shop_db-data')).toMatchObject({ key: K.dbW2, size: `archive ${K.dbW2}`.length, encrypted: null });
      expect((await newest('odd_host', 'web-data'))?.key).toBe(K.odd);
      // `shop_db` is a prefix of shop_db-data's name, not a volume with archives
      expect(await newest('w1', 'shop_db')).toBeNull();
      expect(await newest('w9', 'shop_db-data')).toBeNull();
    } finally {
      store.close();
    }
  });

  it('deletes one object; deleting a missing one is no error', async () => {
    await s3.put(key('w9_tmp_2026-01-01T00-00-00Z.tar.gz'));
    const bucket = await openBucket(testConfig(s3.env(PREFIX)).s3);
    try {
      await bucket.remove(key('w9_tmp_2026-01-01T00-00-00Z.tar.gz'));
      await bucket.remove(key('w9_tmp_2026-01-01T00-00-00Z.tar.gz'));
      expect((await bucket.list('w9_')).map((o) => o.key)).toEqual([]);
    } finally {
      bucket.close();
    }
  });
});

describe('drill results (the shape the drill job records)', () => {
  const row = (over: Partial<Parameters<typeof outcomesOf>[0]>) => ({
    id: 7,
    targetKind: 'service',
    target: 'shop_db',
    state: 'succeeded',
    params: '{}',
    result: null,
    finishedAt: 1000,
    errorCode: null,
    errorMessage: null,
    ...over,
  });

  it('one archive: the result is the entry; node and volume come from the key when it does not name them', () => {
    expect(outcomesOf(row({ result: JSON.stringify({ key: K.dbOld, files: 3, bytes: 9, ok: true }) }))).toEqual([
      { jobId: 7, at: 1000, key: K.dbOld, ok: true, service: 'shop_db', node: 'w1', volume: 'shop_db-data', files: 3, bytes: 9, error: null },
    ]);
  });

  it('several archives under `drills`, each with its own service, node, volume and error', () => {
    const result = {
      drills: [
        { service: 'a', node: 'n1', volume: 'v1', key: 'k1', files: 1, bytes: 2, ok: true },
        { service: 'b', node: 'n2', volume: 'v2', key: 'k2', files: 0, bytes: 0, expected: { files: 5, bytes: 9 }, ok: false, error: { code: 'DRILL_FAILED', message: 'gzip: unexpected EOF' } },
        { key: 'no-ok-field' },
      ],
    };
    const out = outcomesOf(row({ targetKind: 'all', target: null, state: 'failed', result: JSON.stringify(result) }));
    expect(out.map((o) => [o.service, o.node, o.volume, o.key, o.ok, o.error])).toEqual([
      ['a', 'n1', 'v1', 'k1', true, null],
      ['b', 'n2', 'v2', 'k2', false, 'DRILL_FAILED: gzip: unexpected EOF'],
    ]);
  });

  it('a failed drill job that recorded no entry counts against the key it was asked for; without one, nothing', () => {
    const failed = row({ state: 'failed', params: JSON.stringify({ key: K.dbNew }), errorCode: 'DRILL_FAILED', errorMessage: 'truncated' });
    expect(outcomesOf(failed)).toMatchObject([{ key: K.dbNew, ok: false, node: 'w1', volume: 'shop_db-data', error: 'DRILL_FAILED: truncated' }]);
    expect(outcomesOf(row({ state: 'failed', errorCode: 'S3_ERROR' }))).toEqual([]);
    expect(outcomesOf(row({ result: 'not json' }))).toEqual([]);
  });

  it('per key: the last drill and the last successful one, under either spelling of an encrypted key', () => {
    const db = openDb(tempDbPath());
    drillJob(db, { service: 'shop_db', state: 'succeeded', finishedAt: 1000, result: { key: K.dbNew, files: 1, bytes: 1, ok: true } });
    drillJob(db, { service: 'shop_db', state: 'failed', finishedAt: 3000, result: { key: K.dbNew.replace(/\.gpg$/, ''), files: 0, bytes: 0, ok: false } });
    drillJob(db, { service: 'shop_db', state: 'succeeded', finishedAt: 2000, result: { key: K.dbOld, files: 1, bytes: 1, ok: true } });
    const by = drillsByKey(drillOutcomes(db));
    expect(by(K.dbNew)).toMatchObject({ verifiedAt: 1000, last: { at: 3000, ok: false } });
    expect(by(K.dbOld)).toMatchObject({ verifiedAt: 2000, last: { at: 2000, ok: true } });
    expect(by(K.web)).toEqual({ verifiedAt: null, last: null });
    expect(lastVerified(drillOutcomes(db))).toEqual([{ service: 'shop_db', volume: 'shop_db-data', node: 'w1', at: 2000 }]);
  });
});

describe('/metrics: swarm_utils_backup_last_verified_timestamp_seconds', () => {
  const METRIC = 'swarm_utils_backup_last_verified_timestamp_seconds';
  const task = (serviceId: string, nodeId: string): TaskInfo => ({
    id: `t-${serviceId}-${nodeId}`,
    serviceId,
    nodeId,
    state: 'running',
    desiredState: 'running',
    containerId: 'c',
    error: null,
    message: null,
    exitCode: null,
    image: '',
    serviceVersion: null,
    createdAt: '2026-01-01T00:00:00Z',
    updatedAt: '2026-01-01T00:00:00Z',
  });
  const docker = fakeDocker({
    listServices: async () => services,
    listNodes: async () => nodes,
    listTasks: async (id) => (id === 'id-shop_db' ? [task(id, 'id-w1'), task(id, 'id-w2')] : []),
  });
  const series = async (metrics: Metrics) => {
    const family = parsePrometheus((await metrics.render()).body).find((m) => m.name === METRIC);
    expect(family?.type).toBe('GAUGE');
    return Object.fromEntries(family!.metrics.map((m) => [`${m.labels!.service}/${m.labels!.volume}/${m.labels!.node}`, Number(m.value)]));
  };

  it('0 before any drill; then the end of the last successful drill per service, volume and node (failed drills do not count)', async () => {
    const db = openDb(tempDbPath());
    const metrics = createMetrics(db, { docker });
    expect(await series(metrics)).toEqual({ 'shop_db/shop_db-data/w1': 0, 'shop_db/shop_db-data/w2': 0 });
    const t1 = Date.parse('2026-02-01T00:00:00Z');
    drillJob(db, { service: 'shop_db', state: 'succeeded', finishedAt: t1, result: { key: K.dbOld, files: 1, bytes: 1, ok: true } });
    drillJob(db, { service: 'shop_db', state: 'failed', finishedAt: t1 + 5000, result: { key: K.dbNew, files: 0, bytes: 0, ok: false } });
    drillJob(db, { service: 'shop_db', state: 'failed', finishedAt: t1 + 9000, params: { key: K.dbW2 }, error: { code: 'DRILL_FAILED', message: 'x' } });
    expect(await series(metrics)).toEqual({ 'shop_db/shop_db-data/w1': t1 / 1000, 'shop_db/shop_db-data/w2': 0 });
  });

  it('Docker unreachable: the series on record stay, and the scrape still answers', async () => {
    const db = openDb(tempDbPath());
    const t1 = Date.parse('2026-02-01T00:00:00Z');
    drillJob(db, { service: 'shop_db', state: 'succeeded', finishedAt: t1, result: { key: K.dbOld, files: 1, bytes: 1, ok: true } });
    const down = fakeDocker({ listServices: () => Promise.reject(new Error('connect ENOENT /var/run/docker.sock')) });
    expect(await series(createMetrics(db, { docker: down }))).toEqual({ 'shop_db/shop_db-data/w1': t1 / 1000 });
  });
});
