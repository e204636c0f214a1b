// The pausable proxy the cluster tests put in front of the Docker socket and S3 (test/helpers/proxy.ts).
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { describe, it, expect, afterEach } from 'vitest';
import { startProxy, type Proxy } from '../helpers/proxy.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

async function backend(): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'su-proxy-'));
  const sock = path.join(dir, 'backend.sock');
  const srv = http.createServer((req, res) => res.end(`${req.method} ${req.url}`));
  await new Promise<void>((r) => srv.listen(sock, r));
  closers.push(() => new Promise((r) => srv.close(() => r())));
  return sock;
}

async function proxied(): Promise<Proxy> {
  const target = await backend();
  const p = await startProxy({ listen: { path: `${target}.proxy` }, target: { path: target } });
  closers.push(() => p.close());
  return p;
}

function get(socketPath: string, url: string, ms = 500): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: url, agent: false, timeout: ms }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

describe('pausable proxy', () => {
  it('forwards, holds everything while paused, and lets it through on resume', async () => {
    const p = await proxied();
    expect(await get(p.address, '/a')).toBe('GET /a');
    p.pause();
    const held = get(p.address, '/b', 3000);
    await new Promise((r) => setTimeout(r, 300));
    p.resume();
    expect(await held).toBe('GET /b');
    p.pause();
    await expect(get(p.address, '/c', 200)).rejects.toThrow('timeout');
    expect(p.requests).toEqual(['GET /a', 'GET /b', 'GET /c']);
  });

  it('hangs matching requests only, pauses on a matching request after N, refuses connections', async () => {
    const p = await proxied();
    p.hang(/^GET \/distribution\//);
    await expect(get(p.address, '/distribution/x/json', 200)).rejects.toThrow('timeout');
    expect(await get(p.address, '/info')).toBe('GET /info');
    p.hang(null);
    let fired = false;
    p.pauseOn(/\/update/, { after: 1, then: () => (fired = true) });
    expect(await get(p.address, '/s/update')).toBe('GET /s/update');
    await expect(get(p.address, '/s/update', 200)).rejects.toThrow('timeout');
    expect([fired, p.paused]).toEqual([true, true]);
    p.resume();
    p.refuse(true);
    await expect(get(p.address, '/x')).rejects.toThrow();
  });

  it('holds only the connections whose request matches, until resume', async () => {
    const p = await proxied();
    p.holdOn(/^PUT \/bucket\/.*\.tar\.gz$/);
    const put = (url: string, ms: number) =>
      new Promise<string>((resolve, reject) => {
        const req = http.request({ socketPath: p.address, path: url, method: 'PUT', agent: false, timeout: ms }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve(body));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
        req.end('data');
      });
    const held = put('/bucket/a.tar.gz', 3000);
    expect(await put('/bucket/.swarm-utils/state.db.gz', 500)).toBe('PUT /bucket/.swarm-utils/state.db.gz');
    expect(await get(p.address, '/other')).toBe('GET /other');
    await new Promise((r) => setTimeout(r, 300));
    p.resume();
    expect(await held).toBe('PUT /bucket/a.tar.gz');
    // resume ends the holding
    expect(await put('/bucket/b.tar.gz', 500)).toBe('PUT /bucket/b.tar.gz');
  });
});
