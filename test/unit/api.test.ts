import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { AppError } from '../../src/errors.js';
import type { JobKind } from '../../src/engine/types.js';
import type { SubmitCheck } from '../../src/api/jobs-service.js';
import { sleep } from '../../src/engine/limits.js';
import { apiFixture, fakeService, type ApiFixture } from '../helpers/api-fixture.js';

const ADMIN = 'admin-token';
const WEB_TOKEN = 'web-label-token-123';

let release: () => void = () => undefined;
const testUpdate: JobKind & SubmitCheck = {
  type: 'update',
  locks: (t) => [`update_service_${t.name}`],
  steps: (job) => [
    {
      name: 'work',
      run: async () => {
        if (job.params.image === 'registry.example.com/app:fail') throw new AppError('UPDATE_FAILED', 'rollout paused: task exited');
        if (job.params.image === 'registry.example.com/app:hold') await new Promise<void>((r) => (release = r));
        return { output: 'ok' };
      },
    },
  ],
};

let f: ApiFixture;
beforeEach(async () => {
  f = await apiFixture({
    services: [fakeService('web', { 'swarm-utils.update.token': `other,${WEB_TOKEN},` }), fakeService('db', { 'swarm-utils.update.token': 'db-token' })],
    kinds: { update: testUpdate },
    env: { SWARM_UTILS_LOCK_TIMEOUT: '300' },
  });
});
afterEach(async () => {
  release();
  await f.close();
});

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const post = (url: string, body: unknown, headers: Record<string, string> = bearer(ADMIN)) =>
  f.app.inject({ method: 'POST', url, payload: body as object, headers });

describe('authorization', () => {
  it('no token: 401 with the error shape', async () => {
    const r = await post('/jobs', { type: 'update', service: 'web' }, {});
    expect(r.statusCode).toBe(401);
    expect(r.json()).toMatchObject({ error: { code: 'UNAUTHORIZED' }, requestId: expect.any(String) });
  });

  it('unknown token: 403 whether the service exists or not', async () => {
    const a = await post('/jobs', { type: 'update', service: 'web' }, bearer('nope'));
    const b = await post('/jobs', { type: 'update', service: 'missing' }, bearer('nope'));
    expect([a.statusCode, b.statusCode]).toEqual([403, 403]);
    expect(a.json().error.code).toBe('FORBIDDEN');
    expect(b.json().error.message).not.toContain('does not exist');
  });

  it('admin gets 404 for a missing service', async () => {
    const r = await post('/jobs', { type: 'update', service: 'missing' });
    expect(r.statusCode).toBe(404);
    expect(r.json().error.code).toBe('NOT_FOUND');
  });

  it('a label token acts on its own service only, by header or query', async () => {
    const own = await post('/jobs', { type: 'update', service: 'web' }, bearer(WEB_TOKEN));
    expect(own.statusCode).toBe(202);
    expect(own.headers.location).toBe(`/jobs/${own.json().id}`);
    const viaQuery = await f.app.inject({ method: 'POST', url: `/update?service=web&token=${WEB_TOKEN}` });
    expect(viaQuery.statusCode).toBe(202);
    const other = await post('/jobs', { type: 'update', service: 'db' }, bearer(WEB_TOKEN));
    expect(other.statusCode).toBe(403);
  });

  it('a label token cannot read jobs of other services, and lists only its own', async () => {
    const dbJob = (await post('/jobs', { type: 'update', service: 'db' })).json();
    const webJob = (await post('/jobs', { type: 'update', service: 'web' })).json();
    expect((await f.app.inject({ url: `/jobs/${dbJob.id}`, headers: bearer(WEB_TOKEN) })).statusCode).toBe(403);
    expect((await f.app.inject({ url: `/jobs/${webJob.id}`, headers: bearer(WEB_TOKEN) })).statusCode).toBe(200);
    expect((await f.app.inject({ url: `/jobs/99999`, headers: bearer(WEB_TOKEN) })).statusCode).toBe(403);
    expect((await f.app.inject({ url: `/jobs/99999`, headers: bearer(ADMIN) })).statusCode).toBe(404);
    const list = (await f.app.inject({ url: '/jobs', headers: bearer(WEB_TOKEN) })).json();
    expect(list.jobs.map((j: { target: { service: string } }) => j.target.service)).toEqual(['web']);
    const all = (await f.app.inject({ url: '/jobs', headers: bearer(ADMIN) })).json();
    expect(all.jobs.map((j: { id: number }) => j.id)).toEqual([webJob.id, dbJob.id]);
  });

  it('never writes a token to the log', async () => {
    await post('/jobs', { type: 'update', service: 'web' }, bearer(WEB_TOKEN));
    await f.app.inject({ method: 'POST', url: `/update?service=web&token=${WEB_TOKEN}` });
    await f.app.inject({ method: 'POST', url: `/update?service=db&token=${WEB_TOKEN}` });
    await f.app.inject({ url: `/jobs?token=${ADMIN}` });
    await sleep(50);
    const log = f.logText();
    expect(log).toContain('"url":"/update?service=web&token=[redacted]"');
    expect(log).not.toContain(WEB_TOKEN);
    expect(log).not.toContain(ADMIN);
  });
});

