// SWARM_UTILS_QUERY_TOKEN (SPEC section 14): `false` refuses `?token=` with 401 UNAUTHORIZED, the
// Authorization header always works; the default keeps the original design's query form. Through a real
// HTTP client against the listening app, as a proxy or CI would call it.
import { afterEach, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import type { JobKind } from '../../src/engine/types.js';
import type { SubmitCheck } from '../../src/api/jobs-service.js';
import { apiFixture, fakeService, type ApiFixture } from '../helpers/api-fixture.js';

const ADMIN = 'admin-token';
const noop: JobKind & SubmitCheck = { type: 'update', locks: () => [], steps: () => [{ name: 'work', run: async () => ({ output: 'ok' }) }] };

let f: ApiFixture | null = null;
afterEach(async () => {
  await f?.close();
  f = null;
});

async function serve(env: Record<string, string>): Promise<string> {
  f = await apiFixture({ services: [fakeService('web', { 'swarm-utils.update.token': 'web-token' })], kinds: { update: noop }, env });
  await f.app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(f.app.server.address() as AddressInfo).port}`;
}

async function call(url: string, init: RequestInit = {}) {
  const r = await fetch(url, init);
  return { status: r.status, json: (await r.json()) as any };
}

describe('SWARM_UTILS_QUERY_TOKEN', () => {
  it('false: ?token= gets 401 UNAUTHORIZED (admin and label tokens alike), the Bearer header works; no token in the log', async () => {
    const base = await serve({ SWARM_UTILS_QUERY_TOKEN: 'false' });
    for (const path of [`/jobs?token=${ADMIN}`, '/service/status?service=web&token=web-token', `/metrics?token=${ADMIN}`]) {
      const r = await call(base + path);
      expect(r.status, path).toBe(401);
      expect(r.json.error.code).toBe('UNAUTHORIZED');
      expect(r.json.error.message).toContain('SWARM_UTILS_QUERY_TOKEN=false');
    }
    // the original design's query form of a submission is refused before any job exists
    const post = await call(`${base}/update?service=web&token=${ADMIN}`, { method: 'POST' });
    expect(post.status).toBe(401);
    expect((await call(`${base}/jobs`, { headers: { authorization: `Bearer ${ADMIN}` } })).json.jobs).toEqual([]);

    expect((await call(`${base}/jobs`, { headers: { authorization: `Bearer ${ADMIN}` } })).status).toBe(200);
    const byHeader = await call(`${base}/update?service=web`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(byHeader.status).toBe(202);
    // the header wins over a query token that is also there
    expect((await call(`${base}/jobs?token=whatever`, { headers: { authorization: `Bearer ${ADMIN}` } })).status).toBe(200);
    // without any token the message names only the header
    const none = await call(`${base}/jobs`);
    expect(none.status).toBe(401);
    expect(none.json.error.message).not.toContain('?token=');
    expect(f!.logText()).not.toContain(ADMIN);
    expect(f!.logText()).not.toContain('web-token');
  });

  it('default (true): ?token= works as in the original design', async () => {
    const base = await serve({});
    expect((await call(`${base}/jobs?token=${ADMIN}`)).status).toBe(200);
    expect((await call(`${base}/update?service=web&token=${ADMIN}`, { method: 'POST' })).status).toBe(202);
    expect((await call(`${base}/jobs`)).json.error.message).toContain('?token=');
  });

  it('refuses a value that is not a boolean at start-up', async () => {
    const { loadConfig } = await import('../../src/config.js');
    expect(loadConfig({ SWARM_UTILS_QUERY_TOKEN: 'no' })).toMatchObject({ ok: false, problems: ['SWARM_UTILS_QUERY_TOKEN: must be "true" or "false" (got "no")'] });
  });
});
