/**
 * Tokens and credentials against the real swarm and registry: what a label token costs and sees when it
 * lists thousands of jobs (Docker calls counted by a proxy on the Docker socket), a token that grants
 * nothing, a label holding sha256:<hex> of a token, the metrics token, and registry credentials that go
 * only to their own registry (a recorder stands for "another registry").
 */
import crypto from 'node:crypto';
import net from 'node:net';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { openDb } from '../../src/db/index.js';
import { insertJob } from '../../src/db/jobs.js';
import { IMAGES, REGISTRY, REGISTRY_AUTH } from '../helpers/testbed.js';
import { startServer, type RunningServer } from '../helpers/server.js';
import { createAppService, inspect, manager, removeServices, runningTasks, serverEnv, uid } from '../helpers/cluster.js';
import { tempDbPath } from '../helpers/engine-fixture.js';
import { dockerSocketProxy, type DockerSocketProxy } from '../helpers/proxies.js';

const id = uid();
const WEB = `sec-web-${id}`;
const OTHER = `sec-other-${id}`;
const REG = `sec-reg-${id}`;
const LABEL_TOKEN = `label-token-${id}`;
const UPDATE_TOKEN = `update-token-${id}`;
const METRICS_TOKEN = `metrics-token-${id}`;
const sha = (t: string) => crypto.createHash('sha256').update(t).digest('hex');

let proxy: DockerSocketProxy;
let s: RunningServer;
/** a TCP server that stands for another registry: it only counts what reaches it */
let recorder: net.Server;
let recorded = { connections: 0, bytes: 0 };
let recorderHost = '';
const seeded = { webClean: [] as number[], total: 0 };

beforeAll(async () => {
  await Promise.all([
    createAppService(WEB, {
      labels: {
        'swarm-utils.clean.enable': 'true',
        'swarm-utils.clean.exec': 'echo cleaned-by-label-token',
        // the token is not readable from the label: only its sha-256
        'swarm-utils.clean.token': `someone-else,sha256:${sha(LABEL_TOKEN)}`,
        'swarm-utils.update.token': 'someone-else',
      },
    }),
    createAppService(OTHER, { labels: { 'swarm-utils.clean.token': 'other-token', 'swarm-utils.backup.token': 'other-token' } }),
    createAppService(REG, {
      labels: {
        'swarm-utils.update.token': UPDATE_TOKEN,
        'swarm-utils.update.registry-url': `https://${REGISTRY}`,
        'swarm-utils.update.registry-user': REGISTRY_AUTH.username,
        'swarm-utils.update.registry-password': REGISTRY_AUTH.password,
      },
    }),
  ]);
  recorder = net.createServer((c) => {
    recorded.connections++;
    c.on('data', (d) => (recorded.bytes += d.length));
    c.on('error', () => undefined);
    c.end();
  });
  await new Promise<void>((r) => recorder.listen(0, '10.77.0.1', r));
  recorderHost = `10.77.0.1:${(recorder.address() as net.AddressInfo).port}`;

  // thousands of jobs, written straight into the database the server will open
  const dbPath = tempDbPath();
  const db = openDb(dbPath);
  const nodes: [string, string][] = (await manager.listNodes()).map((n: any) => [n.ID as string, n.Description.Hostname as string]);
  db.transaction(() => {
    for (let i = 0; i < 5000; i++) {
      const row = (type: 'clean' | 'update' | 'backup', targetKind: 'service' | 'node', target: string, targetLabel: string | null = null) =>
        insertJob(db, { type, targetKind, target, targetLabel, source: 'api', locks: [] }, Date.now() - (5000 - i) * 1000);
      if (i % 200 === 7) seeded.webClean.push(row('clean', 'service', WEB).id);
      else if (i % 200 === 9) row('update', 'service', WEB); // web, but not a right this token holds
      else if (i % 3 === 0) row('clean', 'node', nodes[i % nodes.length]![0], nodes[i % nodes.length]![1]);
      else if (i % 3 === 1) row('backup', 'service', OTHER);
      else row('update', 'service', `gone-${i % 50}`);
      seeded.total++;
    }
    db.prepare("UPDATE jobs SET state = 'succeeded', started_at = created_at, finished_at = created_at + 1000").run();
  })();
  db.close();
  proxy = await dockerSocketProxy();
  s = await startServer(serverEnv({ SWARM_UTILS_METRICS_TOKEN_LIST: METRICS_TOKEN, DOCKER_HOST: proxy.dockerHost }), { dbPath });
});

afterAll(async () => {
  await s?.stop();
  await proxy?.close();
  await new Promise((r) => recorder?.close(r));
  await removeServices(WEB, OTHER, REG);
});

