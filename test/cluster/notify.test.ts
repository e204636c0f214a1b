/**
 * Notifications (README "Notifications") from the real server on the real swarm to a real HTTP receiver
 * on the test host: backups that succeed (archive on a worker, upload to s3rver) and backups whose dump
 * command fails; the receiver goes down and comes back; the server is killed with SIGKILL between a
 * job's end and the delivery.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, startServer, type RunningServer } from '../helpers/server.js';
import { createAppService, removeServices, serverEnv, uid } from '../helpers/cluster.js';
import { REGISTRY_PASSWORD } from '../helpers/testbed.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { deleteS3Prefix, instanceOf, removeHelperContainers, removeVolumes, s3Env } from '../helpers/leftovers.js';

const id = uid();
const PREFIX = `nt-${id}`;
const S3_SECRET = `s3-secret-${id}-never-sent`;
const LABEL_TOKEN = `label-token-${id}-never-sent`;
const ALL_TOKEN = `all-token-${id}-never-sent`;
const LABEL_PASSWORD = `label-password-${id}-never-sent`;
const HOOK_TOKEN = `hook-${id}-never-sent`;
const OK = `nt-ok-${id}`;
const FAIL = `nt-fail-${id}`;
const VOLUMES = [`nt-ok-data-${id}`, `nt-fail-data-${id}`];
const SECRETS = [S3_SECRET, LABEL_TOKEN, ALL_TOKEN, LABEL_PASSWORD, HOOK_TOKEN, ADMIN_TOKEN, REGISTRY_PASSWORD];

const servers: RunningServer[] = [];
const receivers: Receiver[] = [];
const instances = new Set<string>();
let receiver: Receiver;
let s: RunningServer;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** NOTIFY_URL with a token in its path and query, as webhook URLs have */
const hookUrl = (r: Receiver) => `${r.url}/hook/${HOOK_TOKEN}?token=${HOOK_TOKEN}`;
const env = (r: Receiver, extra: Record<string, string> = {}) => serverEnv({ ...s3Env(PREFIX, S3_SECRET), SWARM_UTILS_NOTIFY_URL: hookUrl(r), ...extra });

async function server(e: Record<string, string>, opts: { dbPath?: string; port?: number } = {}): Promise<RunningServer> {
  const srv = await startServer(e, opts);
  servers.push(srv);
  instances.add(instanceOf(srv));
  return srv;
}

async function backup(srv: RunningServer, service: string, status: number, token = ADMIN_TOKEN): Promise<any> {
  const r = await srv.api('POST', '/jobs', { type: 'backup', service, waitRes: true }, token);
  expect(r.status, JSON.stringify(r.json)).toBe(status);
  return r.json;
}

async function until<T>(what: string, ms: number, probe: () => Promise<T | null | false> | T | null | false): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(200);
  }
}

/** the job as the API shows it once its notification is recorded as delivered */
const notifiedJob = (srv: RunningServer, jobId: number) =>
  until(`notifiedAt of job ${jobId}`, 30_000, async () => {
    const { json } = await srv.api('GET', `/jobs/${jobId}`);
    return json.notifiedAt ? json : null;
  });

/** log lines of the server about job `jobId` with message `msg` */
const logLines = (srv: RunningServer, jobId: number, msg: string) =>
  srv
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .filter((l) => l.jobId === jobId && l.msg === msg);

function expectNoSecret(text: string): void {
  for (const secret of SECRETS) expect(text).not.toContain(secret);
}

/** no "(node:123) Warning: …" from Node or the AWS SDK (which warns on Node 20) */
function expectNoNodeWarning(srv: RunningServer): void {
  expect(srv.output()).not.toMatch(/\(node:\d+\)|Warning:/);
}

beforeAll(async () => {
  receiver = await startReceiver();
  receivers.push(receiver);
  const vol = (name: string) => ({ Type: 'volume' as const, Source: name, Target: '/data' });
  const [started] = await Promise.all([
    server(env(receiver)),
    createAppService(OK, {
      onWorkers: true,
      mounts: [vol(VOLUMES[0]!)],
      labels: { 'swarm-utils.backup.enable': 'true', 'swarm-utils.backup.token': `${LABEL_TOKEN},${ALL_TOKEN}` },
    }),
    createAppService(FAIL, {
      onWorkers: true,
      mounts: [vol(VOLUMES[1]!)],
      labels: {
        'swarm-utils.backup.enable': 'true',
        'swarm-utils.backup.exec': 'echo no-dump >&2; exit 4',
        'swarm-utils.backup.token': ALL_TOKEN,
        'swarm-utils.update.registry-password': LABEL_PASSWORD,
      },
    }),
  ]);
  s = started;
});

afterAll(async () => {
  for (const srv of servers) await srv.stop().catch(() => undefined);
  for (const r of receivers) await r.close();
  await removeServices(OK, FAIL);
  await removeHelperContainers(instances);
  await removeVolumes(VOLUMES);
  await deleteS3Prefix(PREFIX).catch(() => undefined);
});

