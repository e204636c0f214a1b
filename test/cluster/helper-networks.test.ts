/**
 * An S3 server inside the swarm, known only by its service name, as an operator runs MinIO: the
 * test S3 server (s3rver) runs as a swarm service on an overlay network on su-worker-2; swarm-utils
 * is deployed as the README says (swarm-stack.yml + deploy/s3-secrets.yml + deploy/registry-secrets.yml
 * + deploy/s3-network.yml, SWARM_UTILS_HELPER_NETWORKS naming that network); a backup of a volume on
 * su-worker-1 reaches the bucket through the overlay network, from the helper on su-worker-1 and
 * from swarm-utils on the manager, both across nodes.
 *
 * The S3 service uses endpoint_mode dnsrr: a service VIP needs IPVS, which the test machines' kernel
 * lacks (README "The test swarm"), while the task addresses dnsrr gives work across nodes here. In
 * production the default VIP mode works the same way.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { IMAGES, REGISTRY, REGISTRY_AUTH, dockerFor, run } from '../helpers/testbed.js';
import { createAppService, execInTask, manager, removeServices, runningTasks, uid } from '../helpers/cluster.js';
import {
  SWARM_UTILS_IMAGE,
  buildS3rverImage,
  buildSwarmUtilsImage,
  createOwnSecrets,
  currentTask,
  diagnostics,
  dockerCli,
  labelManagerForData,
  removeSecret,
  removeStack,
  until,
} from '../helpers/stack.js';

const id = uid();
const STACK = 'su-net-test';
const SERVICE = `${STACK}_swarm-utils`;
const VOLUME = `${STACK}_swarm-utils-data`;
const BASE_URL = 'http://10.77.0.1:8080';
const NET = `su-net-${id}`;
const S3_SERVICE = `s3-${id}`;
const S3_PORT = 19_000 + Math.floor(Math.random() * 900);
/** the S3 service's port published on su-worker-2 itself, so the test can read the bucket */
const S3_FROM_HOST = `http://10.77.0.3:${S3_PORT}`;
const BUCKET = 'in-swarm';
const APP = `net-app-${id}`;
const APP_VOLUME = `net-data-${id}`;
const PREFIX = `net-${id}`;
const TOKEN = `net-admin-${randomBytes(16).toString('hex')}`;
const OWN = { key: 'swarm-utils.test', value: 'helper-networks' } as const;
const SECRETS: Record<string, string> = {
  swarm_utils_admin_tokens: TOKEN,
  swarm_utils_registry_user: REGISTRY_AUTH.username,
  swarm_utils_registry_password: REGISTRY_AUTH.password,
  swarm_utils_s3_access_key: 'S3RVER',
  swarm_utils_s3_secret_access_key: `s3-secret-${id}`,
};

let created: string[] = [];
let unlabel: (() => Promise<void>) | null = null;
let deployed = false;
let netId = '';
const tmp = mkdtempSync(path.join(tmpdir(), 'swarm-utils-net-'));

async function api(method: string, p: string, timeoutMs = 10_000): Promise<{ status: number; json: any }> {
  const r = await fetch(BASE_URL + p, { method, headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(timeoutMs) });
  const text = await r.text();
  try {
    return { status: r.status, json: JSON.parse(text) };
  } catch {
    return { status: r.status, json: text };
  }
}

async function deploy(env: Record<string, string>): Promise<void> {
  const files = ['swarm-stack.yml', 'deploy/s3-secrets.yml', 'deploy/registry-secrets.yml', 'deploy/s3-network.yml'].flatMap((f) => ['-c', f]);
  await dockerCli(['stack', 'deploy', '--with-registry-auth', '--detach=true', ...files, STACK], {
    env: {
      SWARM_UTILS_IMAGE,
      SWARM_UTILS_REGISTRY_URL: `https://${REGISTRY}`,
      SWARM_UTILS_DOCKER_CLI_IMAGE_NAME: IMAGES.dockerCli,
      SWARM_UTILS_BACKUP_IMAGE: IMAGES.backup,
      SWARM_UTILS_S3_DOMAIN: `${S3_SERVICE}:9000`,
      SWARM_UTILS_S3_HTTPS: 'false',
      SWARM_UTILS_S3_BUCKET_NAME: BUCKET,
      SWARM_UTILS_S3_PATH: PREFIX,
      SWARM_UTILS_HELPER_NETWORKS: NET,
      ...env,
    },
  });
}

