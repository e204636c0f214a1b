/**
 * Losing the manager that runs swarm-utils (README "Losing its manager"), on the real test swarm:
 *
 * - the two workers are promoted (three managers: the swarm keeps its quorum when one is lost);
 * - swarm-utils is deployed from this checkout with swarm-stack.yml and the deploy/ fragments, as the
 *   README says, plus test/swarm/images/swarm-utils/stack.takeover.yml, which keeps it off the test
 *   host's manager (the host's dockerd is never stopped): it runs on one worker-manager;
 * - a stop=true backup of a service on the other worker-manager starts; while that service is at 0 (its
 *   archive's upload held by a proxy), the dockerd of the manager that runs swarm-utils is stopped;
 * - Docker reschedules swarm-utils on the other worker-manager, where /data is empty: it restores the state
 *   from the bucket, resumes the job, and the service runs again at its recorded count; the job ends and
 *   its result says it was taken over. The time from the loss to the service running again is printed.
 *
 * afterAll heals exactly, also after a failure: the daemon started again (test/swarm/up.sh), the stack,
 * its volume on every node, the service, the helpers and secrets removed, both workers demoted, and
 * test/swarm/check.sh green. The test holds the cluster-test lock for the whole promote…demote window
 * (npm run test:cluster runs under test/swarm/exclusive.sh): other tests assume the workers are workers.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { IMAGES, REGISTRY, REGISTRY_AUTH, S3, SWARM_SCRIPTS_DIR, WORKERS, dockerFor, run } from '../helpers/testbed.js';
import { createAppService, inspect, manager, runningTasks, uid } from '../helpers/cluster.js';
import { SWARM_UTILS_IMAGE, buildSwarmUtilsImage, createOwnSecrets, dockerCli, removeSecret, sleep, until } from '../helpers/stack.js';
import { deleteS3Prefix, s3Client } from '../helpers/leftovers.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { openCopy } from '../helpers/state-fixture.js';

const STACK = 'su-loss-test';
const SERVICE = `${STACK}_swarm-utils`;
const VOLUME = `${STACK}_swarm-utils-data`;
const NAMESPACE = `com.docker.stack.namespace=${STACK}`;
const FILES = ['swarm-stack.yml', 'deploy/registry-secrets.yml', 'deploy/s3-secrets.yml', 'test/swarm/images/swarm-utils/stack.takeover.yml'];
/** marks the secrets this test creates, so a later run may remove what an interrupted one left */
const OWN = { key: 'swarm-utils.test', value: 'manager-loss' } as const;
const RUN = uid();
const PREFIX = `loss-${RUN}`;
const STATE_KEY = `${PREFIX}/.swarm-utils/state.db.gz`;
const TOKEN = `loss-admin-${randomBytes(16).toString('hex')}`;
const S3_SECRET = `loss-s3-secret-${randomBytes(8).toString('hex')}`;
const APP = `loss-db-${RUN}`;
const APP_VOLUME = `loss-db-data-${RUN}`;
const WORKER_NAMES = WORKERS.map((w) => w.hostname);
const IP: Record<string, string> = { 'su-worker-1': '10.77.0.2', 'su-worker-2': '10.77.0.3' };
const SECRETS: Record<string, string> = {
  swarm_utils_admin_tokens: TOKEN,
  swarm_utils_registry_user: REGISTRY_AUTH.username,
  swarm_utils_registry_password: REGISTRY_AUTH.password,
  swarm_utils_s3_access_key: S3.accessKey,
  swarm_utils_s3_secret_access_key: S3_SECRET,
};

let proxy: Proxy;
let hostName = '';
let promoted = false;
let deployed = false;
const createdSecrets: string[] = [];
/** the manager swarm-utils ran on (its daemon is stopped) and the other worker-manager */
let lost = '';
let other = '';
let instance = '';

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

