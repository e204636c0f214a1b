import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { IMAGES, REGISTRY, REGISTRY_AUTH, pushApp } from '../helpers/testbed.js';
import { ADMIN_TOKEN, startServer, waitJob, type RunningServer } from '../helpers/server.js';
import { createAppService, execInTask, hostnameOf, inspect, removeServices, runningTasks, serverEnv, uid, waitRunning } from '../helpers/cluster.js';

const id = uid();
const WEB = `upd-web-${id}`;
const OTHER = `upd-other-${id}`;
const CRASH = `upd-crash-${id}`;
const PREFAIL = `upd-prefail-${id}`;
const SLOW = `upd-slow-${id}`;
const WEB_TOKEN = `web-token-${id}`;
// a tag of its own, so pushing a new digest under it does not disturb other tests
const TAG = `upd-${id}`;
const appImage = (tag: string) => `${REGISTRY}/test/app:${tag}`;

let s: RunningServer;
// a job waits at most 3 s for a lock, so a second update of a service that takes longer fails LOCK_TIMEOUT
const ENV = serverEnv({ SWARM_UTILS_LOCK_TIMEOUT: '3_000' });

beforeAll(async () => {
  await pushApp(TAG, `first-${id}`);
  s = await startServer(ENV);
  await Promise.all([
    createAppService(WEB, {
      image: appImage(TAG),
      replicas: 2,
      onWorkers: true,
      mounts: [{ Type: 'volume', Source: `upd-marks-${id}`, Target: '/marks' }],
      labels: {
        'swarm-utils.update.token': WEB_TOKEN,
        'swarm-utils.update.exec-pre': 'echo "pre $(cat /version)" >> /marks/log',
        'swarm-utils.update.exec-post': 'echo "post $(cat /version)" >> /marks/log',
      },
    }),
    createAppService(OTHER, { labels: { 'swarm-utils.update.token': 'other-token' } }),
  ]);
});

afterAll(async () => {
  await s?.stop();
  await removeServices(WEB, OTHER, CRASH, PREFAIL, SLOW);
});

const imagesOf = async (name: string) => (await runningTasks(name)).map((t) => t.Spec.ContainerSpec.Image as string);

