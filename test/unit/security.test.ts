import crypto from 'node:crypto';
import fs from 'node:fs';
import { describe, it, expect, afterEach } from 'vitest';
import { openDb } from '../../src/db/index.js';
import { finishJob, getJob, insertJob } from '../../src/db/jobs.js';
import { insertSteps } from '../../src/db/steps.js';
import { requesterKey } from '../../src/db/meta.js';
import { AppError } from '../../src/errors.js';
import { Worker } from '../../src/engine/worker.js';
import type { JobKind } from '../../src/engine/types.js';
import type { SubmitCheck } from '../../src/api/jobs-service.js';
import { cleanKind } from '../../src/jobs/clean.js';
import { registryAuthFor, registryKey } from '../../src/jobs/image.js';
import { grants, keyedHash, requesterHash, sha256 } from '../../src/jobs/tokens.js';
import { loadConfig } from '../../src/config.js';
import type { DockerPort } from '../../src/swarm/port.js';
import { apiFixture, fakeNode, fakeService, type ApiFixture } from '../helpers/api-fixture.js';
import { fakeDocker, makeDeps, tempDbPath, testConfig } from '../helpers/engine-fixture.js';

const hex = (t: string) => sha256(t).toString('hex');
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

describe('label token lists', () => {
  const key = crypto.randomBytes(32);
  const who = (t: string) => requesterHash(key, t);

  it('grant a token named as itself or as sha256:<hex> of it (either case), nobody else', () => {
    expect(grants('a, web-token ,b', who('web-token'), key)).toBe(true);
    expect(grants(`x,sha256:${hex('web-token')}`, who('web-token'), key)).toBe(true);
    expect(grants(`sha256:${hex('web-token').toUpperCase()}`, who('web-token'), key)).toBe(true);
    expect(grants(`sha256:${hex('web-token')}`, who('other'), key)).toBe(false);
    expect(grants('web-token', who('web-token-2'), key)).toBe(false);
    expect(grants(undefined, who('web-token'), key)).toBe(false);
    expect(grants('', who('web-token'), key)).toBe(false);
    // admins and cron: everything
    expect(grants(undefined, null, key)).toBe(true);
  });

  it('a malformed sha256: entry is an ordinary token, never a wildcard', () => {
    expect(grants('sha256:abc', who('sha256:abc'), key)).toBe(true);
    expect(grants('sha256:abc', who('abc'), key)).toBe(false);
    expect(grants(`sha256:${'0'.repeat(64)}`, who(''), key)).toBe(false);
  });

  it('the stored hash is keyed: not the sha-256 of the token, and different under another key', () => {
    const h = who('weak');
    expect(h).not.toBe(hex('weak'));
    expect(h).not.toContain(hex('weak').slice(0, 12));
    expect(requesterHash(crypto.randomBytes(32), 'weak')).not.toBe(h);
    expect(keyedHash(key, hex('weak'))).toBe(h);
  });
});

describe('the installation key and old rows', () => {
  it('re-keys unkeyed requester hashes written before the key existed, and no unkeyed hash stays in the files', () => {
    const path = tempDbPath();
    const db = openDb(path);
    const old = hex('old-weak-token');
    const job = insertJob(db, { type: 'backup', targetKind: 'all', target: null, source: 'api', locks: [], requester: old.slice(0, 12), requesterHash: old });
    const cron = insertJob(db, { type: 'clean', targetKind: 'all', target: null, source: 'cron', locks: [], requester: 'cron', requesterAdmin: true });
    const key = requesterKey(db);
    expect(getJob(db, job.id)!.requesterHash).toBe(requesterHash(key, 'old-weak-token'));
    expect(getJob(db, job.id)!.requester).toBe(requesterHash(key, 'old-weak-token').slice(0, 12));
    expect(getJob(db, cron.id)!.requester).toBe('cron');
    // made once: a second call (or a second process) uses the same key and re-keys nothing again
    expect(requesterKey(db).equals(key)).toBe(true);
    db.close();
    const again = openDb(path);
    expect(requesterKey(again).equals(key)).toBe(true);
    expect(getJob(again, job.id)!.requesterHash).toBe(requesterHash(key, 'old-weak-token'));
    again.close();
    for (const file of [path, `${path}-wal`]) {
      const bytes = fs.existsSync(file) ? fs.readFileSync(file).toString('latin1') : '';
      expect(bytes).not.toContain(old);
      expect(bytes).not.toContain(old.slice(0, 12));
    }
  });

  it('a job’s registryAuth is erased when it ends, from the rows and from the database files (WAL checkpointed)', () => {
    const path = tempDbPath();
    const db = openDb(path);
    const password = `registry-password-${crypto.randomUUID()}`;
    const job = insertJob(db, {
      type: 'update',
      targetKind: 'service',
      target: 'web',
      source: 'api',
      locks: [],
      secrets: { registryAuth: { url: 'reg.example.com', username: 'ci', password } },
    });
    expect(fs.readFileSync(`${path}-wal`).toString('latin1')).toContain(password);
    finishJob(db, job.id, 'succeeded');
    expect(getJob(db, job.id)!.secrets).toBeNull();
    for (const file of [path, `${path}-wal`]) expect(fs.readFileSync(file).toString('latin1')).not.toContain(password);
    db.close();
  });
});