async function api(host: string, method: string, path: string, timeoutMs = 10_000): Promise<{ status: number; json: any }> {
  const r = await fetch(`http://${IP[host]}:8080${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(timeoutMs) });
  const text = await r.text();
  try {
    return { status: r.status, json: JSON.parse(text) };
  } catch {
    return { status: r.status, json: text };
  }
}

/** the swarm-utils task that runs (state running), with its node's hostname */
async function runningSwarmUtils(): Promise<{ task: any; node: string } | null> {
  const tasks = await manager.listTasks({ filters: { service: [SERVICE], 'desired-state': ['running'] } });
  const task = tasks.find((t: any) => t.Status?.State === 'running');
  if (!task) return null;
  const node: any = await manager.getNode(task.NodeID).inspect();
  return { task, node: node.Description.Hostname };
}

async function diagnostics(): Promise<string> {
  const ps = await dockerCli(['service', 'ps', '--no-trunc', '--format', '{{.Name}} {{.Node}} desired={{.DesiredState}} {{.CurrentState}} {{.Error}}', SERVICE], { mayFail: true });
  const nodes = await dockerCli(['node', 'ls'], { mayFail: true });
  return `docker service ps ${SERVICE}:\n${ps.stdout}${ps.stderr}\ndocker node ls:\n${nodes.stdout}`;
}

async function nodeLog(node: string, containerId: string): Promise<string> {
  const socket = WORKERS.find((w) => w.hostname === node)!.socket;
  const r = await run('docker', ['-H', `unix://${socket}`, 'logs', containerId], { timeoutMs: 30_000 });
  return r.stdout + r.stderr;
}

async function nodeId(hostname: string): Promise<string> {
  return ((await manager.listNodes()).find((n: any) => n.Description?.Hostname === hostname && n.Status?.State !== 'down')?.ID as string) ?? '';
}

async function roles(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of await manager.listNodes()) out[n.Description.Hostname] = `${n.Spec.Role}/${n.Status.State}/${n.ManagerStatus?.Reachability ?? '-'}`;
  return out;
}

/** lib.sh's stop_worker: the node's dockerd stops (and the containers on it with it) */
async function stopDaemon(node: string): Promise<void> {
  const r = await run('bash', ['-c', `. "${SWARM_SCRIPTS_DIR}lib.sh" && stop_worker "$1"`, 'stop', node], { timeoutMs: 90_000 });
  if (r.code !== 0) throw new Error(`stop_worker ${node} failed (exit ${r.code}):\n${r.stderr}${r.stdout}`);
}

