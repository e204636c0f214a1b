/**
 * A self-signed S3 endpoint (a MinIO with its own CA): an s3rver over HTTPS on the test bridge with
 * a certificate signed by a CA made for this run, which no image or host trusts. With
 * SWARM_UTILS_S3_CA_CERT_FILE a backup on a worker uploads (the helper got the CA) and is verified
 * (swarm-utils' own client got it); without it the helper's upload fails on the certificate.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { S3, dockerFor } from '../helpers/testbed.js';
import { startServer, type RunningServer } from '../helpers/server.js';
import { createAppService, execInTask, removeServices, runningTasks, serverEnv, uid } from '../helpers/cluster.js';
import { makeTestCa } from '../helpers/tls.js';
import { s3ClientConfig } from '../../src/s3.js';
import { loadConfig } from '../../src/config.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const id = uid();
const APP = `ca-app-${id}`;
const BUCKET = 'tls-bucket';
const SECRET = `s3-secret-${id}`;
const ca = makeTestCa('10.77.0.1');
const dataDir = mkdtempSync(path.join(tmpdir(), 'swarm-utils-s3tls-'));
let s3rver: ChildProcess | null = null;
let port = 0;
const servers: RunningServer[] = [];

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '10.77.0.1', () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
    srv.on('error', reject);
  });
}

const env = (extra: Record<string, string>) =>
  serverEnv({
    SWARM_UTILS_S3_DOMAIN: `10.77.0.1:${port}`,
    SWARM_UTILS_S3_HTTPS: 'true',
    SWARM_UTILS_S3_BUCKET_NAME: BUCKET,
    SWARM_UTILS_S3_ACCESS_KEY: S3.accessKey,
    SWARM_UTILS_S3_SECRET_ACCESS_KEY: SECRET,
    SWARM_UTILS_S3_PATH: `ca-${id}`,
    ...extra,
  });

beforeAll(async () => {
  port = await freePort();
  s3rver = spawn(
    path.join(ROOT, 'node_modules/.bin/s3rver'),
    ['--directory', dataDir, '--address', '10.77.0.1', '--port', String(port), '--key', ca.serverKeyPath, '--cert', ca.serverCertPath, '--configure-bucket', BUCKET, '--silent'],
    { stdio: 'ignore' },
  );
  const listening = () =>
    new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '10.77.0.1');
      socket.on('connect', () => resolve(socket.destroy() !== undefined)).on('error', () => resolve(false));
    });
  const end = Date.now() + 30_000;
  while (!(await listening())) {
    if (Date.now() > end) throw new Error('the HTTPS s3rver did not start');
    await new Promise((r) => setTimeout(r, 200));
  }
  await createAppService(APP, {
    constraints: ['node.hostname==su-worker-2'],
    mounts: [{ Type: 'volume', Source: `ca-data-${id}`, Target: '/data' }],
    labels: { 'swarm-utils.backup.enable': 'true' },
  });
});

afterAll(async () => {
  for (const s of servers) await s.stop();
  await removeServices(APP);
  // the helper containers Docker 20.10 leaves behind keep the volume in use (moby/moby#44312)
  await new Promise((r) => setTimeout(r, 2000));
  const w2 = dockerFor('su-worker-2');
  for (const c of await w2.listContainers({ all: true, filters: { volume: [`ca-data-${id}`] } })) await w2.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  await w2.getVolume(`ca-data-${id}`).remove().catch(() => undefined);
  s3rver?.kill('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(ca.dir, { recursive: true, force: true });
});

describe('a self-signed S3 endpoint: SWARM_UTILS_S3_CA_CERT', () => {
  it('with the CA file, a backup on a worker uploads over TLS and is verified; the object is in the bucket', async () => {
    const [task] = await runningTasks(APP);
    await execInTask(task, ['sh', '-c', 'echo over-tls > /data/tls.txt']);
    const s = await startServer(env({ SWARM_UTILS_S3_CA_CERT_FILE: ca.caCertPath }));
    servers.push(s);
    const r = await s.api('POST', '/jobs', { type: 'backup', service: APP, waitRes: true });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const [archive] = r.json.result.archives;
    expect(archive).toMatchObject({ node: 'su-worker-2' });
    expect(archive.size).toBeGreaterThan(0);
    // read back with a client that trusts the same CA, built the way swarm-utils builds its own
    const cfg = loadConfig({ SWARM_UTILS_S3_DOMAIN: `10.77.0.1:${port}`, SWARM_UTILS_S3_BUCKET_NAME: BUCKET, SWARM_UTILS_S3_ACCESS_KEY: 'a', SWARM_UTILS_S3_SECRET_ACCESS_KEY: 'b', SWARM_UTILS_S3_CA_CERT_FILE: ca.caCertPath });
    if (!cfg.ok) throw new Error(cfg.problems.join('\n'));
    const client = new S3Client(s3ClientConfig(cfg.config.s3, { accessKeyId: S3.accessKey, secretAccessKey: S3.secretKey }));
    const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: archive.key }));
    client.destroy();
    expect(head.ContentLength).toBe(archive.size);
    expect(s.output()).not.toContain(SECRET);
  });

  it('without it, the helper refuses the certificate: S3_ERROR naming the certificate problem', async () => {
    const s = await startServer(env({}));
    servers.push(s);
    const r = await s.api('POST', '/jobs', { type: 'backup', service: APP, waitRes: true });
    expect(r.status, JSON.stringify(r.json)).toBe(502);
    expect(r.json.error.code).toBe('S3_ERROR');
    expect(r.json.steps.find((x: any) => x.name === 'archive').state).toBe('failed');
    expect(r.json.error.message).toMatch(/certificate|SELF_SIGNED|UNABLE_TO_VERIFY/i);
  });
});