describe('registry credentials go only to their registry', () => {
  const config = { registry: { url: 'reg.example.com', user: 'u', password: 'p' } };
  const request = { url: 'https://reg.example.com/', username: 'ci', password: 'ci-pw' };

  it('an update with registryAuth or labels for another registry than the image’s fails VALIDATION', () => {
    const err = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return e as AppError;
      }
      throw new Error('no error');
    };
    const e = err(() => registryAuthFor('evil.example.net/app:1', { request, config, strict: true }));
    expect(e.code).toBe('VALIDATION');
    expect(e.message).toContain('evil.example.net');
    expect(e.message).not.toContain('ci-pw');
    const labels = { 'swarm-utils.update.registry-url': 'reg.example.com', 'swarm-utils.update.registry-user': 'svc', 'swarm-utils.update.registry-password': 'svc-pw' };
    expect(err(() => registryAuthFor('attacker.example:5000/app:1', { labels, config, strict: true })).code).toBe('VALIDATION');
    // Docker Hub: an implicit registry is docker.io
    expect(err(() => registryAuthFor('library/nginx:1', { request, config, strict: true })).code).toBe('VALIDATION');
  });

  it('the same registry, however written, gets its credentials; global ones only for their own registry', () => {
    expect(registryAuthFor('reg.example.com/app:1', { request, config, strict: true })).toEqual({ username: 'ci', password: 'ci-pw', serveraddress: 'reg.example.com' });
    expect(registryAuthFor('REG.example.com:443/app:1', { request: { ...request, url: 'reg.example.com' }, config, strict: true })?.username).toBe('ci');
    expect(registryAuthFor('nginx:1', { request: { ...request, url: 'https://index.docker.io/v1/' }, config, strict: true })?.username).toBe('ci');
    expect(registryAuthFor('other.example.com/app:1', { config })).toBeUndefined();
    expect(registryAuthFor('reg.example.com/app:1', { config })?.username).toBe('u');
    expect(registryKey('https://registry-1.docker.io')).toBe('docker.io');
  });

  it('outside an update (scaling a service) mismatched labels are just not sent', () => {
    const labels = { 'swarm-utils.update.registry-url': 'reg.example.com', 'swarm-utils.update.registry-user': 'svc', 'swarm-utils.update.registry-password': 'svc-pw' };
    expect(registryAuthFor('other.example.com/app:1', { labels, config })).toBeUndefined();
  });
});

