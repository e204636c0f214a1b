/**
 * The production deployment path on the real test swarm, as the README's "Production deployment"
 * says: the image, the admin token secret, the manager labelled swarm-utils.data=true, then
 * `docker stack deploy --with-registry-auth -c swarm-stack.yml`.
 *
 * - The image is a stand-in: node:24-bookworm-slim cannot be pulled here, so
 *   test/swarm/images/swarm-utils/build.sh builds the Dockerfile's runtime stage on test/node:24
 *   (the Node 24 the tests run on, test/node.sh) from this checkout (dist/ from `npm run build`,
 *   node_modules after `npm prune --omit=dev`) and pushes it as 10.77.0.1:5443/test/swarm-utils:test
 *   (reused while its inputs do not change).
 * - swarm-stack.yml is deployed unchanged, plus deploy/registry-secrets.yml and deploy/s3-secrets.yml
 *   as the README tells an operator, and test/swarm/images/swarm-utils/stack.notify.yml: the registry
 *   and S3 credentials and the notification URL as Docker secrets read through *_FILE.
 * - Through the deployed instance: an update of a service on the workers, a backup of a stop=true
 *   service on a worker into s3rver, and their notifications to a receiver on the test host; the
 *   image's `swarm-utils` client lists the jobs from inside the container (docs/cli.md).
 *
 * Needs port 8080 on the manager (the stack publishes it in host mode) and the fixed names below;
 * what an interrupted run left (the stack, its volume, secrets labelled swarm-utils.test=stack)
 * is removed first. Everything made here is removed in afterAll.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { IMAGES, REGISTRY, REGISTRY_AUTH, S3 } from '../helpers/testbed.js';
import { createAppService, execInTask, manager, removeServices, runningTasks, uid } from '../helpers/cluster.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { deleteS3Prefix, removeVolumes, s3Client } from '../helpers/leftovers.js';
import {
  SWARM_UTILS_IMAGE as IMAGE,
  buildSwarmUtilsImage,
  createOwnSecrets,
  currentTask as taskOf,
  diagnostics as diagnosticsOf,
  dockerCli as docker,
  labelManagerForData,
  removeSecret,
  removeStack as removeStackOf,
  sleep,
  until as untilOr,
} from '../helpers/stack.js';

const STACK_OVERRIDES = ['deploy/registry-secrets.yml', 'deploy/s3-secrets.yml', 'test/swarm/images/swarm-utils/stack.notify.yml'];

const STACK = 'su-stack-test';
const SERVICE = `${STACK}_swarm-utils`;
const VOLUME = `${STACK}_swarm-utils-data`;
const NAMESPACE = `com.docker.stack.namespace=${STACK}`;
/** the manager's address and the port swarm-stack.yml publishes there (mode: host) */
const BASE_URL = 'http://10.77.0.1:8080';
/** marks the secrets this test creates, so a later run may remove what an interrupted one left */
const OWN = { key: 'swarm-utils.test', value: 'stack' } as const;

const TOKEN = `stack-admin-${randomBytes(16).toString('hex')}`;
const RUN = uid();
const APP = `stack-app-${RUN}`;
/** backed up through the deployed instance: stop=true, on a worker */
const DB = `stack-db-${RUN}`;
const DB_VOLUME = `stack-db-data-${RUN}`;
const S3_PREFIX = `stack-${RUN}`;
// s3rver checks no signature: a unique secret shows it never reaches a log or a notification
const S3_SECRET = `stack-s3-secret-${randomBytes(8).toString('hex')}`;
const HOOK_TOKEN = `stack-hook-${randomBytes(8).toString('hex')}`;
const SECRETS: Record<string, string> = {
  // the name swarm-stack.yml expects (external)
  swarm_utils_admin_tokens: TOKEN,
  // the names deploy/registry-secrets.yml, deploy/s3-secrets.yml and stack.notify.yml expect (external)
  swarm_utils_registry_user: REGISTRY_AUTH.username,
  swarm_utils_registry_password: REGISTRY_AUTH.password,
  swarm_utils_s3_access_key: S3.accessKey,
  swarm_utils_s3_secret_access_key: S3_SECRET,
  // set in beforeAll: the receiver's port is known once it listens
  swarm_utils_notify_url: '',
};
/** on the test host's bridge address, which the deployed container reaches */
let receiver: Receiver | null = null;

