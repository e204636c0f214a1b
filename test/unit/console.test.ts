import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { insertJob, finishJob, setJobResult } from '../../src/db/jobs.js';
import Fastify from 'fastify';
import { consoleRoutes, loadConsoleFiles } from '../../src/api/routes/console.js';
import { errorHandler } from '../../src/api/errors.js';
import { JOB_KINDS } from '../../src/jobs/index.js';
import type { Db } from '../../src/db/index.js';
import type { TaskInfo } from '../../src/swarm/port.js';
import { apiFixture, fakeNode, fakeService, type ApiFixture } from '../helpers/api-fixture.js';
import { drillJob } from '../helpers/drill-rows.js';

const ADMIN = 'admin-token';
const WEB = 'web-backup-token';
const NODE_TOKEN = 'node-clean-token';
const S3_ENV = {
  SWARM_UTILS_S3_DOMAIN: 's3.example.com',
  SWARM_UTILS_S3_BUCKET_NAME: 'b',
  SWARM_UTILS_S3_ACCESS_KEY: 'k',
  SWARM_UTILS_S3_SECRET_ACCESS_KEY: 's',
};

const volumeSpec = (...names: string[]) => ({ TaskTemplate: { ContainerSpec: { Mounts: names.map((n) => ({ Type: 'volume', Source: n, Target: `/${n}` })) } } });
const task = (serviceId: string, state: string, desiredState = 'running'): TaskInfo => ({
  id: `t-${Math.random()}`,
  serviceId,
  nodeId: 'id-w1',
  state,
  desiredState,
  containerId: null,
  error: null,
  message: null,
  exitCode: null,
  image: 'x',
  serviceVersion: 1,
  createdAt: '',
  updatedAt: '',
});

const services = [
  fakeService(
    'web',
    {
      'swarm-utils.backup.enable': 'true',
      'swarm-utils.backup.token': `x,${WEB}`,
      'swarm-utils.update.token': 'other-token',
      'swarm-utils.update.registry-password': 'hunter2',
      'com.example.unrelated': 'not ours',
    },
    { replicas: 2, spec: volumeSpec('web-data', 'web-cache') },
  ),
  fakeService('db', { 'swarm-utils.update.token': 'db-token', 'swarm-utils.clean.enable': 'true' }, { spec: volumeSpec('db-data') }),
  fakeService('swarm-utils-abc-42-helper', { 'swarm-utils.helper': '42' }),
];
const tasks: Record<string, TaskInfo[]> = {
  'id-web': [task('id-web', 'running'), task('id-web', 'running'), task('id-web', 'failed', 'shutdown')],
  'id-db': [task('id-db', 'starting')],
};

let f: ApiFixture;
let db: Db;
beforeEach(async () => {
  f = await apiFixture({
    services,
    nodes: [fakeNode('w1', { 'swarm-utils.clean.token-list': NODE_TOKEN }), fakeNode('w2')],
    kinds: JOB_KINDS,
    env: S3_ENV,
    docker: { listTasks: async (id) => tasks[id] ?? [] },
  });
  db = f.db;
});
afterEach(async () => {
  await f.close();
});

const get = (url: string, token?: string) => f.app.inject({ url, headers: token ? { authorization: `Bearer ${token}` } : {} });

/** a finished backup job of `service` as the backup kind records it (result.archives) */
function backupJob(service: string, state: 'succeeded' | 'failed', finishedAt: number, archives: { node: string; volume: string; key: string; size: number }[]) {
  const job = insertJob(db, { type: 'backup', targetKind: 'service', target: service, source: 'api', locks: [] });
  setJobResult(db, job.id, { archives });
  finishJob(db, job.id, state, finishedAt);
  return job.id;
}