/** the helper specs seen while `during` runs (they are removed when their step ends) */
async function watchHelpers<T>(during: Promise<T>): Promise<{ result: T; specs: any[] }> {
  const specs = new Map<string, any>();
  let done = false;
  const watcher = (async () => {
    while (!done) {
      for (const s of await manager.listServices({ filters: { label: ['swarm-utils.helper'] } }).catch(() => [])) specs.set(s.ID, s.Spec);
      await new Promise((r) => setTimeout(r, 150));
    }
  })();
  try {
    return { result: await during, specs: [...specs.values()] };
  } finally {
    done = true;
    await watcher;
  }
}

beforeAll(async () => {
  const taken = await fetch(`${BASE_URL}/healthz`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.status, () => null);
  if (taken !== null) throw new Error(`${BASE_URL} already answers (HTTP ${taken}): port 8080 on the manager is taken; stop what listens there`);
  if ((await manager.listServices({ filters: { label: [`com.docker.stack.namespace=${STACK}`] } })).length) await removeStack(STACK, [VOLUME]);

  const [s3Image] = await Promise.all([buildS3rverImage(), buildSwarmUtilsImage()]);
  const net: any = await manager.createNetwork({ Name: NET, Driver: 'overlay', Labels: { [OWN.key]: OWN.value } });
  netId = net.id;
  await manager.createService(REGISTRY_AUTH as any, {
    Name: S3_SERVICE,
    TaskTemplate: {
      // --no-vhost-buckets: s3rver would take a Host such as `s3-xyz:9000` for a virtual-hosted bucket
      // name (MinIO does so only for its MINIO_DOMAIN)
      ContainerSpec: { Image: s3Image, Args: ['--directory', '/data', '--address', '0.0.0.0', '--port', '9000', '--no-vhost-buckets', '--configure-bucket', BUCKET] },
      Placement: { Constraints: ['node.hostname==su-worker-2'] },
      Networks: [{ Target: NET }],
    },
    Mode: { Replicated: { Replicas: 1 } },
    EndpointSpec: { Mode: 'dnsrr', Ports: [{ TargetPort: 9000, PublishedPort: S3_PORT, PublishMode: 'host', Protocol: 'tcp' }] },
  } as any);
  await createAppService(APP, {
    constraints: ['node.hostname==su-worker-1'],
    mounts: [{ Type: 'volume', Source: APP_VOLUME, Target: '/data' }],
    labels: { 'swarm-utils.backup.enable': 'true' },
  });
  await until('the S3 service to answer on su-worker-2', 90_000, async () => (await fetch(`${S3_FROM_HOST}/${BUCKET}`, { signal: AbortSignal.timeout(2_000) })).status === 200);

  created = await createOwnSecrets(SECRETS, OWN);
  unlabel = await labelManagerForData();
  deployed = true;
  await deploy({});
  await until(`${BASE_URL}/readyz of ${SERVICE}`, 120_000, async () => (await api('GET', '/readyz', 2_000)).status === 200, () => diagnostics(SERVICE));
});