describe('configuration of secrets', () => {
  it('secret backup variables accept _FILE; a _FILE of another variable is passed on as it is', () => {
    const files: Record<string, string> = { '/s/gpg': 'gpg pass\n', '/s/metrics': 'm1,m2' };
    const r = loadConfig(
      {
        SWARM_UTILS_BACKUP_ENV_GPG_PASSPHRASE_FILE: '/s/gpg',
        SWARM_UTILS_BACKUP_ENV_SSH_IDENTITY_FILE: '/root/.ssh/id',
        SWARM_UTILS_METRICS_TOKEN_LIST_FILE: '/s/metrics',
      },
      { readFile: (p) => files[p] ?? (() => { throw Object.assign(new Error('x'), { code: 'ENOENT' }); })() },
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.backupEnv).toEqual({ GPG_PASSPHRASE: 'gpg pass', SSH_IDENTITY_FILE: '/root/.ssh/id' });
    expect(r.config.metricsTokens).toEqual(['m1', 'm2']);
  });

  it('a secret backup variable given twice, or with an unreadable file, is refused without its value', () => {
    const r = loadConfig(
      { SWARM_UTILS_BACKUP_ENV_AGE_PASSPHRASE: 'VALUE-1', SWARM_UTILS_BACKUP_ENV_AGE_PASSPHRASE_FILE: '/s/age', SWARM_UTILS_BACKUP_ENV_GPG_PASSPHRASE_FILE: '/nope' },
      { readFile: () => { throw Object.assign(new Error('VALUE-2'), { code: 'ENOENT' }); } },
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.join('\n')).toContain('SWARM_UTILS_BACKUP_ENV_AGE_PASSPHRASE: set either');
    expect(r.problems.join('\n')).toContain('SWARM_UTILS_BACKUP_ENV_GPG_PASSPHRASE_FILE: cannot read');
    expect(r.problems.join('\n')).not.toMatch(/VALUE-/);
  });

  it('the S3 credentials of the helper cannot be replaced through a backup variable, in either form', () => {
    const r = loadConfig({ SWARM_UTILS_BACKUP_ENV_AWS_ACCESS_KEY_ID_FILE: '/x', SWARM_UTILS_BACKUP_ENV_AWS_SECRET_ACCESS_KEY: 'y' }, { readFile: () => 'v' });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.filter((p) => p.includes('set by swarm-utils itself'))).toHaveLength(2);
  });
});

// ---------------------------------------------------------------------------------------------
// The API with a fake Docker port that counts its listings

const ADMIN = 'admin-token';
const WEB = 'web-label-token';
const NODE_TOKEN = 'node-token';
const METRICS = 'metrics-token';

const noop: JobKind & SubmitCheck = {
  type: 'update',
  locks: (t) => [`update_service_${t.name}`],
  steps: () => [{ name: 'work', run: async () => ({ output: 'ok' }) }],
};

let f: ApiFixture | null = null;
afterEach(async () => {
  await f?.close();
  f = null;
});

async function fixture(extra: { services?: ReturnType<typeof fakeService>[]; nodes?: ReturnType<typeof fakeNode>[] } = {}) {
  const calls = { listServices: 0, listNodes: 0 };
  const services = extra.services ?? [
    fakeService('web', { 'swarm-utils.update.token': `x,sha256:${hex(WEB)}`, 'swarm-utils.backup.token': WEB }),
    fakeService('db', { 'swarm-utils.update.token': 'db-token' }),
  ];
  const nodes = extra.nodes ?? [
    { ...fakeNode('w1', { 'swarm-utils.clean.token-list': NODE_TOKEN }), id: 'id-w1' },
    { ...fakeNode('w2', { 'swarm-utils.clean.token-list': NODE_TOKEN }), id: 'id-w2-old', state: 'down' },
    { ...fakeNode('w2', { 'swarm-utils.clean.token-list': NODE_TOKEN }), id: 'id-w2-new' },
    { ...fakeNode('w3'), id: 'id-w3' },
  ];
  const docker: Partial<DockerPort> = {
    listServices: async () => (calls.listServices++, services),
    listNodes: async () => (calls.listNodes++, nodes),
  };
  f = await apiFixture({
    services,
    nodes,
    kinds: { update: noop, clean: { ...cleanKind, steps: () => [{ name: 'work', run: async () => ({ output: 'ok' }) }] }, backup: { ...noop, type: 'backup' } },
    docker,
    env: { SWARM_UTILS_METRICS_TOKEN_LIST: METRICS },
  });
  return { app: f.app, calls, worker: f.worker };
}