beforeAll(async () => {
  hostName = (await manager.info()).Name;
  await removeLeftovers();
  const nodes = await roles();
  for (const w of WORKER_NAMES) expect(nodes[w], `the test swarm has ${JSON.stringify(nodes)}`).toMatch(/\/ready\//);
  proxy = await startProxy({ listen: { host: '10.77.0.1', port: 0 }, target: { host: '10.77.0.1', port: 9000 } });
  const pushed = await buildSwarmUtilsImage();
  expect(pushed).toMatch(/@sha256:[a-f0-9]{64}$/);

  // a swarm whose Raft is already slow is not reshaped (adding members to it can stall it for everyone)
  const before = await raftWriteMs();
  if (before > 3_000) throw new Error(`a write to the swarm takes ${before} ms: its Raft is not healthy enough to add managers to; nothing was changed`);
  // one at a time, each checked: a member added before the previous one joined would need it for the quorum
  promoted = true;
  for (const w of WORKER_NAMES) {
    await dockerCli(['node', 'promote', w], { timeoutMs: 60_000 });
    await until(`${w} a reachable manager`, 60_000, async () => ((await roles())[w] === 'manager/ready/reachable' ? true : null), async () => JSON.stringify(await roles()));
    // the first writes after a promotion wait for the new member; then they are quick again
    await raftSettled(`with ${w} a manager`);
  }

  createdSecrets.push(...(await createOwnSecrets(SECRETS, OWN)));
  deployed = true;
  await dockerCli(['stack', 'deploy', '--with-registry-auth', '--detach=true', ...FILES.flatMap((f) => ['-c', f]), STACK], {
    env: {
      SU_TEST_AVOID_HOSTNAME: hostName,
      SWARM_UTILS_IMAGE,
      SWARM_UTILS_REGISTRY_URL: `https://${REGISTRY}`,
      SWARM_UTILS_DOCKER_CLI_IMAGE_NAME: IMAGES.dockerCli,
      SWARM_UTILS_BACKUP_IMAGE: IMAGES.backup,
      // through a proxy on the host: the test holds the archive's upload, never the state's copies
      SWARM_UTILS_S3_DOMAIN: proxy.address,
      SWARM_UTILS_S3_HTTPS: 'false',
      SWARM_UTILS_S3_BUCKET_NAME: S3.bucket,
      SWARM_UTILS_S3_PATH: PREFIX,
      SWARM_UTILS_LOG_LEVEL: 'debug',
    },
  });
  const first = await until(`${SERVICE} running on a worker-manager`, 120_000, runningSwarmUtils, diagnostics);
  lost = first.node;
  other = WORKER_NAMES.find((w) => w !== lost)!;
  expect(WORKER_NAMES).toContain(lost);
  await until(`/healthz of swarm-utils on ${lost}`, 60_000, async () => (await api(lost, 'GET', '/healthz', 2_000)).status === 200, diagnostics);
  // two promotions, each waiting up to 180 s for the Raft writes to be quick again, and the stack deploy
}, 600_000);

afterAll(async () => {
  const problems: string[] = [];
  const step = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      problems.push(`${what}: ${message(e)}`);
    }
  };
  await step('release the proxy', async () => proxy?.resume());
  if (deployed) await step(`docker stack rm ${STACK}`, () => dockerCli(['stack', 'rm', STACK], { mayFail: true }));
  await step(`remove service ${APP}`, () => manager.getService(APP).remove().catch(() => undefined));
  // the stopped daemon started again: up.sh starts whatever is not running (and checks the swarm)
  await step('test/swarm/up.sh', async () => {
    const up = await run('bash', [`${SWARM_SCRIPTS_DIR}up.sh`], { timeoutMs: 600_000 });
    if (up.code !== 0) throw new Error(`exit ${up.code}: ${up.stderr.slice(-2000)}`);
  });
  await step('the stack, helpers and their containers gone on every node', () => removeOwnedEverywhere());
  if (promoted) await step('demote the workers', demoteWorkers);
  for (const name of createdSecrets) await step(`remove secret ${name}`, () => removeSecret(name));
  await step(`remove s3 prefix ${PREFIX}`, () => deleteS3Prefix(PREFIX));
  await step('close the proxy', async () => proxy?.close());
  await step('test/swarm/check.sh', async () => {
    let check = await run('bash', [`${SWARM_SCRIPTS_DIR}check.sh`], { timeoutMs: 120_000 });
    if (check.code !== 0) {
      await run('bash', [`${SWARM_SCRIPTS_DIR}up.sh`], { timeoutMs: 600_000 });
      check = await run('bash', [`${SWARM_SCRIPTS_DIR}check.sh`], { timeoutMs: 120_000 });
    }
    if (check.code !== 0) throw new Error(check.stdout);
  });
  if (problems.length) throw new Error(`clean-up incomplete:\n${problems.join('\n')}`);
});

