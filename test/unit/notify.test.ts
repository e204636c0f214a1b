import { describe, it, expect, afterEach } from 'vitest';
import { openDb, type Db } from '../../src/db/index.js';
import { finishJob, getJob, insertJob, markRunning, recordJobError, setJobResult, type JobState } from '../../src/db/jobs.js';
import { endStep, insertSteps, startStep } from '../../src/db/steps.js';
import { presentJob } from '../../src/api/present.js';
import { createNotifier, type Notifier, type NotifierOptions } from '../../src/notify/notifier.js';
import { createRedactor, summaryLine } from '../../src/notify/payload.js';
import { sleep } from '../../src/engine/limits.js';
import { captureLog, makeDeps, fakeDocker, tempDbPath, testConfig } from '../helpers/engine-fixture.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';

const S3_SECRET = 's3-secret-value-never-sent';
const ADMIN = 'admin-token-never-sent';
const REGISTRY_PASSWORD = 'registry-password-never-sent';
const HOOK_TOKEN = 'hook-token-in-the-path-123';

const open: { notifier: Notifier; receiver?: Receiver }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.notifier.stop();
    await o.receiver?.close();
  }
});

/** fast retries for the tests; the real ones are 1 s, 2 s … 60 s for 10 minutes */
const FAST: NotifierOptions = { backoffMs: () => 50, sweepEveryMs: 100, requestTimeoutMs: 2000 };

function env(receiver: Receiver, extra: Record<string, string> = {}) {
  return {
    SWARM_UTILS_ADMIN_TOKEN_LIST: ADMIN,
    SWARM_UTILS_NOTIFY_URL: `${receiver.url}/hooks/${HOOK_TOKEN}?key=${HOOK_TOKEN}`,
    SWARM_UTILS_S3_DOMAIN: 's3.example.com',
    SWARM_UTILS_S3_BUCKET_NAME: 'b',
    SWARM_UTILS_S3_ACCESS_KEY: 'access-key-id',
    SWARM_UTILS_S3_SECRET_ACCESS_KEY: S3_SECRET,
    SWARM_UTILS_REGISTRY_URL: 'registry.example.com',
    SWARM_UTILS_REGISTRY_USER: 'ci-user',
    SWARM_UTILS_REGISTRY_PASSWORD: REGISTRY_PASSWORD,
    ...extra,
  };
}

function setup(receiver: Receiver, extra: Record<string, string> = {}, opts: NotifierOptions = FAST, db: Db = openDb(tempDbPath())) {
  const log = captureLog();
  const deps = makeDeps(db, fakeDocker(), testConfig(env(receiver, extra)), log.logger);
  const notifier = createNotifier(deps, opts);
  open.push({ notifier });
  return { db, notifier, log, deps };
}

/** a job that ran and ended in `state`, as the engine leaves it */
function finished(db: Db, state: JobState, o: { parentId?: number; all?: boolean; output?: string; code?: string; message?: string } = {}) {
  const job = insertJob(db, {
    type: 'backup',
    targetKind: o.all ? 'all' : 'service',
    target: o.all ? null : 'db',
    source: o.parentId ? 'parent' : 'api',
    parentId: o.parentId ?? null,
    locks: [],
  });
  markRunning(db, job.id, 'boot');
  insertSteps(db, job.id, [{ name: 'archive' }]);
  startStep(db, job.id, 0);
  endStep(db, job.id, 0, state === 'failed' ? 'failed' : 'done', o.output ?? 'archived');
  if (state !== 'succeeded') recordJobError(db, job.id, (o.code ?? (state === 'canceled' ? 'CANCELED' : 'S3_ERROR')) as never, o.message ?? 'upload failed');
  setJobResult(db, job.id, { archives: [] });
  finishJob(db, job.id, state);
  return job.id;
}

const until = async (fn: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(20);
  }
};