describe('a token that grants nothing', () => {
  it('gets 403 on every route but /healthz and /readyz, before any body is read', async () => {
    const { app } = await fixture();
    const routes: [string, string, object?][] = [
      ['GET', '/jobs'],
      ['GET', '/jobs/1'],
      ['POST', '/jobs/1/cancel'],
      ['GET', '/service/status?service=web'],
      ['GET', '/metrics'],
      ['GET', '/docs'],
      ['GET', '/backups'],
      ['POST', '/jobs', { type: 'update', service: 'web' }],
      ['POST', '/jobs', { type: 'backup', all: true }],
      ['POST', '/update?service=web'],
      ['POST', '/clean?all=true'],
      ['POST', '/backup?service=web'],
    ];
    for (const [method, url, payload] of routes) {
      for (const token of ['random-token', `sha256:${hex(WEB)}`]) {
        const r = await app.inject({ method: method as 'GET', url, headers: bearer(token), ...(payload ? { payload } : {}) });
        expect(r.statusCode, `${method} ${url}`).toBe(403);
        expect(r.json().error.code).toBe('FORBIDDEN');
      }
    }
    expect((await app.inject({ url: '/healthz', headers: bearer('random-token') })).statusCode).toBe(200);
    expect((await app.inject({ url: '/readyz', headers: bearer('random-token') })).statusCode).toBe(200);
    // the query form too
    expect((await app.inject({ url: '/jobs?token=random-token' })).statusCode).toBe(403);
  });

  it('a metrics token reads /metrics and nothing else', async () => {
    const { app } = await fixture();
    const m = await app.inject({ url: '/metrics', headers: bearer(METRICS) });
    expect(m.statusCode).toBe(200);
    expect(m.body).toContain('swarm_utils_jobs');
    for (const url of ['/jobs', '/jobs/1', '/service/status?service=web']) {
      expect((await app.inject({ url, headers: bearer(METRICS) })).statusCode, url).toBe(403);
    }
    expect((await app.inject({ method: 'POST', url: '/jobs', payload: { type: 'update', service: 'web' }, headers: bearer(METRICS) })).statusCode).toBe(403);
    // a label token is not a metrics token
    expect((await app.inject({ url: '/metrics', headers: bearer(WEB) })).statusCode).toBe(403);
  });
});

describe('GET /jobs for a label token', () => {
  it('costs one services and one nodes listing whatever the size of the table, and shows only what the token may see', async () => {
    const { app, calls } = await fixture();
    await app.inject({ method: 'POST', url: '/jobs', headers: bearer(ADMIN), payload: { type: 'update', service: 'web' } });
    // 3000 jobs: the token's jobs of web are a few among them
    const sqlite = f!.db;
    const insert = (type: 'update' | 'clean' | 'backup', kind: 'service' | 'node', target: string, label: string | null = null) =>
      insertJob(sqlite, { type, targetKind: kind, target, targetLabel: label, source: 'api', locks: [] });
    sqlite.transaction(() => {
      for (let i = 0; i < 3000; i++) {
        if (i % 1000 === 500) insert('update', 'service', 'web');
        else if (i % 1000 === 700) insert('backup', 'service', 'web');
        else if (i % 1000 === 900) insert('clean', 'node', 'id-w1', 'w1');
        else insert(i % 2 ? 'update' : 'clean', i % 2 ? 'service' : 'node', i % 2 ? 'db' : 'id-w3', i % 2 ? null : 'w3');
      }
    })();
    calls.listServices = calls.listNodes = 0;
    const r = await app.inject({ url: '/jobs?limit=200', headers: bearer(WEB) });
    expect(r.statusCode).toBe(200);
    expect(calls).toEqual({ listServices: 1, listNodes: 1 });
    const jobs = r.json().jobs as { target: { service?: string }; type: string }[];
    // web's update jobs (sha256: entry) and backup jobs (plain entry): 3 + 3 + the admin's one
    expect(jobs.length).toBe(7);
    expect(jobs.every((j) => j.target.service === 'web')).toBe(true);
    expect(r.json().next).toBeNull();
    // paging: the cursor walks the same filtered list
    calls.listServices = calls.listNodes = 0;
    const page1 = (await app.inject({ url: '/jobs?limit=4', headers: bearer(WEB) })).json();
    const page2 = (await app.inject({ url: `/jobs?limit=4&before=${page1.next}`, headers: bearer(WEB) })).json();
    expect([...page1.jobs, ...page2.jobs].map((j: { id: number }) => j.id)).toEqual(jobs.map((j) => (j as unknown as { id: number }).id));
    expect(page2.next).toBeNull();
    expect(calls).toEqual({ listServices: 2, listNodes: 2 });
    // a node token sees the jobs of its nodes, by hostname or id
    const byHost = (await app.inject({ url: '/jobs?node=w1&limit=200', headers: bearer(NODE_TOKEN) })).json();
    const byId = (await app.inject({ url: '/jobs?node=id-w1&limit=200', headers: bearer(NODE_TOKEN) })).json();
    expect(byHost.jobs.length).toBe(3);
    expect(byId.jobs.map((j: { id: number }) => j.id)).toEqual(byHost.jobs.map((j: { id: number }) => j.id));
    expect(byHost.jobs[0].target).toEqual({ node: 'w1', nodeId: 'id-w1' });
    expect((await app.inject({ url: '/jobs?node=w3', headers: bearer(NODE_TOKEN) })).json().jobs).toEqual([]);
  });

  it('GET /jobs/:id and cancel follow the same rule; an all job is visible to the token that asked for it', async () => {
    const { app } = await fixture();
    const web = (await app.inject({ method: 'POST', url: '/jobs', headers: bearer(WEB), payload: { type: 'update', service: 'web' } })).json();
    const dbJob = (await app.inject({ method: 'POST', url: '/jobs', headers: bearer(ADMIN), payload: { type: 'update', service: 'db' } })).json();
    const all = await app.inject({ method: 'POST', url: '/jobs', headers: bearer(WEB), payload: { type: 'backup', all: true } });
    expect(all.statusCode).toBe(202);
    expect(all.json().requestedBy).toMatch(/^[0-9a-f]{12}$/);
    expect(all.json().requestedBy).not.toBe(hex(WEB).slice(0, 12));
    expect((await app.inject({ url: `/jobs/${web.id}`, headers: bearer(WEB) })).statusCode).toBe(200);
    expect((await app.inject({ url: `/jobs/${all.json().id}`, headers: bearer(WEB) })).statusCode).toBe(200);
    expect((await app.inject({ url: `/jobs/${all.json().id}`, headers: bearer(NODE_TOKEN) })).statusCode).toBe(403);
    expect((await app.inject({ url: `/jobs/${dbJob.id}`, headers: bearer(WEB) })).statusCode).toBe(403);
    expect((await app.inject({ method: 'POST', url: `/jobs/${dbJob.id}/cancel`, headers: bearer(WEB) })).statusCode).toBe(403);
    // a clean all with a token that grants no clean: refused, nothing created
    expect((await app.inject({ method: 'POST', url: '/jobs', headers: bearer(WEB), payload: { type: 'clean', all: true } })).statusCode).toBe(403);
  });
});