/** the stack, the app service, the helpers and Docker secrets of the deployed installation, and their containers and volumes, on every node */
async function removeOwnedEverywhere(): Promise<void> {
  await until(`the services of stack ${STACK} gone`, 60_000, async () => (await manager.listServices({ filters: { label: [NAMESPACE] } })).length === 0);
  // the installation's id names its helpers and their secrets; the bucket's copy knows it when the test did not get that far
  instance ||= (await s3Client.send(new HeadObjectCommand({ Bucket: S3.bucket, Key: STATE_KEY })).then((h) => h.Metadata?.installation ?? '', () => ''));
  const prefix = instance ? `swarm-utils-${instance}-` : null;
  if (prefix) {
    for (const h of await manager.listServices({ filters: { label: ['swarm-utils.helper'] } })) {
      if (h.Spec?.Name?.startsWith(prefix)) await manager.getService(h.ID).remove().catch(() => undefined);
    }
  }
  const daemons = [manager, ...WORKER_NAMES.map((w) => dockerFor(w))];
  await until('the containers of the stack, the service and the helpers gone on every node', 90_000, async () => {
    let left = 0;
    for (const d of daemons) {
      const all = await d.listContainers({ all: true });
      for (const c of all) {
        const ours = c.Labels?.['com.docker.stack.namespace'] === STACK || c.Names.some((n) => n.startsWith(`/${APP}.`) || (prefix !== null && n.startsWith(`/${prefix}`)));
        if (!ours) continue;
        left++;
        await d.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
      }
    }
    return left === 0;
  });
  if (prefix) {
    for (const s of await manager.listSecrets()) if (s.Spec?.Name?.startsWith(prefix)) await removeSecret(s.Spec.Name);
  }
  await until('the networks of the stack gone', 60_000, async () => (await manager.listNetworks({ filters: { label: [NAMESPACE] } })).length === 0);
  for (const d of daemons) {
    for (const v of [VOLUME, APP_VOLUME]) {
      const err = await d.getVolume(v).remove().then(() => null, (e: any) => e);
      if (err && err.statusCode !== 404) throw new Error(`volume ${v}: ${message(err)}`);
    }
  }
}

/**
 * Every manager entry of a worker's hostname becomes a worker again, one at a time, the unreachable ones
 * first (removing a reachable one first could leave a Raft without its quorum); entries of a node that
 * left are removed by up.sh, which runs again if the swarm is not in its shape.
 */
async function demoteWorkers(): Promise<void> {
  const isMember = (n: any) => n.Spec.Role === 'manager' || n.ManagerStatus !== undefined;
  for (let round = 0; round < 3; round++) {
    // a promotion or demotion still under way settles first (its role and its Raft membership agree)
    await until('the roles of the workers settled', 60_000, async () =>
      (await manager.listNodes()).filter((n: any) => WORKER_NAMES.includes(n.Description?.Hostname)).every((n: any) => (n.Spec.Role === 'manager') === (n.ManagerStatus !== undefined)),
    ).catch(() => undefined);
    const entries = (await manager.listNodes()).filter((n: any) => WORKER_NAMES.includes(n.Description?.Hostname) && isMember(n));
    if (!entries.length) break;
    entries.sort((x: any, y: any) => Number(x.ManagerStatus?.Reachability === 'reachable') - Number(y.ManagerStatus?.Reachability === 'reachable'));
    for (const n of entries) {
      await dockerCli(['node', 'demote', n.ID], { mayFail: true, timeoutMs: 60_000 });
      await until(`${n.Description.Hostname} (${n.ID}) out of the managers`, 60_000, async () => {
        const now: any = await manager.getNode(n.ID).inspect().catch(() => null);
        return !now || !isMember(now);
      }).catch(() => undefined);
    }
  }
  const left = (await manager.listNodes()).filter(isMember).map((n: any) => n.Description.Hostname);
  if (left.join() !== hostName) throw new Error(`managers left: ${left.join(', ')}`);
  await raftSettled('after the demotions');
}

/** writes to the swarm are quick (under 2 s) again within 180 s (a write that times out counts as slow; a busy 2-core machine has needed more than 90 s after a promotion) */
async function raftSettled(when: string): Promise<void> {
  const end = Date.now() + 180_000;
  const seen: string[] = [];
  for (;;) {
    const ms = await raftWriteMs().catch((e: unknown) => {
      seen.push(`failed (${message(e).trim().split('\n').pop()})`);
      return Infinity;
    });
    if (ms < 2_000) return;
    if (ms !== Infinity) seen.push(`${ms} ms`);
    if (Date.now() > end) throw new Error(`${when}, writes to the swarm stay slow: ${seen.join(', ')}`);
  }
}