describe('notifications to a receiver on the test host', () => {
  it('a succeeded backup sends nothing by default; a failed one sends one POST {event, job} with the job of the API, notifiedAt recorded, no secret in it; no Node warning', async () => {
    const ok = await backup(s, OK, 200, LABEL_TOKEN);
    expect(ok.result.archives).toHaveLength(1);
    const failed = await backup(s, FAIL, 502);
    expect(failed.error.code).toBe('EXEC_FAILED');

    // the succeeded job ended first: had it been notified, it would have arrived first
    const [got] = await receiver.waitFor(1, 30_000);
    expect(got!.method).toBe('POST');
    expect(got!.path).toBe(`/hook/${HOOK_TOKEN}?token=${HOOK_TOKEN}`);
    expect(got!.headers['content-type']).toBe('application/json');
    expect(Object.keys(got!.json)).toEqual(['event', 'job']);
    expect(got!.json.event).toBe('failed');
    const job = await notifiedJob(s, failed.id);
    expect(Date.parse(job.notifiedAt)).toBeGreaterThanOrEqual(Date.parse(job.finishedAt));
    // the body is the job object of the API as it was before the delivery was recorded
    expect(got!.json.job).toEqual({ ...job, notifiedAt: null });
    expect((await s.api('GET', `/jobs/${ok.id}`)).json.notifiedAt).toBeNull();
    expectNoSecret(got!.text);
    await sleep(2_000);
    expect(receiver.received).toHaveLength(1);
    expectNoNodeWarning(s);
    expectNoSecret(s.output());
  });

  it('backup all with a failed child: one POST, for the parent', async () => {
    const before = receiver.received.length;
    const r = await s.api('POST', '/jobs', { type: 'backup', all: true, waitRes: true }, ALL_TOKEN);
    expect(r.status, JSON.stringify(r.json)).toBe(502);
    expect(r.json.result.children.map((c: any) => [c.target.service, c.state]).sort()).toEqual([
      [FAIL, 'failed'],
      [OK, 'succeeded'],
    ]);
    await receiver.waitFor(before + 1, 30_000);
    await sleep(3_000);
    const got = receiver.received.slice(before);
    expect(got.map((x) => [x.json.event, x.json.job.id, x.json.job.target])).toEqual([['failed', r.json.id, { all: true }]]);
    expect(got[0]!.json.job.result.children).toHaveLength(2);
    expectNoSecret(got[0]!.text);
  });

  it('the receiver down for a while, then up: the notification arrives once', async () => {
    await receiver.down();
    const before = receiver.received.length;
    const failed = await backup(s, FAIL, 502);
    await until('two failed delivery attempts', 30_000, () => logLines(s, failed.id, 'notification not delivered: will retry').length >= 2);
    expect(logLines(s, failed.id, 'notification not delivered: will retry')[0].error).toBe('ECONNREFUSED');
    await receiver.up();
    await receiver.waitFor(before + 1, 60_000);
    await notifiedJob(s, failed.id);
    await sleep(3_000);
    expect(receiver.received.slice(before).map((x) => x.json.job.id)).toEqual([failed.id]);
    expect(logLines(s, failed.id, 'notification delivered')).toHaveLength(1);
    expectNoSecret(s.output());
  });

  it('kill -9 between the job’s end and the delivery: delivered once, after the restart', async () => {
    await receiver.down();
    const before = receiver.received.length;
    const failed = await backup(s, FAIL, 502);
    // the job has ended and its notification is pending
    await until('a failed delivery attempt', 30_000, () => logLines(s, failed.id, 'notification not delivered: will retry').length >= 1);
    await s.kill9();
    await receiver.up();
    await sleep(1_000);
    expect(receiver.received).toHaveLength(before);

    s = await server(env(receiver), { dbPath: s.dbPath, port: s.port });
    await receiver.waitFor(before + 1, 30_000);
    const job = await notifiedJob(s, failed.id);
    expect(receiver.received[before]!.json).toMatchObject({ event: 'failed', job: { id: failed.id, state: 'failed' } });
    // longer than one sweep of the job rows (10 s): nothing is sent twice
    await sleep(11_000);
    expect(receiver.received.slice(before).map((x) => x.json.job.id)).toEqual([job.id]);
    expect(logLines(s, failed.id, 'notification delivered')).toHaveLength(1);
    expectNoNodeWarning(s);
  });

  it('SWARM_UTILS_NOTIFY_ON=always: one POST for a succeeded backup, then one for a failed one', async () => {
    const r = await startReceiver();
    receivers.push(r);
    const srv = await server(env(r, { SWARM_UTILS_NOTIFY_ON: 'always' }));
    const ok = await backup(srv, OK, 200);
    await r.waitFor(1, 30_000);
    const failed = await backup(srv, FAIL, 502);
    await r.waitFor(2, 30_000);
    await sleep(2_000);
    expect(r.received.map((x) => [x.json.event, x.json.job.id, x.json.job.state])).toEqual([
      ['succeeded', ok.id, 'succeeded'],
      ['failed', failed.id, 'failed'],
    ]);
    for (const x of r.received) expectNoSecret(x.text);
    await srv.stop();
  });

  it('SWARM_UTILS_NOTIFY_FORMAT=slack: {"text"} with one line naming the service and the error', async () => {
    const r = await startReceiver();
    receivers.push(r);
    const srv = await server(env(r, { SWARM_UTILS_NOTIFY_FORMAT: 'slack' }));
    const failed = await backup(srv, FAIL, 502);
    const [got] = await r.waitFor(1, 30_000);
    expect(Object.keys(got!.json)).toEqual(['text']);
    expect(got!.json.text).toMatch(new RegExp(`^swarm-utils: backup of service ${FAIL} failed: EXEC_FAILED .*\\(job ${failed.id}, \\d+ s\\)$`));
    expect(got!.json.text).not.toContain('\n');
    expectNoSecret(got!.text);
    await srv.stop();
  });
});