/** Docker API requests the server makes while `fn` runs */
async function dockerCalls<T>(fn: () => Promise<T>): Promise<{ result: T; calls: string[] }> {
  await new Promise((r) => setTimeout(r, 300)); // let background calls of earlier requests settle
  const from = proxy.requests.length;
  const result = await fn();
  return { result, calls: proxy.requests.slice(from) };
}

const listings = (calls: string[]) => ({ services: calls.filter((c) => c === 'GET /services').length, nodes: calls.filter((c) => c === 'GET /nodes').length });

describe('tokens on the real swarm', () => {
  it('GET /jobs with a label token over 5000 jobs: one services and one nodes listing, and only the jobs it may see', async () => {
    const { result: r, calls } = await dockerCalls(() => s.api('GET', '/jobs?limit=200', undefined, LABEL_TOKEN));
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(listings(calls)).toEqual({ services: 1, nodes: 1 });
    expect(calls.length).toBeLessThanOrEqual(2);
    expect(r.json.jobs.map((j: any) => j.id)).toEqual([...seeded.webClean].reverse());
    expect(r.json.jobs.every((j: any) => j.type === 'clean' && j.target.service === WEB)).toBe(true);
    expect(r.json.next).toBeNull();
    // a page of it, and the next: the same cost each
    const page = await dockerCalls(() => s.api('GET', '/jobs?limit=10', undefined, LABEL_TOKEN));
    expect(page.result.json.jobs).toHaveLength(10);
    expect(listings(page.calls)).toEqual({ services: 1, nodes: 1 });
    const rest = await s.api('GET', `/jobs?limit=200&before=${page.result.json.next}`, undefined, LABEL_TOKEN);
    expect(rest.json.jobs).toHaveLength(seeded.webClean.length - 10);
    // a job of another service, or of web but of a right it lacks: 403 like a missing one
    const admin = await s.api('GET', '/jobs?limit=200');
    const hidden = admin.json.jobs.find((j: any) => j.target.service === OTHER);
    expect((await s.api('GET', `/jobs/${hidden.id}`, undefined, LABEL_TOKEN)).status).toBe(403);
    expect((await s.api('GET', `/jobs/${seeded.total + 1000}`, undefined, LABEL_TOKEN)).status).toBe(403);
  });

  it('a random token gets 403 on /jobs, /jobs/:id, /service/status, /metrics and every POST route; nothing is created', async () => {
    const before = (await s.api('GET', '/jobs?limit=1')).json.jobs[0].id;
    const random = `random-${crypto.randomUUID()}`;
    const routes: [string, string, unknown?][] = [
      ['GET', '/jobs'],
      ['GET', `/jobs/${seeded.webClean[0]}`],
      ['POST', `/jobs/${seeded.webClean[0]}/cancel`],
      ['GET', `/service/status?service=${WEB}`],
      ['GET', '/metrics'],
      ['POST', '/jobs', { type: 'clean', service: WEB }],
      ['POST', '/jobs', { type: 'backup', all: true }],
      ['POST', '/jobs', { type: 'clean', all: true }],
      ['POST', `/clean?service=${WEB}`],
      ['POST', '/backup?all=true'],
      ['POST', `/update?service=${REG}`],
    ];
    for (const [method, url, body] of routes) {
      for (const token of [random, `sha256:${sha(LABEL_TOKEN)}`]) {
        const r = await s.api(method, url, body, token);
        expect(r.status, `${method} ${url}: ${JSON.stringify(r.json)}`).toBe(403);
        expect(r.json.error.code).toBe('FORBIDDEN');
      }
    }
    for (const url of ['/healthz', '/readyz']) expect((await fetch(`${s.url}${url}?token=${random}`)).status).toBe(200);
    expect((await s.api('GET', '/jobs?limit=1')).json.jobs[0].id).toBe(before);
    expect(s.output()).not.toContain(random);
  });

  it('a label holding sha256:<hex> of a token grants that token: it cleans the service, and only with that right', async () => {
    const r = await s.api('POST', '/jobs', { type: 'clean', service: WEB, waitRes: true }, LABEL_TOKEN);
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.steps[0].output).toContain('cleaned-by-label-token');
    // who asked: a keyed hash, not a prefix of the token's sha-256
    expect(r.json.requestedBy).toMatch(/^[0-9a-f]{12}$/);
    expect(r.json.requestedBy).not.toBe(sha(LABEL_TOKEN).slice(0, 12));
    expect((await s.api('GET', `/jobs/${r.json.id}`, undefined, LABEL_TOKEN)).status).toBe(200);
    expect((await s.api('POST', '/jobs', { type: 'update', service: WEB }, LABEL_TOKEN)).status).toBe(403);
    expect((await s.api('POST', '/jobs', { type: 'clean', service: OTHER }, LABEL_TOKEN)).status).toBe(403);
    const status = await s.api('GET', `/service/status?service=${WEB}`, undefined, LABEL_TOKEN);
    expect(status.status).toBe(200);
    expect(status.json.labels['swarm-utils.clean.token']).toBe('[redacted]');
    expect(s.output()).not.toContain(LABEL_TOKEN);
  });

  it('the metrics token reads /metrics and gets 403 elsewhere', async () => {
    const m = await s.api('GET', '/metrics', undefined, METRICS_TOKEN);
    expect(m.status).toBe(200);
    expect(String(m.json)).toMatch(/swarm_utils_jobs\{type="clean",state="succeeded"\} \d+/);
    for (const url of ['/jobs', `/jobs/${seeded.webClean[0]}`, `/service/status?service=${WEB}`]) {
      expect((await s.api('GET', url, undefined, METRICS_TOKEN)).status, url).toBe(403);
    }
    expect((await s.api('POST', '/jobs', { type: 'clean', service: WEB }, METRICS_TOKEN)).status).toBe(403);
    expect((await s.api('GET', '/metrics', undefined, LABEL_TOKEN)).status).toBe(403);
  });

  it('/jobs/0x10 is a bad id, not job 16', async () => {
    const r = await s.api('GET', '/jobs/0x10');
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe('VALIDATION');
    expect((await s.api('GET', '/jobs/16')).json.id).toBe(16);
  });
});