afterAll(async () => {
  const problems: string[] = [];
  const step = async (what: string, fn: () => Promise<unknown>) => fn().catch((e) => problems.push(`${what}: ${e instanceof Error ? e.message : String(e)}`));
  await step('remove services', () => removeServices(APP, S3_SERVICE));
  if (deployed) await step(`remove stack ${STACK}`, () => removeStack(STACK, [VOLUME]));
  for (const name of created) await step(`remove secret ${name}`, () => removeSecret(name));
  if (unlabel) await step('manager label', unlabel);
  await step(`remove network ${NET}`, () => until(`network ${NET} removed`, 30_000, () => manager.getNetwork(NET).remove().then(() => true, (e: any) => e?.statusCode === 404)));
  // the helper containers Docker 20.10 leaves behind keep the volume in use (moby/moby#44312)
  await step('remove the app volume', async () => {
    const w1 = dockerFor('su-worker-1');
    for (const c of await w1.listContainers({ all: true, filters: { volume: [APP_VOLUME] } })) await w1.getContainer(c.Id).remove({ force: true });
    await w1.getVolume(APP_VOLUME).remove().catch(() => undefined);
  });
  rmSync(tmp, { recursive: true, force: true });
  if (problems.length) throw new Error(`clean-up incomplete:\n${problems.join('\n')}`);
});

describe('S3 inside the swarm: SWARM_UTILS_HELPER_NETWORKS', () => {
  it('a backup reaches an S3 server known only by its service name; the helper is attached to the network', async () => {
    const [task] = await runningTasks(APP);
    await execInTask(task, ['sh', '-c', `echo through-the-overlay-${id} > /data/proof.txt`]);
    const { result: r, specs } = await watchHelpers(api('POST', `/backup?service=${APP}&waitRes=true`, 180_000));
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const [archive] = r.json.result.archives;
    expect(archive).toMatchObject({ node: 'su-worker-1', volume: APP_VOLUME });
    expect(archive.key.startsWith(`${PREFIX}/su-worker-1_${APP_VOLUME}_`)).toBe(true);

    // the backup helper's spec joined the network (Docker stores the network's id)
    const archiveHelpers = specs.filter((s) => s.TaskTemplate?.ContainerSpec?.Image?.startsWith(IMAGES.backup));
    expect(archiveHelpers.length, JSON.stringify(specs)).toBeGreaterThan(0);
    for (const s of archiveHelpers) expect(s.TaskTemplate.Networks.map((n: any) => n.Target)).toEqual([netId]);

    // the archive is in the in-swarm S3 server, with the volume's content
    const s3 = new S3Client({ endpoint: S3_FROM_HOST, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    const obj = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: archive.key }));
    const file = path.join(tmp, 'archive.tar.gz');
    writeFileSync(file, Buffer.from(await obj.Body!.transformToByteArray()));
    s3.destroy();
    const proof = await run('tar', ['-xzOf', file, `backup/${APP_VOLUME}/proof.txt`]);
    expect(proof.stdout).toBe(`through-the-overlay-${id}\n`);
  });

  it('without SWARM_UTILS_HELPER_NETWORKS the helper cannot resolve the service name: S3_ERROR', async () => {
    const before = await currentTask(SERVICE);
    await dockerCli(['service', 'update', '--detach', '--env-add', 'SWARM_UTILS_HELPER_NETWORKS=', SERVICE]);
    await until(`a new task of ${SERVICE} answering /readyz`, 120_000, async () => {
      const t = await currentTask(SERVICE);
      return !!t && t.ID !== before?.ID && (await api('GET', '/readyz', 2_000)).status === 200;
    }, () => diagnostics(SERVICE));
    const r = await api('POST', `/backup?service=${APP}&waitRes=true`, 180_000);
    expect(r.status, JSON.stringify(r.json)).toBe(502);
    expect(r.json.error.code).toBe('S3_ERROR');
    expect(r.json.error.message).toMatch(/ENOTFOUND|EAI_AGAIN/);
    expect(r.json.steps.find((x: any) => x.name === 'archive').state).toBe('failed');
    expect(JSON.stringify(r.json)).not.toContain(SECRETS.swarm_utils_s3_secret_access_key);
  });
});
