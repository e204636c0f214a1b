// A local s3rver for unit tests: the real S3 protocol (paged ListObjectsV2, DeleteObject) on a loopback
// port, with its own data directory, gone when closed. It runs as a child process with
// --openssl-legacy-provider: s3rver makes ListObjectsV2 continuation tokens with DES, which OpenSSL 3
// refuses otherwise (a truncated listing would answer 500).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ListBucketsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

export interface LocalS3 {
  /** SWARM_UTILS_S3_* for a server or a test config, path `prefix` */
  env: (prefix?: string) => Record<string, string>;
  put: (key: string, body?: string) => Promise<void>;
  client: S3Client;
  close: () => Promise<void>;
}

export const LOCAL_BUCKET = 'unit-backups';
const S3RVER = fileURLToPath(new URL('../../node_modules/s3rver/bin/s3rver.js', import.meta.url));

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

export async function startLocalS3(): Promise<LocalS3> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'swarm-utils-s3-'));
  const port = await freePort();
  const args = ['--openssl-legacy-provider', S3RVER, '--directory', directory, '--address', '127.0.0.1', '--port', String(port), '--silent', '--configure-bucket', LOCAL_BUCKET];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d) => (err += String(d)));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const client = new S3Client({
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    maxAttempts: 1,
  });
  const close = async () => {
    client.destroy();
    if (proc.exitCode === null) proc.kill('SIGTERM');
    await exited;
    fs.rmSync(directory, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const r = await client.send(new ListBucketsCommand({}));
      if (r.Buckets?.some((b) => b.Name === LOCAL_BUCKET)) break;
    } catch {
      /* not listening yet */
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      await close();
      throw new Error(`s3rver did not start: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    env: (prefix = '') => ({
      SWARM_UTILS_S3_DOMAIN: `127.0.0.1:${port}`,
      SWARM_UTILS_S3_HTTPS: 'false',
      SWARM_UTILS_S3_BUCKET_NAME: LOCAL_BUCKET,
      SWARM_UTILS_S3_ACCESS_KEY: 'S3RVER',
      SWARM_UTILS_S3_SECRET_ACCESS_KEY: 'S3RVER',
      SWARM_UTILS_S3_PATH: prefix,
    }),
    put: async (key, body = 'x') => {
      await client.send(new PutObjectCommand({ Bucket: LOCAL_BUCKET, Key: key, Body: body }));
    },
    client,
    close,
  };
}