describe('registry credentials go only to their registry', () => {
  it('registryAuth for one registry and an image of another: 400 VALIDATION, nothing created, the other registry never contacted', async () => {
    recorded = { connections: 0, bytes: 0 };
    const before = await inspect(REG);
    const r = await s.api('POST', '/jobs', {
      type: 'update',
      service: REG,
      image: `${recorderHost}/test/app:v2`,
      registryAuth: { url: `https://${REGISTRY}`, username: REGISTRY_AUTH.username, password: REGISTRY_AUTH.password },
      waitRes: true,
    });
    expect(r.status, JSON.stringify(r.json)).toBe(400);
    expect(r.json.error.code).toBe('VALIDATION');
    expect(r.json.error.message).toContain(recorderHost);
    expect(JSON.stringify(r.json)).not.toContain(REGISTRY_AUTH.password);
    expect((await s.api('GET', `/jobs?service=${REG}`)).json.jobs).toEqual([]);
    expect((await inspect(REG)).Version.Index).toBe(before.Version.Index);
    expect(recorded).toEqual({ connections: 0, bytes: 0 });
  });

  it('an update token cannot send the service’s registry password (its labels) to a host of its choice', async () => {
    recorded = { connections: 0, bytes: 0 };
    const r = await s.api('POST', '/jobs', { type: 'update', service: REG, image: `${recorderHost}/test/app:v2`, waitRes: true }, UPDATE_TOKEN);
    expect(r.status, JSON.stringify(r.json)).toBe(400);
    expect(r.json.error.code).toBe('VALIDATION');
    expect(r.json.error.message).toContain('swarm-utils.update.registry-url');
    expect(r.json.error.message).toContain(recorderHost);
    expect(recorded).toEqual({ connections: 0, bytes: 0 });
    expect((await s.api('GET', `/jobs?service=${REG}`)).json.jobs).toEqual([]);
  });

  it('the same registry gets the credentials: the update rolls out, and no spec or log holds the password', async () => {
    const r = await s.api(
      'POST',
      '/jobs',
      { type: 'update', service: REG, image: IMAGES.appV2, registryAuth: { url: REGISTRY, username: REGISTRY_AUTH.username, password: REGISTRY_AUTH.password }, waitRes: true },
      UPDATE_TOKEN,
    );
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect((await runningTasks(REG))[0].Spec.ContainerSpec.Image).toBe(r.json.result.image);
    // the service's own labels hold the password (the operator put it there): everything else must not
    const raw = await inspect(REG);
    const spec = JSON.stringify({ ...raw, Spec: { ...raw.Spec, Labels: {} }, PreviousSpec: { ...raw.PreviousSpec, Labels: {} } });
    expect(spec).toContain(IMAGES.appV2.split(':')[0]);
    expect(spec).not.toContain(REGISTRY_AUTH.password);
    expect(spec).not.toContain(Buffer.from(REGISTRY_AUTH.password).toString('base64'));
    expect(JSON.stringify(r.json)).not.toContain(REGISTRY_AUTH.password);
    expect(s.output()).not.toContain(REGISTRY_AUTH.password);
    // the user name is a credential too: not even at debug level
    expect(s.output()).not.toContain(`"user":"${REGISTRY_AUTH.username}"`);
  });
});