describe('notifications', () => {
  it('one POST {event, job} for a failed job, none for a succeeded one (NOTIFY_ON=failure); notifiedAt recorded', async () => {
    const receiver = await startReceiver();
    const { db, notifier } = setup(receiver);
    open.push({ notifier, receiver });
    notifier.start();
    const ok = finished(db, 'succeeded');
    const bad = finished(db, 'failed');
    notifier.wake();
    const [got] = await receiver.waitFor(1, 5000);
    await sleep(300);
    expect(receiver.received).toHaveLength(1);
    expect(got!.method).toBe('POST');
    expect(got!.path).toBe(`/hooks/${HOOK_TOKEN}?key=${HOOK_TOKEN}`);
    expect(got!.headers['content-type']).toBe('application/json');
    expect(got!.json).toMatchObject({ event: 'failed', job: { id: bad, type: 'backup', state: 'failed', target: { service: 'db' }, error: { code: 'S3_ERROR' } } });
    expect(Object.keys(got!.json)).toEqual(['event', 'job']);
    await until(() => getJob(db, bad)!.notifiedAt !== null);
    expect(presentJob(getJob(db, bad)!, []).notifiedAt).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    expect(getJob(db, ok)!.notifiedAt).toBeNull();
  });

  it('NOTIFY_ON=always: every finished job, each once', async () => {
    const receiver = await startReceiver();
    const { db, notifier } = setup(receiver, { SWARM_UTILS_NOTIFY_ON: 'always' });
    open.push({ notifier, receiver });
    notifier.start();
    const ids = [finished(db, 'succeeded'), finished(db, 'failed'), finished(db, 'canceled')];
    notifier.wake();
    notifier.wake();
    await receiver.waitFor(3, 5000);
    await sleep(400); // sweeps every 100 ms: nothing more comes
    expect(receiver.received.map((r) => [r.json.job.id, r.json.event])).toEqual([
      [ids[0], 'succeeded'],
      [ids[1], 'failed'],
      [ids[2], 'canceled'],
    ]);
  });

  it('an `all` job is reported through its parent only, once', async () => {
    const receiver = await startReceiver();
    const { db, notifier } = setup(receiver);
    open.push({ notifier, receiver });
    notifier.start();
    const parent = insertJob(db, { type: 'backup', targetKind: 'all', target: null, source: 'cron', locks: [] }).id;
    finished(db, 'failed', { parentId: parent });
    finished(db, 'failed', { parentId: parent });
    recordJobError(db, parent, 'S3_ERROR', '2 of 2 child jobs did not succeed');
    finishJob(db, parent, 'failed');
    notifier.wake();
    await receiver.waitFor(1, 5000);
    await sleep(400);
    expect(receiver.received.map((r) => r.json.job.id)).toEqual([parent]);
    expect(receiver.received[0]!.json.job.target).toEqual({ all: true });
  });

  it('retried with backoff while the receiver fails, delivered once when it answers', async () => {
    const receiver = await startReceiver();
    receiver.status = 503;
    const { db, notifier, log } = setup(receiver);
    open.push({ notifier, receiver });
    notifier.start();
    const id = finished(db, 'failed');
    notifier.wake();
    await receiver.waitFor(3, 5000);
    receiver.status = 200;
    const n = receiver.received.length;
    await receiver.waitFor(n + 1, 5000);
    await sleep(400);
    expect(receiver.received).toHaveLength(n + 1);
    expect(new Set(receiver.received.map((r) => r.json.job.id))).toEqual(new Set([id]));
    expect(log.text()).toContain('HTTP 503');
    expect(log.text()).not.toContain(HOOK_TOKEN);
    await until(() => getJob(db, id)!.notifiedAt !== null);
  });

  it('gives up after its retry window, logging an error (not the URL)', async () => {
    const receiver = await startReceiver();
    await receiver.down();
    const { db, notifier, log } = setup(receiver, {}, { ...FAST, retryWindowMs: 300 });
    open.push({ notifier, receiver });
    notifier.start();
    const id = finished(db, 'failed');
    notifier.wake();
    await until(() => log.text().includes('notification given up'), 5000);
    const row = db.prepare('SELECT attempts, given_up_at, last_error FROM notifications WHERE job_id = ?').get(id) as any;
    expect(row.given_up_at).not.toBeNull();
    expect(row.attempts).toBeGreaterThan(1);
    expect(row.last_error).toBe('ECONNREFUSED');
    await receiver.up();
    await sleep(400);
    expect(receiver.received).toHaveLength(0);
    expect(getJob(db, id)!.notifiedAt).toBeNull();
    expect(log.text()).not.toContain(HOOK_TOKEN);
    expect(log.text()).not.toContain(`127.0.0.1:${receiver.port}`);
  });

  it('survives a restart: a job that ended while no notifier ran is sent by the next one, once; jobs from before notifications were on are not', async () => {
    const receiver = await startReceiver();
    const path = tempDbPath();
    const db = openDb(path);
    const before = finished(db, 'failed'); // notifications were never on for this database
    const first = setup(receiver, {}, FAST, db);
    first.notifier.start();
    await sleep(300);
    expect(receiver.received).toHaveLength(0);
    await receiver.down();
    const id = finished(db, 'failed');
    first.notifier.wake();
    await until(() => (db.prepare('SELECT attempts FROM notifications WHERE job_id = ?').pluck().get(id) as number) >= 1);
    await first.notifier.stop(); // the process is gone: nothing was delivered
    const late = finished(db, 'failed'); // ended after the notifier stopped (a kill -9 right after the job's end)
    await receiver.up();
    const second = setup(receiver, {}, FAST, openDb(path));
    open.push({ notifier: second.notifier, receiver });
    second.notifier.start();
    await receiver.waitFor(2, 5000);
    await sleep(400);
    expect(receiver.received.map((r) => r.json.job.id).sort()).toEqual([id, late].sort());
    expect(receiver.received.map((r) => r.json.job.id)).not.toContain(before);
  });

  it('enqueue: compensation_left_to_operator is sent whatever NOTIFY_ON says, once, beside the failure', async () => {
    const receiver = await startReceiver();
    const { db, notifier } = setup(receiver);
    open.push({ notifier, receiver });
    notifier.start();
    const id = finished(db, 'failed', { code: 'DOCKER_ERROR', message: 'the service spec changed meanwhile: left to the operator' });
    notifier.enqueue(id, 'compensation_left_to_operator');
    notifier.enqueue(id, 'compensation_left_to_operator');
    await receiver.waitFor(2, 5000);
    await sleep(300);
    expect(receiver.received.map((r) => r.json.event).sort()).toEqual(['compensation_left_to_operator', 'failed']);
  });

  it('the body holds no token, password or S3 secret, wherever a step or error put one', async () => {
    const receiver = await startReceiver();
    const { db, notifier } = setup(receiver, { SWARM_UTILS_NOTIFY_ON: 'always' });
    open.push({ notifier, receiver });
    notifier.start();
    const id = finished(db, 'failed', {
      output: `aws said: bad key ${S3_SECRET}; called /backup?service=db&token=${ADMIN}; login ${REGISTRY_PASSWORD}`,
      message: `upload with ${S3_SECRET} to ${receiver.url}/hooks/${HOOK_TOKEN} failed`,
    });
    db.prepare('UPDATE steps SET detail = ? WHERE job_id = ?').run(
      JSON.stringify({ labels: { 'swarm-utils.backup.token': 'label-token-xyz', 'swarm-utils.update.registry-password': 'pw-xyz' }, replicas: 2 }),
      id,
    );
    notifier.wake();
    const [got] = await receiver.waitFor(1, 5000);
    for (const secret of [S3_SECRET, ADMIN, REGISTRY_PASSWORD, HOOK_TOKEN, 'label-token-xyz', 'pw-xyz']) expect(got!.text).not.toContain(secret);
    expect(got!.json.job.steps[0].detail.replicas).toBe(2);
    expect(got!.json.job.steps[0].output).toContain('[redacted]');
  });

  it('SWARM_UTILS_NOTIFY_FORMAT=slack: {"text"} with one line; credentials in the URL go as Basic auth', async () => {
    const receiver = await startReceiver();
    const url = receiver.url.replace('http://', 'http://hook:s3cr%40t-pass@');
    const { db, notifier, log } = setup(receiver, { SWARM_UTILS_NOTIFY_FORMAT: 'slack', SWARM_UTILS_NOTIFY_URL: `${url}/services/T1/B2/${HOOK_TOKEN}` });
    open.push({ notifier, receiver });
    notifier.start();
    const id = finished(db, 'failed', { message: 'upload failed\nsecond line\n' });
    notifier.wake();
    const [got] = await receiver.waitFor(1, 5000);
    expect(Object.keys(got!.json)).toEqual(['text']);
    expect(got!.json.text).toMatch(new RegExp(`^swarm-utils: backup of service db failed: S3_ERROR upload failed second line \\(job ${id}, \\d+ s\\)$`));
    expect(got!.path).toBe(`/services/T1/B2/${HOOK_TOKEN}`);
    expect(got!.headers.authorization).toBe(`Basic ${Buffer.from('hook:s3cr@t-pass').toString('base64')}`);
    expect(log.text()).not.toContain('s3cr');
  });

  it('without SWARM_UTILS_NOTIFY_URL nothing is recorded or sent', async () => {
    const db = openDb(tempDbPath());
    const notifier = createNotifier(makeDeps(db, fakeDocker(), testConfig()), FAST);
    open.push({ notifier });
    notifier.start();
    const id = finished(db, 'failed');
    notifier.wake();
    notifier.enqueue(id, 'compensation_left_to_operator');
    await sleep(200);
    expect(db.prepare('SELECT COUNT(*) FROM notifications').pluck().get()).toBe(0);
  });
});

describe('notification payload', () => {
  it('a one-line summary per event and target kind', () => {
    const db = openDb(tempDbPath());
    const id = finished(db, 'succeeded');
    const view = presentJob(getJob(db, id)!, []);
    expect(summaryLine('succeeded', view)).toMatch(new RegExp(`^swarm-utils: backup of service db succeeded \\(job ${id}, \\d+ s\\)$`));
    expect(summaryLine('canceled', { ...view, target: { all: true } })).toContain('backup of all services was canceled');
    expect(summaryLine('failed', { ...view, type: 'clean', target: { node: 'w1' }, error: { code: 'TIMEOUT', message: 'x'.repeat(900) } })).toHaveLength(500);
  });

  it('the redactor: secret-looking keys, token= parameters, configured values (not short ones)', () => {
    const redact = createRedactor(['abc', 'longer-secret']);
    expect(redact({ password: 'p', nested: [{ apiKey: 'k', n: 1, token: null }], text: 'x longer-secret y abc /a?token=t1&b=2' })).toEqual({
      password: '[redacted]',
      nested: [{ apiKey: '[redacted]', n: 1, token: null }],
      text: 'x [redacted] y abc /a?token=[redacted]&b=2',
    });
  });
});