describe('update on the real swarm', () => {
  it('rolls a 2-replica service on two workers from one image to v2, pinned by digest, with exec-pre and exec-post', async () => {
    const tasks = await runningTasks(WEB);
    expect(new Set(await Promise.all(tasks.map((t) => hostnameOf(t.NodeID))))).toEqual(new Set(['su-worker-1', 'su-worker-2']));
    const r = await fetch(`${s.url}/update?service=${WEB}&image=${encodeURIComponent(IMAGES.appV2)}&waitRes=true`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    const job: any = await r.json();
    expect(r.status, JSON.stringify(job)).toBe(200);
    expect(job.state).toBe('succeeded');
    expect(job.steps.map((x: any) => [x.name, x.state])).toEqual([
      ['exec-pre', 'done'],
      ['resolve-image', 'done'],
      ['update-service', 'done'],
      ['wait-rollout', 'done'],
      ['exec-post', 'done'],
    ]);
    expect(job.result.previousImage).toContain(appImage(TAG));
    expect(job.result.image).toMatch(new RegExp(`^${IMAGES.appV2.replace(/[.]/g, '\\.')}@sha256:[a-f0-9]{64}$`));
    const images = await imagesOf(WEB);
    expect(images).toEqual([job.result.image, job.result.image]);
    const now = await runningTasks(WEB);
    for (const t of now) {
      expect((await execInTask(t, ['cat', '/version'])).trim()).toBe('v2');
      // the volume lives on each worker: exec-pre ran in the old container, exec-post in the new one, on both nodes
      const log = await execInTask(t, ['cat', '/marks/log']);
      expect(log).toContain(`pre first-${id}`);
      expect(log).toContain('post v2');
    }
    // credentials went with the update: the workers pulled the private image
    expect(JSON.stringify(job)).not.toContain(REGISTRY_AUTH.password);
  });

  it('without an image: a new digest under the same tag is rolled out; an unchanged one restarts the tasks', async () => {
    await s.api('POST', '/jobs', { type: 'update', service: WEB, image: appImage(TAG), waitRes: true });
    const before = await runningTasks(WEB);
    await pushApp(TAG, `second-${id}`);
    const changed = await s.api('POST', '/jobs', { type: 'update', service: WEB, waitRes: true });
    expect(changed.status, JSON.stringify(changed.json)).toBe(200);
    expect(changed.json.steps[1].detail.forced).toBe(false);
    const after = await runningTasks(WEB);
    for (const t of after) expect((await execInTask(t, ['cat', '/version'])).trim()).toBe(`second-${id}`);
    expect(after.map((t) => t.ID).some((x) => before.some((b) => b.ID === x))).toBe(false);

    const same = await s.api('POST', '/jobs', { type: 'update', service: WEB, waitRes: true });
    expect(same.status, JSON.stringify(same.json)).toBe(200);
    expect(same.json.steps[1].detail.forced).toBe(true);
    expect(same.json.result.image).toBe(changed.json.result.image);
    const restarted = await runningTasks(WEB);
    expect(restarted.map((t) => t.ID).some((x) => after.some((a) => a.ID === x))).toBe(false);
  });

  it('a tag that does not exist fails REGISTRY_ERROR and leaves the service untouched', async () => {
    const before = await inspect(OTHER);
    const r = await s.api('POST', '/jobs', { type: 'update', service: OTHER, image: `${REGISTRY}/test/app:no-such-tag`, waitRes: true });
    expect(r.status).toBe(502);
    expect(r.json.error.code).toBe('REGISTRY_ERROR');
    const after = await inspect(OTHER);
    expect(after.Version.Index).toBe(before.Version.Index);
    expect(r.json.error.message).not.toContain(REGISTRY_AUTH.password);
  });

  it('an image whose container exits at once fails UPDATE_FAILED with the rollout message', async () => {
    await createAppService(CRASH, { replicas: 1 });
    const r = await s.api('POST', '/jobs', { type: 'update', service: CRASH, image: IMAGES.appCrash, waitRes: true });
    expect(r.status, JSON.stringify(r.json)).toBe(502);
    expect(r.json.error.code).toBe('UPDATE_FAILED');
    expect(r.json.error.message).toMatch(/paused|rollback|task/i);
  });

  it('a failing exec-pre fails the job before the service changes', async () => {
    await createAppService(PREFAIL, { onWorkers: true, labels: { 'swarm-utils.update.exec-pre': 'echo cannot >&2; exit 3' } });
    const before = await inspect(PREFAIL);
    const r = await s.api('POST', '/jobs', { type: 'update', service: PREFAIL, image: IMAGES.appV2, waitRes: true });
    expect(r.status).toBe(502);
    expect(r.json.error.code).toBe('EXEC_FAILED');
    expect(r.json.error.message).toContain('exit 3');
    expect(r.json.steps.slice(1).map((x: any) => x.state)).toEqual(['skipped', 'skipped', 'skipped', 'skipped']);
    expect((await inspect(PREFAIL)).Version.Index).toBe(before.Version.Index);
  });

  it('two simultaneous updates of one service: one runs, the other 409 LOCK_TIMEOUT', async () => {
    // exec-pre keeps the first update busy for 6 s, longer than the lock timeout
    await createAppService(SLOW, { labels: { 'swarm-utils.update.exec-pre': 'sleep 6' } });
    const [a, b] = await Promise.all([
      s.api('POST', '/jobs', { type: 'update', service: SLOW, image: IMAGES.appV2, waitRes: true }),
      s.api('POST', '/jobs', { type: 'update', service: SLOW, image: IMAGES.appV1, waitRes: true }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    const loser = a.status === 409 ? a : b;
    expect(loser.json.error.code).toBe('LOCK_TIMEOUT');
  });

  it('authorization: label token for its own service only, header and query; never in the log', async () => {
    const own = await s.api('POST', '/jobs', { type: 'update', service: WEB, image: appImage(TAG) }, WEB_TOKEN);
    expect(own.status).toBe(202);
    expect((await s.api('POST', '/jobs', { type: 'update', service: OTHER }, WEB_TOKEN)).status).toBe(403);
    expect((await s.api('POST', '/jobs', { type: 'update', service: OTHER }, 'unknown')).status).toBe(403);
    const q = await fetch(`${s.url}/update?service=${WEB}&image=${encodeURIComponent(appImage(TAG))}&token=${WEB_TOKEN}`, { method: 'POST' });
    expect(q.status).toBe(202);
    expect((await fetch(`${s.url}/update?service=${WEB}`, { method: 'POST' })).status).toBe(401);
    const list = await s.api('GET', '/jobs', undefined, WEB_TOKEN);
    expect(list.json.jobs.length).toBeGreaterThan(0);
    expect(list.json.jobs.every((j: any) => j.target.service === WEB)).toBe(true);
    await waitJob(s, own.json.id);
    expect(s.output()).not.toContain(WEB_TOKEN);
    expect(s.output()).not.toContain(ADMIN_TOKEN);
    expect(s.output()).not.toContain(REGISTRY_AUTH.password);
  });

  it('service status and metrics describe the real service and its jobs', async () => {
    const st = await s.api('GET', `/service/status?service=${WEB}&logs=5`, undefined, WEB_TOKEN);
    expect(st.status, JSON.stringify(st.json)).toBe(200);
    expect(st.json.replicas).toEqual({ desired: 2, running: 2 });
    const running = st.json.tasks.filter((t: any) => t.state === 'running');
    expect(new Set(running.map((t: any) => t.node))).toEqual(new Set(['su-worker-1', 'su-worker-2']));
    expect(st.json.labels['swarm-utils.update.token']).toBe('[redacted]');
    expect(st.json.jobs.length).toBeGreaterThan(0);
    expect(JSON.stringify(st.json)).not.toContain(WEB_TOKEN);
    expect((await s.api('GET', `/service/status?service=${OTHER}`, undefined, WEB_TOKEN)).status).toBe(403);
    const m = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(m.status).toBe(200);
    expect(await m.text()).toMatch(/swarm_utils_jobs\{type="update",state="succeeded"\} [1-9]/);
  });

  it('SIGKILL while the rollout converges: the restarted server resumes the job, which succeeds; the service was updated once', async () => {
    await waitRunning(WEB, 2);
    const start = await s.api('POST', '/jobs', { type: 'update', service: WEB, image: IMAGES.appV1 });
    expect(start.status).toBe(202);
    const jobId = start.json.id;
    await waitJob(s, jobId, 60_000, (j) => j.steps.find((x: any) => x.name === 'wait-rollout')?.state === 'running');
    const specBefore = await inspect(WEB);
    await s.kill9();
    s = await startServer(ENV, { dbPath: s.dbPath, port: s.port });
    const job = await waitJob(s, jobId);
    expect(job.state, JSON.stringify(job)).toBe('succeeded');
    const after = await inspect(WEB);
    // one update: the spec did not change again after the kill, and the previous spec is the one before this job
    expect(after.Spec.TaskTemplate.ContainerSpec.Image).toBe(specBefore.Spec.TaskTemplate.ContainerSpec.Image);
    expect(after.Spec.TaskTemplate.ForceUpdate ?? 0).toBe(specBefore.Spec.TaskTemplate.ForceUpdate ?? 0);
    expect(after.PreviousSpec.TaskTemplate.ContainerSpec.Image).toBe(specBefore.PreviousSpec.TaskTemplate.ContainerSpec.Image);
    expect(s.output()).toContain('resuming job interrupted by a restart');
    for (const img of await imagesOf(WEB)) expect(img).toBe(job.result.image);
  });
});
