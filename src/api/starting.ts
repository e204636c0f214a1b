/**
 * What answers on the port while start-up waits for the bucket's state copy (docs/upgrading.md "S3 down
 * at start-up"): the process listens at once, so Docker's health check and the operator see it alive.
 *   GET /healthz   200 {status: 'ok', version, starting: true}
 *   GET /readyz    503, the stateCopy check names the wait (since when, the last error; never a secret)
 *   GET /jobs      an admin token: 200 with no jobs (this process has no database yet); else 401/503
 *   anything else  503 STATE_COPY_UNAVAILABLE with what it waits for
 * The real API takes the port over the moment the database is known. Every answer closes its
 * connection, so no client keeps one to this server into the switch.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { Config } from '../config.js';
import type { BucketWait } from '../state/takeover.js';

export interface StartingServer {
  /** records what start-up waits for (each failed read of the bucket) */
  waiting(wait: BucketWait): void;
  close(): Promise<void>;
}

const sha = (t: string) => crypto.createHash('sha256').update(t).digest();

function isAdmin(token: string, admins: readonly string[]): boolean {
  const h = sha(token);
  let ok = false;
  for (const a of admins) ok = crypto.timingSafeEqual(h, sha(a)) || ok;
  return ok;
}

export async function startStartingServer(config: Pick<Config, 'host' | 'port' | 'adminTokens' | 'queryToken'>, version: string): Promise<StartingServer> {
  const startedAt = new Date().toISOString();
  let wait: BucketWait | null = null;
  const waitText = () =>
    wait
      ? `waiting for the bucket since ${wait.since}, last error: ${wait.lastError}` +
        (wait.haveLocal ? ' (the local database is used after SWARM_UTILS_STATE_COPY_START_TIMEOUT)' : ' (there is no local database: start-up waits until the bucket answers)')
      : `waiting for the bucket since ${startedAt}, last error: none yet (the first read is under way)`;
  const send = (res: http.ServerResponse, code: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', connection: 'close' });
    res.end(text);
  };
  const error = (res: http.ServerResponse, code: number, errCode: string, message: string) => send(res, code, { error: { code: errCode, message } });

  const server = http.createServer((req, res) => {
    // the body is read to its end (and dropped): a client still sending gets its answer, not a reset
    req.resume();
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const route = `${req.method} ${url.pathname.replace(/\/+$/, '') || '/'}`;
      if (route === 'GET /healthz') return send(res, 200, { status: 'ok', version, starting: true });
      if (route === 'GET /readyz') return send(res, 503, { status: 'not ready', checks: { stateCopy: { ok: false, message: waitText() } } });
      if (route === 'GET /jobs') {
        const h = req.headers.authorization;
        const m = typeof h === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
        const q = url.searchParams.get('token');
        if (!m && q && !config.queryToken) return error(res, 401, 'UNAUTHORIZED', 'the ?token= query parameter is switched off here (SWARM_UTILS_QUERY_TOKEN=false): send Authorization: Bearer <token>');
        const token = m?.[1] ?? q;
        if (!token) return error(res, 401, 'UNAUTHORIZED', 'a token is required: Authorization: Bearer <token>');
        if (isAdmin(token, config.adminTokens)) return send(res, 200, { jobs: [], next: null });
      }
      return error(res, 503, 'STATE_COPY_UNAVAILABLE', `swarm-utils is starting and cannot take this request yet: ${waitText()}; try again when GET /readyz answers 200`);
    });
  });
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    waiting: (w) => {
      wait = w;
    },
    close: () =>
      new Promise<void>((resolve) => {
        // every answer closes its connection: what is in flight finishes, nothing idles
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