/** how long one write to the swarm's store takes (a label of the test's own on the host's node, set and removed) */
async function raftWriteMs(): Promise<number> {
  const t0 = Date.now();
  await dockerCli(['node', 'update', '--label-add', 'swarm-utils.test.raft-probe=1', hostName], { timeoutMs: 60_000 });
  const ms = Date.now() - t0;
  await dockerCli(['node', 'update', '--label-rm', 'swarm-utils.test.raft-probe', hostName], { timeoutMs: 60_000 });
  return ms;
}

/** what an interrupted run of this file left: its stack and service; refuses secrets it did not create (createOwnSecrets checks) */
async function removeLeftovers(): Promise<void> {
  if ((await manager.listServices({ filters: { label: [NAMESPACE] } })).length) {
    await dockerCli(['stack', 'rm', STACK], { mayFail: true });
    await until(`the services of stack ${STACK} gone`, 60_000, async () => (await manager.listServices({ filters: { label: [NAMESPACE] } })).length === 0);
  }
  for (const s of await manager.listServices({ filters: { name: ['loss-db-'] } })) await manager.getService(s.ID).remove().catch(() => undefined);
}

describe('losing the manager that runs swarm-utils', () => {
  it('during a stop=true backup: swarm-utils moves to another manager, restores the state from the bucket, and the service runs again at its recorded count; the job ends and says so', async () => {
    await createAppService(APP, {
      replicas: 2,
      constraints: [`node.hostname==${other}`],
      mounts: [{ Type: 'volume', Source: APP_VOLUME, Target: '/data' }],
      labels: {
        'swarm-utils.backup.enable': 'true',
        'swarm-utils.backup.stop': 'true',
        // archived while stopped (no staging copy): the service stays at 0 as long as the archive runs
        'swarm-utils.backup.stage': 'false',
      },
    });
    // the archive's upload waits for the test: the service is at 0 when the manager is lost
    proxy.holdOn(new RegExp(`^PUT /${S3.bucket}/${PREFIX}/${other}_`));
    const submitted = await api(lost, 'POST', `/backup?service=${APP}`);
    expect(submitted.status, JSON.stringify(submitted.json)).toBe(202);
    const jobId: number = submitted.json.id;
    await until('the archive running, its helper on the other manager, the service at 0', 120_000, async () => {
      const j = (await api(lost, 'GET', `/jobs/${jobId}`)).json;
      if (j.steps?.find((s: any) => s.name === 'archive')?.state !== 'running') return null;
      if ((await inspect(APP)).Spec.Mode.Replicated.Replicas !== 0 || (await runningTasks(APP)).length) return null;
      const helpers = await dockerFor(other).listContainers({ filters: { name: [`-${jobId}-archive-`] } });
      return helpers.length > 0;
    }, diagnostics);
    // before the helper was made, the bucket's copy had the job at its archive, the service held at 2
    const copy = await s3Client.send(new GetObjectCommand({ Bucket: S3.bucket, Key: STATE_KEY }));
    const { db } = await openCopy(Buffer.from(await copy.Body!.transformToByteArray()));
    try {
      expect(db.prepare("SELECT state FROM steps WHERE job_id = ? AND name = 'archive'").pluck().get(jobId)).toBe('running');
      expect(db.prepare('SELECT state, replicas FROM service_holds WHERE job_id = ?').get(jobId)).toEqual({ state: 'held', replicas: 2 });
      instance = db.prepare("SELECT value FROM meta WHERE key = 'instance'").pluck().get() as string;
    } finally {
      db.close();
    }
    const before = (await runningSwarmUtils())!;
    expect(before.node).toBe(lost);

    // the manager that runs swarm-utils is lost
    const t0 = Date.now();
    await stopDaemon(lost);
    const stopped = Date.now();
    proxy.resume();
    const lostId = before.task.NodeID as string;
    const seen: Record<string, number> = {};
    await until('the service running again at its 2 replicas', 240_000, async () => {
      if (!seen.nodeDown && (await manager.getNode(lostId).inspect()).Status.State === 'down') seen.nodeDown = Date.now();
      if (!seen.swarmUtilsStarted) {
        const tasks = await manager.listTasks({ filters: { service: [SERVICE], 'desired-state': ['running'], node: [await nodeId(other)] } });
        if (tasks.some((t: any) => ['starting', 'running'].includes(t.Status?.State))) seen.swarmUtilsStarted = Date.now();
      }
      if ((await runningTasks(APP)).length === 2) seen.serviceRunning = Date.now();
      return seen.serviceRunning ? true : null;
    }, diagnostics);
    expect((await inspect(APP)).Spec.Mode.Replicated.Replicas).toBe(2);
    const after = await until(`swarm-utils running on ${other}`, 120_000, runningSwarmUtils, diagnostics);
    expect(after.node).toBe(other);
    const log = await nodeLog(other, after.task.Status.ContainerStatus.ContainerID);
    // when the new process restored the copy, by its own log
    const restoredAt = Date.parse(/"time":"([^"]+)"[^\n]*no local database: restored the bucket’s copy/.exec(log)?.[1] ?? '');
    const s = (at: number | undefined) => (at ? `${((at - t0) / 1000).toFixed(1)} s` : 'not seen');
    console.log(
      `manager ${lost} lost → ${APP} running again at 2 replicas after ${s(seen.serviceRunning)} ` +
        `(its daemon stopped after ${s(stopped)}, the node seen down after ${s(seen.nodeDown)}, swarm-utils starting on ${other} after ${s(seen.swarmUtilsStarted)}, ` +
        `the state restored from the bucket after ${s(Number.isNaN(restoredAt) ? undefined : restoredAt)})`,
    );

    await until(`/healthz of swarm-utils on ${other}`, 60_000, async () => (await api(other, 'GET', '/healthz', 2_000)).status === 200);
    const done = await until(`job ${jobId} ended`, 120_000, async () => {
      const j = (await api(other, 'GET', `/jobs/${jobId}`)).json;
      return ['succeeded', 'failed', 'canceled'].includes(j.state) ? j : null;
    });
    // The job finishes, or fails cleanly: the daemon being stopped may answer the process still running on
    // it "This node is not a swarm manager" while it polls the archive helper, and that failure reaches the
    // bucket's copy before the process dies; the takeover then gives the service back and ends the job
    // failed, saying why. Either way the service runs again at its recorded count (checked above).
    const lostDaemon = done.state === 'failed' && done.error?.code === 'DOCKER_ERROR' && /not a swarm manager/.test(done.error.message);
    expect(done.state === 'succeeded' || lostDaemon, JSON.stringify(done)).toBe(true);
    expect(done.steps.map((s: any) => [s.name, s.state])).toEqual([
      ['resolve', 'done'],
      ['exec', 'skipped'],
      ['prepare', 'skipped'],
      ['stop', 'done'],
      ['stage', 'skipped'],
      ['archive', lostDaemon ? 'failed' : 'done'],
      ['start', 'done'],
      ['archive-staged', 'skipped'],
      ['verify', lostDaemon ? 'skipped' : 'done'],
      ['retention', 'skipped'],
      ['unstage', 'skipped'],
    ]);
    expect(done.steps.find((s: any) => s.name === 'start').output).toMatch(/runs 2 replica\(s\) again/);
    expect(done.result.takeover).toMatchObject({ generation: expect.any(Number), previousOwner: expect.any(String) });
    expect(done.result.takeover.message).toMatch(/the manager that ran this job was lost; another instance restored the state from the bucket/);
    if (!lostDaemon) expect(done.result.archives).toEqual([expect.objectContaining({ node: other, volume: APP_VOLUME })]);

    expect(log).toContain('no local database: restored the bucket’s copy');
    expect(log).toContain('resuming job taken over from a lost manager');
    for (const secret of [TOKEN, S3_SECRET, REGISTRY_AUTH.password]) expect(log).not.toContain(secret);
  });
});
