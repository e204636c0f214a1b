import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { loadConfig, type Config } from '../../src/config.js';
import { createObjectStore, s3ClientConfig } from '../../src/s3.js';
import { makeTestCa } from '../helpers/tls.js';

interface Recorded {
  method: string;
  url: string;
  host: string;
  authorization: string;
}

/** an S3 stand-in that records what the client sends and answers every HEAD with a 123-byte object */
function recorder(server: http.Server | https.Server) {
  const requests: Recorded[] = [];
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', host: req.headers.host ?? '', authorization: String(req.headers.authorization ?? '') });
    res.writeHead(200, { 'content-length': '123', 'content-type': 'application/gzip', etag: '"x"' });
    res.end();
  });
  return {
    requests,
    listen: () => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port))),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function s3Config(env: Record<string, string>): Config['s3'] {
  const r = loadConfig({
    SWARM_UTILS_S3_BUCKET_NAME: 'backups',
    SWARM_UTILS_S3_ACCESS_KEY: 'AKIDEXAMPLE',
    SWARM_UTILS_S3_SECRET_ACCESS_KEY: 'secret-never-shown',
    ...env,
  });
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return r.config.s3;
}

/** the region of a SigV4 Authorization header's credential scope */
const scopeRegion = (authorization: string) => /Credential=[^/]+\/\d{8}\/([^/]+)\/s3\/aws4_request/.exec(authorization)?.[1];

describe('S3 client: region and addressing', () => {
  const rec = recorder(http.createServer());
  let port = 0;
  beforeAll(async () => {
    port = await rec.listen();
  });
  afterAll(() => rec.close());

  it('signs for the configured region (seen by a request recorder), path-style', async () => {
    const store = createObjectStore(s3Config({ SWARM_UTILS_S3_DOMAIN: `127.0.0.1:${port}`, SWARM_UTILS_S3_HTTPS: 'false', SWARM_UTILS_S3_REGION: 'eu-central-1' }));
    try {
      expect(await store.head('team/n_v_2024-01-02T03-04-05Z.tar.gz')).toEqual({ key: 'team/n_v_2024-01-02T03-04-05Z.tar.gz', size: 123 });
    } finally {
      store.close();
    }
    const req = rec.requests.at(-1)!;
    expect(req.method).toBe('HEAD');
    expect(req.url).toBe('/backups/team/n_v_2024-01-02T03-04-05Z.tar.gz');
    expect(scopeRegion(req.authorization)).toBe('eu-central-1');
  });

  it('signs for us-east-1 when nothing names a region', async () => {
    const store = createObjectStore(s3Config({ SWARM_UTILS_S3_DOMAIN: `127.0.0.1:${port}`, SWARM_UTILS_S3_HTTPS: 'false' }));
    try {
      await store.head('k');
    } finally {
      store.close();
    }
    expect(scopeRegion(rec.requests.at(-1)!.authorization)).toBe('us-east-1');
  });

  /** the request the SDK would send, taken after signing and never sent */
  async function built(s3: Config['s3']): Promise<{ hostname: string; path: string; authorization: string }> {
    const client = new S3Client(s3ClientConfig(s3, { accessKeyId: s3.accessKey!, secretAccessKey: s3.secretAccessKey! }));
    let seen: { hostname: string; path: string; authorization: string } | undefined;
    client.middlewareStack.add(
      () => async (args) => {
        const r = args.request as { hostname: string; path: string; headers: Record<string, string> };
        seen = { hostname: r.hostname, path: r.path, authorization: r.headers.authorization ?? '' };
        throw new Error('captured');
      },
      { step: 'finalizeRequest', priority: 'low' },
    );
    await client.send(new HeadObjectCommand({ Bucket: 'backups', Key: 'k.tar.gz' })).catch(() => undefined);
    client.destroy();
    if (!seen) throw new Error('no request was built');
    return seen;
  }

  it('addresses an AWS endpoint virtual-hosted and signs for the region it names', async () => {
    const req = await built(s3Config({ SWARM_UTILS_S3_DOMAIN: 's3.eu-west-3.amazonaws.com' }));
    expect(req).toMatchObject({ hostname: 'backups.s3.eu-west-3.amazonaws.com', path: '/k.tar.gz' });
    expect(scopeRegion(req.authorization)).toBe('eu-west-3');
  });

  it('follows an explicit addressing style', async () => {
    const path = await built(s3Config({ SWARM_UTILS_S3_DOMAIN: 's3.eu-west-3.amazonaws.com', SWARM_UTILS_S3_ADDRESSING_STYLE: 'path' }));
    expect(path).toMatchObject({ hostname: 's3.eu-west-3.amazonaws.com', path: '/backups/k.tar.gz' });
    const virtual = await built(s3Config({ SWARM_UTILS_S3_DOMAIN: 's3.example.com', SWARM_UTILS_S3_ADDRESSING_STYLE: 'virtual', SWARM_UTILS_S3_REGION: 'auto' }));
    expect(virtual).toMatchObject({ hostname: 'backups.s3.example.com', path: '/k.tar.gz' });
    expect(scopeRegion(virtual.authorization)).toBe('auto');
  });
});

describe('S3 client: a custom CA', () => {
  const ca = makeTestCa('127.0.0.1');
  const rec = recorder(https.createServer({ cert: ca.serverCert, key: ca.serverKey }));
  let port = 0;
  beforeAll(async () => {
    port = await rec.listen();
  });
  afterAll(async () => {
    await rec.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  it('trusts a self-signed endpoint with SWARM_UTILS_S3_CA_CERT_FILE, and fails S3_ERROR without it', async () => {
    const trusted = createObjectStore(s3Config({ SWARM_UTILS_S3_DOMAIN: `127.0.0.1:${port}`, SWARM_UTILS_S3_CA_CERT_FILE: ca.caCertPath }));
    try {
      expect(await trusted.head('k')).toEqual({ key: 'k', size: 123 });
    } finally {
      trusted.close();
    }
    const before = rec.requests.length;
    const untrusted = createObjectStore(s3Config({ SWARM_UTILS_S3_DOMAIN: `127.0.0.1:${port}` }));
    try {
      const err = await untrusted.head('k').then(() => null, (e: unknown) => e as { code?: string; message?: string });
      expect(err?.code).toBe('S3_ERROR');
      expect(err?.message).toMatch(/certificate/i);
      expect(err?.message).not.toContain('secret-never-shown');
    } finally {
      untrusted.close();
    }
    // the TLS handshake failed: no request reached the server
    expect(rec.requests.length).toBe(before);
  });
});
