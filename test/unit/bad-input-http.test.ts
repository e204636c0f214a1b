// The bad requests of SPEC section 6, one after another through a real HTTP client (fetch) against one
// listening server: each gets its 4xx with error.code, none a closed connection, and the server still
// answers afterwards. inject() cannot show this: it has no socket.
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { JobKind } from '../../src/engine/types.js';
import type { SubmitCheck } from '../../src/api/jobs-service.js';
import { apiFixture, fakeService, type ApiFixture } from '../helpers/api-fixture.js';

const ADMIN = 'admin-token';
const clean: JobKind & SubmitCheck = { type: 'clean', locks: () => [], steps: () => [{ name: 'work', run: async () => ({ output: 'ok' }) }] };

let f: ApiFixture;
let base = '';
beforeAll(async () => {
  f = await apiFixture({ services: [fakeService('web', { 'swarm-utils.clean.enable': 'true' })], kinds: { clean } });
  await f.app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(f.app.server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await f.close();
});

const auth = { authorization: `Bearer ${ADMIN}` };
const json = { ...auth, 'content-type': 'application/json' };

interface Case {
  name: string;
  path: string;
  init: RequestInit;
  status: number | number[];
  code: string;
}

const big = (n: number) => JSON.stringify({ type: 'clean', service: 'web', pad: 'x'.repeat(n) });

const cases: Case[] = [
  { name: 'malformed JSON', path: '/jobs', init: { method: 'POST', headers: json, body: '{"type": "clean", ' }, status: 400, code: 'VALIDATION' },
  { name: 'a 5 MB JSON body', path: '/jobs', init: { method: 'POST', headers: json, body: big(5 * 1024 * 1024) }, status: [400, 413], code: 'VALIDATION' },
  { name: 'an empty JSON body', path: '/jobs', init: { method: 'POST', headers: json, body: '' }, status: 400, code: 'VALIDATION' },
  { name: 'a body that is not JSON', path: '/jobs', init: { method: 'POST', headers: { ...auth, 'content-type': 'text/plain' }, body: 'type=clean' }, status: [400, 415], code: 'VALIDATION' },
  { name: 'JSON that is not an object', path: '/jobs', init: { method: 'POST', headers: json, body: '[1,2]' }, status: 400, code: 'VALIDATION' },
  { name: 'a prototype-polluting body', path: '/jobs', init: { method: 'POST', headers: json, body: '{"type":"clean","service":"web","__proto__":{"admin":true}}' }, status: 400, code: 'VALIDATION' },
  { name: 'an unknown job type', path: '/jobs', init: { method: 'POST', headers: json, body: '{"type":"explode","service":"web"}' }, status: 400, code: 'VALIDATION' },
  { name: 'a job id that is not a number', path: '/jobs/abc', init: { headers: auth }, status: 400, code: 'VALIDATION' },
  { name: 'a negative limit', path: '/jobs?limit=-1', init: { headers: auth }, status: 400, code: 'VALIDATION' },
  { name: 'a 100 kB query string', path: `/jobs?service=${'s'.repeat(100_000)}`, init: { headers: auth }, status: [400, 414, 431], code: 'VALIDATION' },
  { name: 'a 40 kB header', path: '/jobs', init: { headers: { ...auth, 'x-pad': 'p'.repeat(40_000) } }, status: [400, 431], code: 'VALIDATION' },
  { name: 'no token', path: '/jobs', init: {}, status: 401, code: 'UNAUTHORIZED' },
  { name: 'an unknown route', path: '/nope', init: { headers: auth }, status: 404, code: 'NOT_FOUND' },
  { name: 'a 5 MB body without a token', path: '/jobs', init: { method: 'POST', headers: { 'content-type': 'application/json' }, body: big(5 * 1024 * 1024) }, status: [401, 413], code: 'UNAUTHORIZED|VALIDATION' },
  { name: 'a malformed query form', path: '/clean?service=web&waitRes=maybe', init: { method: 'POST', headers: auth }, status: 400, code: 'VALIDATION' },
];

describe('bad input through a real HTTP client, in sequence on one server', () => {
  it('every bad request gets its 4xx with error.code; none closes the connection unanswered', async () => {
    const failures: string[] = [];
    for (const c of cases) {
      let r: Response;
      try {
        r = await fetch(base + c.path, c.init);
      } catch (e) {
        failures.push(`${c.name}: no answer (${(e as Error).cause ? String((e as any).cause?.code ?? (e as any).cause) : (e as Error).message})`);
        continue;
      }
      const text = await r.text();
      let body: any = null;
      try {
        body = JSON.parse(text);
      } catch {
        /* reported below */
      }
      const statuses = Array.isArray(c.status) ? c.status : [c.status];
      if (!statuses.includes(r.status)) failures.push(`${c.name}: status ${r.status} (expected ${statuses.join('|')}): ${text.slice(0, 200)}`);
      else if (!body?.error?.code || !new RegExp(`^(${c.code})$`).test(body.error.code)) failures.push(`${c.name}: body ${text.slice(0, 200)}`);
    }
    expect(failures).toEqual([]);
    // and the server still answers
    const ok = await fetch(`${base}/jobs`, { method: 'POST', headers: json, body: '{"type":"clean","service":"web"}' });
    expect(ok.status).toBe(202);
  });

  it('a client still sending a 5 MB body slowly reads the 4xx (the connection is not reset under it)', async () => {
    const port = Number(new URL(base).port);
    const answer = await new Promise<string>((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1');
      let got = '';
      sock.on('data', (d) => {
        got += String(d);
        // the whole answer is in: the connection may stay open (keep-alive)
        if (got.includes('"requestId"')) {
          sock.destroy();
          resolve(got);
        }
      });
      sock.on('error', (e) => (got ? resolve(got) : reject(e)));
      sock.on('close', () => resolve(got));
      sock.write(`POST /jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\nContent-Type: application/json\r\nContent-Length: ${5 * 1024 * 1024}\r\n\r\n`);
      let sent = 0;
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const pump = () => {
        if (sent >= 5 * 1024 * 1024 || sock.destroyed) return;
        sent += chunk.length;
        if (sock.write(chunk)) setImmediate(pump);
        else sock.once('drain', pump);
      };
      pump();
    });
    expect(answer).toMatch(/^HTTP\/1\.1 4\d\d /);
    expect(answer).toContain('"code"');
  });

  it('a plain node:http client gets a JSON 4xx for a huge URL', async () => {
    const port = Number(new URL(base).port);
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: `/jobs?x=${'y'.repeat(50_000)}`, headers: auth }, (r) => {
        let b = '';
        r.on('data', (d) => (b += d));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body: b }));
      });
      req.on('error', reject);
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(JSON.parse(res.body).error.code).toBeTruthy();
  });
});
