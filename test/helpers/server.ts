import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import Dockerode from 'dockerode';
import { tempDbPath } from './engine-fixture.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface RunningServer {
  url: string;
  port: number;
  dbPath: string;
  proc: ChildProcess;
  /** everything the process wrote, stdout and stderr */
  output: () => string;
  /** SIGKILL, and wait for the exit */
  kill9: () => Promise<void>;
  stop: () => Promise<void>;
  /** fetch with the admin token */
  api: (method: string, url: string, body?: unknown, token?: string) => Promise<{ status: number; json: any; headers: Headers }>;
}

export const ADMIN_TOKEN = 'cluster-admin-token';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** the real server (`src/main.ts`) as a child process, so a test can kill -9 it and start it again on the same database */
/** `root`: another checkout of swarm-utils to run (test/cluster/schema-refusal.test.ts runs a "newer" build) */
export async function startServer(env: Record<string, string> = {}, opts: { dbPath?: string; port?: number; root?: string; early?: boolean } = {}): Promise<RunningServer> {
  const port = opts.port ?? (await freePort());
  const dbPath = opts.dbPath ?? tempDbPath();
  let out = '';
  const root = opts.root ?? ROOT;
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/main.ts')], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      SWARM_UTILS_PORT: String(port),
      SWARM_UTILS_HOST: '127.0.0.1',
      SWARM_UTILS_DB_PATH: dbPath,
      SWARM_UTILS_ADMIN_TOKEN_LIST: ADMIN_TOKEN,
      SWARM_UTILS_LOG_LEVEL: 'debug',
      // the copy of the state to the bucket (README "Losing its manager") makes servers that share an S3 path
      // one installation: off unless a test asks for it (test/cluster/takeover.test.ts)
      SWARM_UTILS_STATE_COPY: 'false',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (d) => (out += String(d)));
  proc.stderr!.on('data', (d) => (out += String(d)));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const url = `http://127.0.0.1:${port}`;
  const api: RunningServer['api'] = async (method, u, body, token = ADMIN_TOKEN) => {
    const r = await fetch(url + u, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await r.text();
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: r.status, json, headers: r.headers };
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`server exited with ${proc.exitCode ?? proc.signalCode}:\n${out}`);
    try {
      // the port answers /healthz with starting: true while start-up reads the bucket (docs/upgrading.md):
      // the API is up once that flag is gone, unless the test wants the start-up answerer (early)
      const r = await fetch(`${url}/healthz`);
      if (r.ok && (opts.early || !((await r.json().catch(() => ({}))) as { starting?: boolean }).starting)) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error(`server did not start within 60 s:\n${out}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    port,
    dbPath,
    proc,
    output: () => out,
    api,
    kill9: async () => {
      proc.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      // a job holding a service down gives it back first: up to SWARM_UTILS_SHUTDOWN_TIMEOUT (30 s by default)
      await Promise.race([exited, new Promise((r) => setTimeout(r, 35_000))]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
      await exited;
      await removeHelpersOf(dbPath);
    },
  };
}

/**
 * A stopped server leaves the helpers of its running jobs for the next process to reattach (as in
 * production). A test server's database is thrown away, so its helpers go with it.
 */
async function removeHelpersOf(dbPath: string): Promise<void> {
  let instance: string | undefined;
  try {
    const db = new Database(dbPath, { readonly: true });
    instance = db.prepare("SELECT value FROM meta WHERE key = 'instance'").pluck().get() as string | undefined;
    db.close();
  } catch {
    return;
  }
  if (!instance) return;
  const docker = new Dockerode();
  const helpers = await docker.listServices({ filters: { label: ['swarm-utils.helper'] } }).catch(() => []);
  for (const h of helpers) {
    if (h.Spec?.Name?.startsWith(`swarm-utils-${instance}-`)) await docker.getService(h.ID).remove().catch(() => undefined);
  }
}

/** polls GET /jobs/:id until the job is final (or `until` holds) */
export async function waitJob(s: RunningServer, id: number, ms = 180_000, until?: (job: any) => boolean): Promise<any> {
  const end = Date.now() + ms;
  for (;;) {
    const { json } = await s.api('GET', `/jobs/${id}`);
    if (until ? until(json) : ['succeeded', 'failed', 'canceled'].includes(json.state)) return json;
    if (Date.now() > end) throw new Error(`job ${id} not done in ${ms} ms: ${JSON.stringify(json)}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}