describe('GET /services', () => {
  it('admin: every service but helpers, own labels redacted, replicas, the actions and why one is refused', async () => {
    const r = await get('/services', ADMIN);
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body.services.map((s: { name: string }) => s.name)).toEqual(['db', 'web']);
    const web = body.services[1];
    expect(web.labels).toEqual({
      'swarm-utils.backup.enable': 'true',
      'swarm-utils.backup.token': '[redacted]',
      'swarm-utils.update.token': '[redacted]',
      'swarm-utils.update.registry-password': '[redacted]',
    });
    expect(r.body).not.toContain('hunter2');
    expect(r.body).not.toContain(WEB);
    expect(web.replicas).toEqual({ desired: 2, running: 2 });
    expect(web.actions).toEqual([
      { type: 'clean', refusal: { code: 'NOT_ENABLED', message: expect.stringContaining('swarm-utils.clean.enable') } },
      { type: 'backup', refusal: null },
      { type: 'update', refusal: null },
      // an admin may restore, drill and migrate too (the console offers restore and drill; migrate is for the API)
      { type: 'restore', refusal: null },
      { type: 'drill', refusal: null },
      { type: 'migrate', refusal: null },
    ]);
    const dbSvc = body.services[0];
    expect(dbSvc.replicas).toEqual({ desired: 1, running: 0 });
    expect(dbSvc.actions.find((a: { type: string }) => a.type === 'backup').refusal.code).toBe('NOT_ENABLED');
    // clean.enable without clean.exec: refused with the reason the API would give
    expect(dbSvc.actions.find((a: { type: string }) => a.type === 'clean').refusal.message).toContain('swarm-utils.clean.exec');
    expect(body.nodes.map((n: { hostname: string }) => n.hostname)).toEqual(['w1', 'w2']);
    expect(body.all).toEqual([
      { type: 'clean', refusal: null },
      { type: 'backup', refusal: null },
      { type: 'drill', refusal: null },
    ]);
  });

  it('last successful backup per volume and node, from the jobs table; never-backed-up volumes listed', async () => {
    backupJob('web', 'succeeded', Date.parse('2026-01-01T03:00:00Z'), [
      { node: 'w1', volume: 'web-data', key: 'w1_web-data_old.tar.gz', size: 10 },
      { node: 'w2', volume: 'web-data', key: 'w2_web-data_old.tar.gz', size: 11 },
    ]);
    const newer = backupJob('web', 'succeeded', Date.parse('2026-01-02T03:00:00Z'), [{ node: 'w1', volume: 'web-data', key: 'w1_web-data_new.tar.gz', size: 12 }]);
    backupJob('web', 'failed', Date.parse('2026-01-03T03:00:00Z'), [{ node: 'w1', volume: 'web-data', key: 'w1_web-data_failed.tar.gz', size: 1 }]);
    backupJob('db', 'succeeded', Date.parse('2026-01-03T03:00:00Z'), [{ node: 'w1', volume: 'db-data', key: 'db.tar.gz', size: 5 }]);
    const web = (await get('/services', ADMIN)).json().services.find((s: { name: string }) => s.name === 'web');
    expect(web.volumeError).toBeNull();
    expect(web.volumes).toEqual([
      { volume: 'web-cache', node: null, lastBackup: null, lastDrill: null },
      { volume: 'web-data', node: 'w1', lastBackup: { at: '2026-01-02T03:00:00.000Z', jobId: newer, key: 'w1_web-data_new.tar.gz', size: 12 }, lastDrill: null },
      {
        volume: 'web-data',
        node: 'w2',
        lastBackup: { at: '2026-01-01T03:00:00.000Z', jobId: expect.any(Number), key: 'w2_web-data_old.tar.gz', size: 11 },
        lastDrill: null,
      },
    ]);
  });

  it('the last drill of each volume and node, whatever its outcome (from the drill jobs’ results)', async () => {
    backupJob('web', 'succeeded', Date.parse('2026-01-01T03:00:00Z'), [
      { node: 'w1', volume: 'web-data', key: 'w1_web-data_2026-01-01T03-00-00Z.tar.gz', size: 10 },
      { node: 'w2', volume: 'web-data', key: 'w2_web-data_2026-01-01T03-00-00Z.tar.gz', size: 11 },
    ]);
    const ok = drillJob(db, {
      service: 'web',
      state: 'succeeded',
      finishedAt: Date.parse('2026-01-02T00:00:00Z'),
      result: { key: 'w1_web-data_2026-01-01T03-00-00Z.tar.gz', files: 2, bytes: 5, ok: true },
    });
    const bad = drillJob(db, {
      service: 'web',
      state: 'failed',
      finishedAt: Date.parse('2026-01-03T00:00:00Z'),
      result: { drills: [{ service: 'web', node: 'w2', volume: 'web-data', key: 'w2_web-data_2026-01-01T03-00-00Z.tar.gz', files: 0, bytes: 0, ok: false, error: 'gzip: truncated' }] },
    });
    // another service's drill of a volume of the same name does not count
    drillJob(db, { service: 'db', state: 'succeeded', finishedAt: Date.parse('2026-01-04T00:00:00Z'), result: { key: 'w1_web-data_2026-01-01T03-00-00Z.tar.gz', files: 2, bytes: 5, ok: true } });
    const web = (await get('/services', ADMIN)).json().services.find((s: { name: string }) => s.name === 'web');
    const drillOf = (node: string | null) => web.volumes.find((v: { node: string | null; volume: string }) => v.volume === 'web-data' && v.node === node)?.lastDrill;
    expect(drillOf('w1')).toEqual({ at: '2026-01-02T00:00:00.000Z', ok: true, jobId: ok, key: 'w1_web-data_2026-01-01T03-00-00Z.tar.gz', error: null });
    expect(drillOf('w2')).toEqual({ at: '2026-01-03T00:00:00.000Z', ok: false, jobId: bad, key: 'w2_web-data_2026-01-01T03-00-00Z.tar.gz', error: 'gzip: truncated' });
    expect(web.volumes.find((v: { volume: string }) => v.volume === 'web-cache').lastDrill).toBeNull();
  });

  it('a restore token sees the volumes of the service it may restore', async () => {
    // the update token of web, now also its restore token (without it, the next test shows volumes: null)
    services[0]!.labels['swarm-utils.restore.token'] = 'other-token';
    try {
      const web = (await get('/services', 'other-token')).json().services.find((s: { name: string }) => s.name === 'web');
      expect(web.volumes?.map((v: { volume: string }) => v.volume)).toEqual(['web-cache', 'web-data']);
    } finally {
      delete services[0]!.labels['swarm-utils.restore.token'];
    }
  });

  it('a label token sees only its services, their backups only with the backup right, and its all jobs', async () => {
    backupJob('db', 'succeeded', Date.now(), [{ node: 'w1', volume: 'db-data', key: 'db.tar.gz', size: 5 }]);
    const r = await get('/services', WEB);
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body.services.map((s: { name: string }) => s.name)).toEqual(['web']);
    expect(body.services[0].actions).toEqual([{ type: 'backup', refusal: null }]);
    expect(body.services[0].volumes).toHaveLength(2);
    expect(body.nodes).toEqual([]);
    expect(body.all).toEqual([{ type: 'backup', refusal: null }]);
    expect(r.body).not.toContain('db-data');

    const upd = (await get('/services', 'other-token')).json();
    expect(upd.services[0]).toMatchObject({ name: 'web', volumes: null, actions: [{ type: 'update', refusal: null }] });
    expect(upd.all).toEqual([]);
  });

  it('a node token sees no service, its node, and clean all', async () => {
    const body = (await get(`/services?token=${NODE_TOKEN}`)).json();
    expect(body).toEqual({ services: [], nodes: [expect.objectContaining({ hostname: 'w1' })], all: [{ type: 'clean', refusal: null }] });
  });

  it('a volume-list label naming an unknown volume is shown as the reason, not a 500', async () => {
    services[0]!.labels['swarm-utils.backup.volume-list'] = 'nope';
    try {
      const web = (await get('/services', ADMIN)).json().services.find((s: { name: string }) => s.name === 'web');
      expect(web.volumeError).toContain('"nope"');
      expect(web.volumes).toEqual([]);
    } finally {
      delete services[0]!.labels['swarm-utils.backup.volume-list'];
    }
  });

  it('no token: 401; a token that grants nothing: 403; bad query: 400', async () => {
    expect((await get('/services')).statusCode).toBe(401);
    const r = await get('/services', 'nobody');
    expect(r.statusCode).toBe(403);
    expect(r.json().error).toMatchObject({ code: 'FORBIDDEN', message: expect.stringContaining('grants nothing') });
    const bad = await get('/services?all=1', ADMIN);
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('VALIDATION');
  });

  it('backup without S3: the action and backup all say why', async () => {
    const g = await apiFixture({ services, kinds: JOB_KINDS, docker: { listTasks: async () => [] } });
    try {
      const body = (await g.app.inject({ url: '/services', headers: { authorization: `Bearer ${ADMIN}` } })).json();
      const web = body.services.find((s: { name: string }) => s.name === 'web');
      expect(web.actions.find((a: { type: string }) => a.type === 'backup').refusal).toMatchObject({ code: 'UNSUPPORTED', message: expect.stringContaining('S3') });
      expect(body.all.find((a: { type: string }) => a.type === 'backup').refusal.code).toBe('UNSUPPORTED');
    } finally {
      await g.close();
    }
  });

  it('is described in /docs', async () => {
    const doc = (await get('/docs', ADMIN)).json();
    expect(doc.paths['/services'].get.description).toContain('labels redacted');
    expect(doc.paths['/'].get.description).toContain('web console');
  });
});