describe('nodes by id', () => {
  it('a hostname that names a live node and a stale entry: 409 AMBIGUOUS_NODE with the candidates; the id works', async () => {
    const { app } = await fixture();
    const r = await app.inject({ method: 'POST', url: '/jobs', headers: bearer(ADMIN), payload: { type: 'clean', node: 'w2' } });
    expect(r.statusCode).toBe(409);
    expect(r.json().error.code).toBe('AMBIGUOUS_NODE');
    expect(r.json().error.details.candidates.map((c: { id: string; state: string }) => [c.id, c.state])).toEqual([
      ['id-w2-old', 'down'],
      ['id-w2-new', 'ready'],
    ]);
    const ok = await app.inject({ method: 'POST', url: '/jobs', headers: bearer(ADMIN), payload: { type: 'clean', node: 'id-w2-new' } });
    expect(ok.statusCode).toBe(202);
    expect(ok.json().target).toEqual({ node: 'w2', nodeId: 'id-w2-new' });
    const byHost = await app.inject({ method: 'POST', url: '/jobs', headers: bearer(ADMIN), payload: { type: 'clean', node: 'w1' } });
    expect(byHost.json().target).toEqual({ node: 'w1', nodeId: 'id-w1' });
    expect(getJob(f!.db, byHost.json().id)!.locks).toEqual(['clean_node_id-w1']);
    expect((await app.inject({ method: 'POST', url: '/jobs', headers: bearer(ADMIN), payload: { type: 'clean', node: 'nope' } })).statusCode).toBe(404);
  });

  it('a label token learns only about the nodes it may clean', async () => {
    const { app } = await fixture({
      nodes: [
        { ...fakeNode('w2', { 'swarm-utils.clean.token-list': NODE_TOKEN }), id: 'id-w2-new' },
        { ...fakeNode('w2'), id: 'id-w2-old', state: 'down' },
      ],
    });
    const r = await app.inject({ method: 'POST', url: '/jobs', headers: bearer(NODE_TOKEN), payload: { type: 'clean', node: 'w2' } });
    expect(r.statusCode).toBe(202);
    expect(r.json().target).toEqual({ node: 'w2', nodeId: 'id-w2-new' });
    expect((await app.inject({ method: 'POST', url: '/jobs', headers: bearer(NODE_TOKEN), payload: { type: 'clean', node: 'id-w2-old' } })).statusCode).toBe(403);
    expect((await app.inject({ method: 'POST', url: '/jobs', headers: bearer(NODE_TOKEN), payload: { type: 'clean', node: 'nope' } })).statusCode).toBe(403);
  });

  it('clean all: one child per node entry, locked by id; the stale entry is skipped', async () => {
    const nodes = [
      { ...fakeNode('w2'), id: 'id-w2-old', state: 'down' },
      { ...fakeNode('w2'), id: 'id-w2-new' },
    ];
    const db = openDb(tempDbPath());
    const docker = fakeDocker({ listNodes: async () => nodes, getNode: async (id) => nodes.find((n) => n.id === id) ?? null });
    const kind = { ...cleanKind, steps: (job: Parameters<typeof cleanKind.steps>[0]) => cleanKind.steps(job).slice(0, 1) };
    const worker = new Worker(makeDeps(db, docker, testConfig()), { clean: kind }, { concurrency: 4, lockTimeoutMs: 1000, retentionDays: 1 });
    await worker.start();
    const parent = insertJob(db, { type: 'clean', targetKind: 'all', target: null, source: 'api', locks: [], requesterAdmin: true });
    worker.wake();
    const done = await worker.waitFor(parent.id, 5000);
    await worker.stop(100);
    expect(done?.state).toBe('succeeded');
    const children = (done!.result as { children: { target: unknown; state: string; skipped?: string }[] }).children;
    expect(children).toEqual([
      expect.objectContaining({ target: { node: 'w2', nodeId: 'id-w2-old' }, state: 'succeeded', skipped: 'node is down' }),
      expect.objectContaining({ target: { node: 'w2', nodeId: 'id-w2-new' }, state: 'succeeded' }),
    ]);
    expect(children[1]!.skipped).toBeUndefined();
    db.close();
  });
});