describe('the job object and waitRes', () => {
  it('answers the job object of the contract', async () => {
    const r = await post('/jobs', { type: 'update', service: 'web', image: 'registry.example.com/app:v2' });
    const job = r.json();
    expect(Object.keys(job)).toEqual(
      expect.arrayContaining(['id', 'type', 'state', 'target', 'params', 'source', 'parentId', 'createdAt', 'startedAt', 'finishedAt', 'error', 'result', 'steps']),
    );
    expect(job).toMatchObject({ type: 'update', target: { service: 'web' }, params: { image: 'registry.example.com/app:v2' }, source: 'api', parentId: null, error: null });
    expect(job.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('waitRes=true: 200 when the job succeeded, 502 when it failed', async () => {
    const ok = await post('/jobs', { type: 'update', service: 'web', waitRes: true });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ state: 'succeeded', steps: [{ name: 'work', state: 'done', output: 'ok' }] });
    const bad = await f.app.inject({ method: 'POST', url: '/update?service=web&image=registry.example.com/app:fail&waitRes=true', headers: bearer(ADMIN) });
    expect(bad.statusCode).toBe(502);
    expect(bad.json()).toMatchObject({ state: 'failed', error: { code: 'UPDATE_FAILED' } });
  });

  it('two simultaneous updates of one service: one runs, the other 409 LOCK_TIMEOUT', async () => {
    const first = await post('/jobs', { type: 'update', service: 'web', image: 'registry.example.com/app:hold' });
    expect(first.statusCode).toBe(202);
    const second = await post('/jobs', { type: 'update', service: 'web', waitRes: true });
    expect(second.statusCode).toBe(409);
    expect(second.json().error.code).toBe('LOCK_TIMEOUT');
    release();
  });

  it('504 when the job is still running at the wait limit', async () => {
    await f.close();
    f = await apiFixture({ services: [fakeService('web')], kinds: { update: testUpdate }, waitLimitMs: 200 });
    const r = await post('/jobs', { type: 'update', service: 'web', image: 'registry.example.com/app:hold', waitRes: true });
    expect(r.statusCode).toBe(504);
    expect(r.json().state).toBe('running');
    release();
  });

  it('cancel of a queued job ends it canceled', async () => {
    const hold = (await post('/jobs', { type: 'update', service: 'web', image: 'registry.example.com/app:hold' })).json();
    await sleep(50);
    const queued = (await post('/jobs', { type: 'update', service: 'web' })).json();
    const c = await f.app.inject({ method: 'POST', url: `/jobs/${queued.id}/cancel`, headers: bearer(ADMIN) });
    expect(c.statusCode).toBe(200);
    expect(c.json()).toMatchObject({ state: 'canceled', error: { code: 'CANCELED' } });
    release();
    expect((await f.app.inject({ url: `/jobs/${hold.id}`, headers: bearer(ADMIN) })).json().state).not.toBe('canceled');
  });
});

describe('bad input: 400 with field details, never 500', () => {
  const cases: [string, string | object, string?][] = [
    ['unknown field', { type: 'update', service: 'web', bogus: 1 }],
    ['invalid service name', { type: 'update', service: 'web; rm -rf /' }],
    ['wrong type of field', { type: 'update', service: 'web', waitRes: 'yes' }],
    ['unknown job type', { type: 'explode', service: 'web' }],
    ['no target', { type: 'update' }],
    ['two targets', { type: 'update', service: 'web', all: true }],
    ['node for update', { type: 'update', node: 'n1' }],
    ['image for clean', { type: 'clean', service: 'web', image: 'a:b' }],
    ['invalid image', { type: 'update', service: 'web', image: 'UPPER/Case:!!' }],
    ['array body', [1, 2]],
    ['broken JSON', '{"type": "update", ', 'application/json'],
  ];
  for (const [name, payload, ctype] of cases) {
    it(name, async () => {
      const r = await f.app.inject({
        method: 'POST',
        url: '/jobs',
        headers: { ...bearer(ADMIN), 'content-type': ctype ?? 'application/json' },
        payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
      });
      expect(r.statusCode).toBe(400);
      expect(r.json().error.code).toBe('VALIDATION');
      expect(r.json().requestId).toEqual(expect.any(String));
    });
  }

  it('field details name the field', async () => {
    const r = await post('/jobs', { type: 'update', service: 'web', bogus: 1 });
    expect(JSON.stringify(r.json().error.details)).toContain('bogus');
    const q = await f.app.inject({ method: 'POST', url: '/update?service=bad%20name', headers: bearer(ADMIN) });
    expect(q.statusCode).toBe(400);
    expect(q.json().error.details[0].field).toBe('service');
  });

  it('a huge body', async () => {
    const r = await post('/jobs', { type: 'update', service: 'web', image: 'a'.repeat(200_000) });
    expect(r.statusCode).toBe(400);
    expect(r.json().error.code).toBe('VALIDATION');
  });

  it('bad ids and queries', async () => {
    for (const url of ['/jobs/abc', '/jobs/-1', '/jobs?limit=0', '/jobs?state=weird', '/jobs?unknown=1']) {
      const r = await f.app.inject({ url, headers: bearer(ADMIN) });
      expect(r.statusCode, url).toBe(400);
    }
  });

  it('unknown route: 404 in the error shape', async () => {
    const r = await f.app.inject({ url: '/nope' });
    expect(r.statusCode).toBe(404);
    expect(r.json().error.code).toBe('NOT_FOUND');
  });
});

describe('health and docs', () => {
  it('healthz needs no token; docs describe the routes (for a token that grants something)', async () => {
    expect((await f.app.inject({ url: '/healthz' })).statusCode).toBe(200);
    expect((await f.app.inject({ url: '/docs' })).statusCode).toBe(401);
    expect((await f.app.inject({ url: '/docs', headers: bearer('nope') })).statusCode).toBe(403);
    const docs = (await f.app.inject({ url: '/docs', headers: bearer(WEB_TOKEN) })).json();
    expect(Object.keys(docs.paths)).toEqual(expect.arrayContaining(['/jobs', '/jobs/{id}', '/update', '/healthz', '/readyz']));
  });
});

describe('status and metrics', () => {
  it('service status shows the service to its label token with token labels redacted', async () => {
    const r = await f.app.inject({ url: '/service/status?service=web&logs=5', headers: bearer(WEB_TOKEN) });
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body.service.name).toBe('web');
    expect(body.labels['swarm-utils.update.token']).toBe('[redacted]');
    expect(r.body).not.toContain(WEB_TOKEN);
    expect((await f.app.inject({ url: '/service/status?service=db', headers: bearer(WEB_TOKEN) })).statusCode).toBe(403);
    expect((await f.app.inject({ url: '/service/status?service=nope', headers: bearer(ADMIN) })).statusCode).toBe(404);
    expect((await f.app.inject({ url: '/service/status', headers: bearer(ADMIN) })).statusCode).toBe(400);
  });

  it('metrics: Prometheus text for admins, counting jobs by type and state', async () => {
    await post('/jobs', { type: 'update', service: 'web', waitRes: true });
    const r = await f.app.inject({ url: '/metrics', headers: bearer(ADMIN) });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toContain('text/plain');
    expect(r.body).toMatch(/swarm_utils_jobs\{type="update",state="succeeded"\} 1/);
    expect((await f.app.inject({ url: '/metrics', headers: bearer(WEB_TOKEN) })).statusCode).toBe(403);
  });
});

describe('backup submission checks (real backup kind, fake Docker)', () => {
  it('backup all without S3 settings: 422 UNSUPPORTED naming the variables, nothing created', async () => {
    const { backupKind } = await import('../../src/jobs/backup.js');
    const g = await apiFixture({ services: [fakeService('db', { 'swarm-utils.backup.enable': 'true' })], kinds: { backup: backupKind } });
    try {
      const r = await g.app.inject({ method: 'POST', url: '/backup?all=true', headers: bearer(ADMIN) });
      expect(r.statusCode).toBe(422);
      expect(r.json().error).toMatchObject({ code: 'UNSUPPORTED', message: expect.stringContaining('SWARM_UTILS_S3_DOMAIN') });
      const list = await g.app.inject({ url: '/jobs', headers: bearer(ADMIN) });
      expect(list.json().jobs).toEqual([]);
    } finally {
      await g.close();
    }
  });
});