let managerId = '';
/** repo@sha256:… that build.sh pushed */
let pushed = '';
let deployed = false;
/** undoes the manager's swarm-utils.data label if this test set it */
let unlabel: (() => Promise<void>) | null = null;
const createdSecrets: string[] = [];
/** the update job, as GET /jobs/:id answered before the stack service was restarted */
let jobBefore: any = null;

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

async function serviceLogs(): Promise<string> {
  const r = await docker(['service', 'logs', '--raw', '--no-trunc', SERVICE]);
  return r.stdout + r.stderr;
}

async function containerLog(containerId: string): Promise<string> {
  const r = await docker(['logs', containerId]);
  return r.stdout + r.stderr;
}

const diagnostics = () => diagnosticsOf(SERVICE);
const currentTask = () => taskOf(SERVICE);
const removeStack = () => removeStackOf(STACK, [VOLUME]);
/** polls `probe` until it returns a value; a failure prints the stack service's tasks and log unless `diagnose` is false */
const until = <T>(what: string, ms: number, probe: () => Promise<T | null | undefined | false>, diagnose = true): Promise<T> =>
  untilOr(what, ms, probe, diagnose ? diagnostics : undefined);

async function api(method: string, path: string, token?: string, timeoutMs = 10_000): Promise<{ status: number; json: any }> {
  const r = await fetch(BASE_URL + path, {
    method,
    headers: token ? { authorization: `Bearer ${token}` } : {},
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await r.text();
  try {
    return { status: r.status, json: JSON.parse(text) };
  } catch {
    return { status: r.status, json: text };
  }
}

/** exec in a container on the manager: exit code and output */
async function execIn(containerId: string, cmd: string[]): Promise<{ code: number | null; output: string }> {
  const exec = await manager.getContainer(containerId).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  const sink = { write: (c: Buffer) => chunks.push(c) } as unknown as NodeJS.WritableStream;
  await new Promise<void>((resolve, reject) => {
    manager.modem.demuxStream(stream, sink, sink);
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  return { code: (await exec.inspect()).ExitCode, output: Buffer.concat(chunks).toString() };
}

/** what an interrupted run of this file left behind; refuses to touch secrets it did not create */
async function removeLeftovers(): Promise<void> {
  const stale = await manager.listServices({ filters: { name: ['stack-app-'] } });
  await removeServices(...stale.map((s: any) => s.Spec.Name as string).filter((n) => n.startsWith('stack-app-')));
  if ((await manager.listServices({ filters: { label: [NAMESPACE] } })).length) await removeStack();
  else await manager.getVolume(VOLUME).remove().catch(() => undefined);
  for (const name of Object.keys(SECRETS)) {
    const secret: any = await manager.getSecret(name).inspect().catch(() => null);
    if (!secret) continue;
    if (secret.Spec?.Labels?.[OWN.key] !== OWN.value) {
      throw new Error(`a Docker secret "${name}" exists that this test did not create (no label ${OWN.key}=${OWN.value}): remove it (docker secret rm ${name}) or run the test on another swarm`);
    }
    await removeSecret(name);
  }
}

beforeAll(async () => {
  managerId = (await manager.info()).Swarm.NodeID;
  await removeLeftovers();
  receiver = await startReceiver('10.77.0.1');
  SECRETS.swarm_utils_notify_url = `${receiver.url}/hook/${HOOK_TOKEN}`;
  const taken = await fetch(`${BASE_URL}/healthz`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.status, () => null);
  if (taken !== null) {
    throw new Error(`${BASE_URL} already answers (HTTP ${taken}): port 8080 on the manager is taken (test/demo.sh's server? a swarm-utils deployed by hand?); stop it and run again`);
  }

  pushed = await buildSwarmUtilsImage();
  expect(pushed).toMatch(/@sha256:[a-f0-9]{64}$/);

  createdSecrets.push(...(await createOwnSecrets(SECRETS, OWN)));
  // a label set before (by hand, for a deployment) stays; one this test set is removed after
  unlabel = await labelManagerForData();

  deployed = true;
  // both run to their end before a failure is reported, so afterAll never races a deploy
  const started = await Promise.allSettled([
    // the service the deployed instance updates: two tasks, one per worker, pulled with credentials
    createAppService(APP, { image: IMAGES.appV1, replicas: 2, onWorkers: true }),
    createAppService(DB, {
      constraints: ['node.hostname==su-worker-1'],
      mounts: [{ Type: 'volume', Source: DB_VOLUME, Target: '/data' }],
      labels: {
        'swarm-utils.backup.enable': 'true',
        'swarm-utils.backup.stop': 'true',
        'swarm-utils.backup.exec': 'echo "dump of $(hostname)" > /data/dump.sql',
      },
    }),
    (async () => {
      await docker(['stack', 'deploy', '--with-registry-auth', '--detach=true', '-c', 'swarm-stack.yml', ...STACK_OVERRIDES.flatMap((f) => ['-c', f]), STACK], {
        env: {
          SWARM_UTILS_IMAGE: IMAGE,
          SWARM_UTILS_REGISTRY_URL: `https://${REGISTRY}`,
          SWARM_UTILS_DOCKER_CLI_IMAGE_NAME: IMAGES.dockerCli,
          SWARM_UTILS_BACKUP_IMAGE: IMAGES.backup,
          SWARM_UTILS_S3_DOMAIN: S3.endpoint,
          SWARM_UTILS_S3_HTTPS: 'false',
          SWARM_UTILS_S3_BUCKET_NAME: S3.bucket,
          SWARM_UTILS_S3_PATH: S3_PREFIX,
          // the most the log says: none of it may hold a secret
          SWARM_UTILS_LOG_LEVEL: 'debug',
        },
      });
      // the start-up answerer says `starting: true` until the API itself has taken the port over
      await until(`${BASE_URL}/healthz of the deployed ${SERVICE} (the API, not the start-up answerer)`, 90_000, async () => {
        const h = await api('GET', '/healthz', undefined, 2_000);
        return h.status === 200 && !(h.json as { starting?: boolean }).starting;
      });
    })(),
  ]);
  for (const r of started) if (r.status === 'rejected') throw r.reason;
});

afterAll(async () => {
  const problems: string[] = [];
  const step = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      problems.push(`${what}: ${message(e)}`);
    }
  };
  await step(`remove services ${APP}, ${DB}`, () => removeServices(APP, DB));
  if (deployed) await step(`remove stack ${STACK} and volume ${VOLUME}`, removeStack);
  await step(`remove volume ${DB_VOLUME}`, () => removeVolumes([DB_VOLUME]));
  await step(`remove s3 prefix ${S3_PREFIX}`, () => deleteS3Prefix(S3_PREFIX));
  await step('stop the receiver', async () => receiver?.close());
  for (const name of createdSecrets) await step(`remove secret ${name}`, () => removeSecret(name));
  if (unlabel) await step('remove label swarm-utils.data of the manager', unlabel);
  if (problems.length) throw new Error(`clean-up incomplete:\n${problems.join('\n')}`);
});

describe('production deployment: the image + swarm-stack.yml through docker stack deploy', () => {
  it('runs one task on the labelled manager, the image pinned by digest, socket and /data volume mounted; /healthz and /readyz answer 200 on port 8080', async () => {
    const svc: any = await manager.getService(SERVICE).inspect();
    expect(svc.Spec.TaskTemplate.ContainerSpec.Image).toBe(`${IMAGE}@${pushed.split('@')[1]}`);
    expect(svc.Spec.Labels).toMatchObject({ 'com.docker.stack.namespace': STACK });
    // swarm-utils reads no label of its own service
    expect(Object.keys(svc.Spec.Labels).filter((k) => k.startsWith('swarm-utils.'))).toEqual([]);
    expect(svc.Spec.EndpointSpec.Ports).toEqual([expect.objectContaining({ TargetPort: 8080, PublishedPort: 8080, PublishMode: 'host' })]);

    const task = await currentTask();
    expect(task, await diagnostics()).toBeDefined();
    expect(task.NodeID).toBe(managerId);
    const containerId: string = task.Status.ContainerStatus.ContainerID;
    const c: any = await manager.getContainer(containerId).inspect();
    // the Dockerfile's runtime stage
    expect(c.Config.WorkingDir).toBe('/app');
    expect(c.Config.Cmd).toEqual(['node', 'dist/main.js']);
    expect(c.Config.Env).toEqual(expect.arrayContaining(['NODE_ENV=production', 'SWARM_UTILS_DB_PATH=/data/swarm-utils.db']));
    // the Dockerfile's node:24-bookworm-slim, here its stand-in test/node:24
    expect(c.Config.Env).toEqual(expect.arrayContaining([expect.stringMatching(/^NODE_VERSION=24\./)]));
    expect((await execIn(containerId, ['node', '--version'])).output.trim()).toMatch(/^v24\./);
    expect(c.Mounts).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ Type: 'bind', Source: '/var/run/docker.sock', Destination: '/var/run/docker.sock' }),
        expect.objectContaining({ Type: 'volume', Name: VOLUME, Destination: '/data' }),
      ]),
    );

    expect((await api('GET', '/healthz')).status).toBe(200);
    // the web console ships in the image: its page and modules, without a token
    const page = await api('GET', '/');
    expect(page.status).toBe(200);
    expect(page.json).toContain('/console/app.js');
    expect((await api('GET', '/console/app.js')).status).toBe(200);
    // ready: the database on /data is writable and the manager answers through the mounted socket
    const ready = await api('GET', '/readyz');
    expect(ready.status, JSON.stringify(ready.json)).toBe(200);
    expect(ready.json.checks).toEqual({ database: { ok: true }, docker: { ok: true }, stateCopy: { ok: true } });
    expect((await execIn(containerId, ['ls', '/data'])).output).toContain('swarm-utils.db');

    // the image's HEALTHCHECK passes in the deployed container (swarm runs it only after 30 s)
    const test: string[] = c.Config.Healthcheck?.Test ?? [];
    expect(test[0]).toBe('CMD-SHELL');
    const health = await execIn(containerId, ['sh', '-c', test[1] ?? 'exit 99']);
    expect(health.code, health.output).toBe(0);

    // the admin token list came from the secret
    expect((await api('GET', '/jobs')).status).toBe(401);
    expect((await api('GET', '/jobs', TOKEN)).status).toBe(200);
  });

  it('updates a two-replica service on the workers from v1 to v2 with the admin token and waitRes=true (registry credentials from *_FILE secrets); the log holds no secret', async () => {
    const r = await api('POST', `/update?service=${APP}&image=${encodeURIComponent(IMAGES.appV2)}&waitRes=true`, TOKEN, 180_000);
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const job = r.json;
    expect(job.state).toBe('succeeded');
    expect(job.steps.map((s: any) => [s.name, s.state])).toEqual([
      ['exec-pre', 'skipped'],
      ['resolve-image', 'done'],
      ['update-service', 'done'],
      ['wait-rollout', 'done'],
      ['exec-post', 'skipped'],
    ]);
    expect(job.result.image).toMatch(new RegExp(`^${IMAGES.appV2.replace(/[.]/g, '\\.')}@sha256:[a-f0-9]{64}$`));

    const tasks = await runningTasks(APP);
    expect(tasks).toHaveLength(2);
    for (const t of tasks) {
      expect(t.Spec.ContainerSpec.Image).toBe(job.result.image);
      expect((await execInTask(t, ['cat', '/version'])).trim()).toBe('v2');
    }

    const got = await api('GET', `/jobs/${job.id}`, TOKEN);
    expect(got.status, JSON.stringify(got.json)).toBe(200);
    expect(got.json).toMatchObject({ id: job.id, type: 'update', state: 'succeeded', target: { service: APP }, result: { image: job.result.image } });
    // NOTIFY_ON=always (stack.notify.yml): the job reaches the receiver on the test host, then shows notifiedAt
    const notified = await until(`the notification of update job ${job.id}`, 60_000, async () => {
      if (!receiver!.received.some((x) => x.json?.job?.id === job.id)) return null;
      const j = await api('GET', `/jobs/${job.id}`, TOKEN);
      return j.json.notifiedAt ? j.json : null;
    }, false);
    expect(receiver!.received.find((x) => x.json?.job?.id === job.id)!.json).toEqual({ event: 'succeeded', job: { ...notified, notifiedAt: null } });
    jobBefore = notified;

    // swarm reports the task `starting` until the image's HEALTHCHECK first passes (its interval is
    // 30 s), and `docker service logs` shows nothing of a task before it runs
    const logs = await until(`${SERVICE} running (healthy) and the update request in its service log`, 60_000, async () => {
      if ((await currentTask())?.Status?.State !== 'running') return null;
      const l = await serviceLogs();
      return l.includes(`/update?service=${APP}`) ? l : null;
    });
    expect(logs).toContain('swarm-utils started');
    expect(logs).not.toContain(TOKEN);
    expect(logs).not.toContain(REGISTRY_AUTH.password);
  });

  it('backs up a stop=true service on a worker into S3 (credentials from *_FILE secrets), notifies the receiver; no secret and no Node warning in its log', async () => {
    const r = await api('POST', `/backup?service=${DB}&waitRes=true`, TOKEN, 180_000);
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const job = r.json;
    expect(job.steps.map((s: any) => [s.name, s.state])).toEqual([
      ['resolve', 'done'],
      ['exec', 'done'],
      ['prepare', 'done'],
      ['stop', 'done'],
      ['stage', 'done'],
      ['archive', 'skipped'],
      ['start', 'done'],
      ['archive-staged', 'done'],
      ['verify', 'done'],
      ['retention', 'skipped'],
      ['unstage', 'done'],
    ]);
    expect(job.result.archives).toHaveLength(1);
    const [archive] = job.result.archives;
    expect(archive).toMatchObject({ node: 'su-worker-1', volume: DB_VOLUME });
    expect(archive.key.startsWith(`${S3_PREFIX}/su-worker-1_${DB_VOLUME}_`)).toBe(true);
    const listed = await s3Client.send(new ListObjectsV2Command({ Bucket: S3.bucket, Prefix: `${S3_PREFIX}/` }));
    // beside it only the copy of the state (README "Losing its manager")
    const objects = listed.Contents?.map((o) => [o.Key, o.Size]) ?? [];
    expect(objects.filter(([key]) => key !== `${S3_PREFIX}/.swarm-utils/state.db.gz`)).toEqual([[archive.key, archive.size]]);
    expect(objects.map(([key]) => key)).toContain(`${S3_PREFIX}/.swarm-utils/state.db.gz`);
    expect((await runningTasks(DB)).length).toBe(1);

    const note = await until(`the notification of backup job ${job.id}`, 60_000, async () => receiver!.received.find((x) => x.json?.job?.id === job.id), false);
    expect(note.path).toBe(`/hook/${HOOK_TOKEN}`);
    expect(note.json).toMatchObject({ event: 'succeeded', job: { id: job.id, type: 'backup', state: 'succeeded', result: { archives: [archive] } } });
    const logs = await until(`the backup in the service log of ${SERVICE}`, 30_000, async () => {
      const l = await serviceLogs();
      return l.includes(`/backup?service=${DB}`) && l.includes('notification delivered') ? l : null;
    });
    for (const text of [logs, ...receiver!.received.map((x) => x.text)]) {
      for (const secret of [S3_SECRET, TOKEN, REGISTRY_AUTH.password, HOOK_TOKEN]) expect(text).not.toContain(secret);
    }
    // Node 24: neither Node nor the AWS SDK (which warns on Node 20) prints a warning
    expect(logs).not.toMatch(/\(node:\d+\)|Warning:/);
  });

  it('the CLI in the image: docker exec <container> swarm-utils jobs ls, with no token flag (the admin token file the service reads)', async () => {
    expect(jobBefore, 'the update test did not record its job').not.toBeNull();
    const task = await currentTask();
    expect(task, await diagnostics()).toBeDefined();
    const container: string = task.Status.ContainerStatus.ContainerID;
    const table = await docker(['exec', container, 'swarm-utils', 'jobs', 'ls', '--type', 'update']);
    expect(table.stdout).toMatch(new RegExp(`^${jobBefore.id} +update +${APP} +succeeded`, 'm'));
    const json = await docker(['exec', container, 'swarm-utils', '--json', 'jobs', 'show', String(jobBefore.id)]);
    expect(JSON.parse(json.stdout)).toMatchObject({ id: jobBefore.id, state: 'succeeded' });
    const version = await docker(['exec', container, 'swarm-utils', 'version']);
    expect(version.stdout).toMatch(/^client \S+/m);
    for (const text of [table.stdout, table.stderr, json.stdout, json.stderr, version.stdout]) expect(text).not.toContain(TOKEN);
  });

  it('keeps the job through a forced update of the stack service (stop-first; the database is on the /data volume)', async () => {
    expect(jobBefore, 'the update test did not record its job').not.toBeNull();
    const before = await currentTask();
    expect(before, await diagnostics()).toBeDefined();
    const oldContainer: string = before.Status.ContainerStatus.ContainerID;

    await docker(['service', 'update', '--force', '--detach', SERVICE]);
    const after = await until(`a new task of ${SERVICE} answering /readyz`, 90_000, async () => {
      const t = await currentTask();
      if (!t || t.ID === before.ID) return null;
      // stop-first: the old container is gone before the new one answers
      const old: any = await manager.getContainer(oldContainer).inspect().catch(() => null);
      if (old?.State?.Running) return null;
      return (await api('GET', '/readyz', undefined, 2_000)).status === 200 ? t : null;
    });
    expect(after.NodeID).toBe(managerId);
    expect(after.Status.ContainerStatus.ContainerID).not.toBe(oldContainer);

    const got = await api('GET', `/jobs/${jobBefore.id}`, TOKEN);
    expect(got.status, JSON.stringify(got.json)).toBe(200);
    expect(got.json).toEqual(jobBefore);
    const list = await api('GET', '/jobs?type=update', TOKEN);
    expect(list.json.jobs.map((j: any) => j.id)).toContain(jobBefore.id);

    // the containers' own logs (the new task is `starting` for 30 s, so docker service logs has
    // nothing of it yet): the first one stopped on SIGTERM, the second one started
    const [oldLog, newLog] = await Promise.all([containerLog(oldContainer), containerLog(after.Status.ContainerStatus.ContainerID)]);
    expect(oldLog).toContain('stopping: running jobs resume at the next start');
    expect(newLog).toContain('swarm-utils started');
    for (const log of [oldLog, newLog]) {
      expect(log).not.toContain(TOKEN);
      expect(log).not.toContain(REGISTRY_AUTH.password);
    }
  });
});