describe('bad ids', () => {
  it('/jobs/0x10 and other non-decimal numbers are 400, not job 16', async () => {
    const { app } = await fixture();
    for (const url of ['/jobs/0x10', '/jobs/1e1', '/jobs/0b1', '/jobs/%2016', '/jobs/16.0', '/jobs?limit=0x10', '/jobs?before=1e3', '/service/status?service=web&logs=0x5']) {
      const r = await app.inject({ url, headers: bearer(ADMIN) });
      expect(r.statusCode, url).toBe(400);
      expect(r.json().error.code).toBe('VALIDATION');
    }
    expect((await app.inject({ url: '/jobs/16', headers: bearer(ADMIN) })).statusCode).toBe(404);
    expect((await app.inject({ url: '/jobs?limit=10&before=16', headers: bearer(ADMIN) })).statusCode).toBe(200);
  });
});

describe('Docker secrets sweeps of the worker', () => {
  it('at start-up removes the secrets of jobs that are not running, keeps those of running jobs and of other installations', async () => {
    const db = openDb(tempDbPath());
    const running = insertJob(db, { type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: [] });
    db.prepare("UPDATE jobs SET state = 'running' WHERE id = ?").run(running.id);
    insertSteps(db, running.id, [{ name: 'hold' }]);
    // the running job's helper still reads its secret until the process stops
    const hold: JobKind = {
      type: 'backup',
      locks: () => [],
      steps: () => [{ name: 'hold', run: (ctx) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))) }],
    };
    const ended = insertJob(db, { type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: [] });
    finishJob(db, ended.id, 'failed');
    const docker = fakeDocker();
    for (const [name, jobId] of [
      [`swarm-utils-test01-${running.id}-AWS_SECRET_ACCESS_KEY`, running.id],
      [`swarm-utils-test01-${ended.id}-AWS_SECRET_ACCESS_KEY`, ended.id],
      ['swarm-utils-test01-999-GPG_PASSPHRASE', 999],
      [`swarm-utils-other9-${ended.id}-AWS_SECRET_ACCESS_KEY`, ended.id],
    ] as const) {
      await docker.createSecret({ name, jobId, data: 'x' });
    }
    const worker = new Worker(makeDeps(db, docker), { backup: hold }, { concurrency: 1, lockTimeoutMs: 1000, retentionDays: 1 });
    await worker.start();
    await new Promise((r) => setTimeout(r, 50));
    const left = docker.secrets.map((s) => s.name).sort();
    await worker.stop(100);
    expect(left).toEqual([`swarm-utils-other9-${ended.id}-AWS_SECRET_ACCESS_KEY`, `swarm-utils-test01-${running.id}-AWS_SECRET_ACCESS_KEY`].sort());
    // stopped: the running job's secret stays for the next process
    expect(docker.secrets).toHaveLength(2);
    db.close();
  });
});
