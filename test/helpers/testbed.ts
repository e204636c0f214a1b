// The test swarm's constants for the cluster tests: the same values as test/swarm/env.sh
// (keep the two in step). test/swarm/up.sh builds the swarm; see README "The test swarm".
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { constants, hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import Dockerode from 'dockerode';

export const STATE_DIR = '/var/lib/swarm-utils-test';
export const SWARM_SCRIPTS_DIR = fileURLToPath(new URL('../swarm/', import.meta.url));

export const REGISTRY = '10.77.0.1:5443';
export const REGISTRY_USER = 'swarmtest';
export const REGISTRY_PASSWORD = 'swarmtest-pw';
/** what dockerode's createService / distribution / pull take as auth */
export const REGISTRY_AUTH = {
  username: REGISTRY_USER,
  password: REGISTRY_PASSWORD,
  serveraddress: REGISTRY,
} as const;

/** s3rver: plain HTTP, path-style only (forcePathStyle: true); it does not check signatures */
export const S3 = {
  endpoint: '10.77.0.1:9000',
  url: 'http://10.77.0.1:9000',
  bucket: 'swarm-utils-test',
  accessKey: 'S3RVER',
  secretKey: 'S3RVER',
  region: 'us-east-1',
} as const;

/**
 * The tag test/swarm/env.sh gives a stand-in built from test/swarm/images/<dir> (su_image_tag):
 * sha-256 over "<path> <sha-256 of the file>" lines in byte order, then "node <major>".
 */
export function imageTag(dir: string): string {
  const root = path.join(SWARM_SCRIPTS_DIR, 'images', dir);
  const files = (readdirSync(root, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
    .filter((d) => d.isFile())
    .map((d) => path.relative(root, path.join(d.parentPath, d.name)))
    .sort((a, b) => (Buffer.from(a) < Buffer.from(b) ? -1 : 1));
  const lines = files.map((f) => `${f} ${createHash('sha256').update(readFileSync(path.join(root, f))).digest('hex')}\n`);
  lines.push(`node ${process.versions.node.split('.')[0]}\n`);
  return createHash('sha256').update(lines.join('')).digest('hex').slice(0, 12);
}

export const IMAGES = {
  /** busybox only */
  busybox: `${REGISTRY}/test/busybox:latest`,
  /** /version holds "v1"; a loop that exits at once on SIGTERM */
  appV1: `${REGISTRY}/test/app:v1`,
  /** /version holds "v2" */
  appV2: `${REGISTRY}/test/app:v2`,
  /** exits with code 1 at once */
  appCrash: `${REGISTRY}/test/app:crash`,
  /** busybox + the docker client, for helpers that mount /var/run/docker.sock */
  dockerCli: `${REGISTRY}/test/docker-cli:latest`,
  /** stand-in for offen/docker-volume-backup (test/swarm/images/backup/backup.mjs) */
  backup: `${REGISTRY}/test/backup:${imageTag('backup')}`,
  /** busybox + the tests' node and its libraries + the CA bundle: stand-in for node:<major>-bookworm-slim */
  node: `${REGISTRY}/test/node:${process.versions.node.split('.')[0]}`,
} as const;

export const MANAGER_SOCKET = '/var/run/docker.sock';

export const WORKERS = [
  { hostname: 'su-worker-1', socket: `${STATE_DIR}/sock/su-worker-1.sock` },
  { hostname: 'su-worker-2', socket: `${STATE_DIR}/sock/su-worker-2.sock` },
] as const;

export type WorkerHostname = (typeof WORKERS)[number]['hostname'];

/**
 * A client of one node's own daemon: 'manager' (or the host's hostname) or a worker's
 * hostname as swarm reports it (`Description.Hostname`).
 */
export function dockerFor(node: WorkerHostname | 'manager' | (string & {})): Dockerode {
  if (node === 'manager' || node === hostname()) return new Dockerode({ socketPath: MANAGER_SOCKET });
  const worker = WORKERS.find((w) => w.hostname === node);
  if (!worker) throw new Error(`no test node named "${node}" (known: manager, ${WORKERS.map((w) => w.hostname).join(', ')})`);
  return new Dockerode({ socketPath: worker.socket });
}

export interface RunResult {
  /** exit code; 128 + signal number when the process was killed by a signal */
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs a command; resolves with its exit code and output whatever the code, rejects only if it cannot start. */
export function run(cmd: string, args: readonly string[] = [], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      {
        cwd: options.cwd,
        env: options.env,
        timeout: options.timeoutMs ?? 0,
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
      },
      (error, stdout, stderr) => {
        if (!error) return resolve({ code: 0, stdout, stderr });
        if (typeof error.code === 'number') return resolve({ code: error.code, stdout, stderr });
        if (error.signal) {
          const signo = constants.signals[error.signal] ?? 0;
          return resolve({ code: 128 + signo, stdout, stderr });
        }
        reject(error); // could not start (ENOENT, EACCES, …)
      },
    );
  });
}

/** Pushes test/app:<tag> with /version holding <marker> (a new digest under that tag). */
export async function pushApp(tag: string, marker: string): Promise<void> {
  const res = await run('bash', [`${SWARM_SCRIPTS_DIR}push-app.sh`, tag, marker], { timeoutMs: 120_000 });
  if (res.code !== 0) {
    throw new Error(`push-app.sh ${tag} ${marker} failed (exit ${res.code}):\n${res.stderr}${res.stdout}`);
  }
}