describe('the console page and its files', () => {
  it('GET / serves the page with no token, a strict CSP and no caching without revalidation', async () => {
    const r = await get('/');
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(r.headers['content-security-policy']).toContain("script-src 'self'");
    expect(r.headers['content-security-policy']).not.toContain('unsafe-inline');
    expect(r.headers['cache-control']).toBe('no-cache');
    expect(r.body).toContain('<script type="module" src="/console/app.js">');
    // no CDN: every script, style and image the page names is served by the process
    const refs = [...r.body.matchAll(/(?:src|href)="([^"#]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(2);
    for (const ref of refs) {
      expect(ref.startsWith('/console/')).toBe(true);
      expect((await get(ref)).statusCode).toBe(200);
    }
    const again = await f.app.inject({ url: '/', headers: { 'if-none-match': String(r.headers.etag) } });
    expect(again.statusCode).toBe(304);
  });

  it('every module the scripts import is served, with a JavaScript type', async () => {
    const files = loadConsoleFiles();
    const scripts = [...files.keys()].filter((k) => k.endsWith('.js'));
    expect(scripts).toContain('console/app.js');
    for (const name of scripts) {
      const r = await get(`/${name}`);
      expect(r.headers['content-type']).toBe('text/javascript; charset=utf-8');
      for (const m of r.body.matchAll(/from '\.\/([\w-]+\.js)'/g)) expect(files.has(`console/${m[1]}`), `${name} imports ${m[1]}`).toBe(true);
      // text from the API becomes text nodes only
      expect(r.body).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
    }
  });

  it('only the console files: unknown names and paths outside answer 404 in the error shape', async () => {
    for (const url of ['/console/nope.js', '/console/..%2fpackage.json', '/console/%2e%2e/%2e%2e/package.json', '/console/', '/index.html']) {
      const r = await get(url);
      expect(r.statusCode, url).toBe(404);
      expect(r.json().error.code, url).toBe('NOT_FOUND');
    }
  });

  it('a missing public/ directory: the API still starts, / answers 404 with a clear message', async () => {
    expect(loadConsoleFiles('/nonexistent-dir').size).toBe(0);
    const app = Fastify();
    app.setErrorHandler(errorHandler);
    await app.register(consoleRoutes, { dir: '/nonexistent-dir' });
    try {
      const r = await app.inject({ url: '/' });
      expect(r.statusCode).toBe(404);
      expect(r.json().error).toEqual({ code: 'NOT_FOUND', message: expect.stringContaining('not installed') });
    } finally {
      await app.close();
    }
  });
});
