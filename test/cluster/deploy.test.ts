/**
 * deploy/deploy.sh on the real test swarm, as docs/install.md tells an operator: an env file, the Docker
 * secrets of the parts in use, `deploy/deploy.sh <env file> <stack>`.
 *
 * 1. An env file without a registry and without S3: only the admin token secret exists; deploy.sh leaves
 *    the registry and S3 fragments out, the stack comes up (/healthz 200 with the version), and what only
 *    the env file can carry reaches the container (a BACKUP_ENV_* passthrough; a misspelt name, warned about
 *    by name at start-up).
 * 2. The same stack redeployed from an env file with a registry, S3, backup retention, NOTIFY_ON=always,
 *    and the metrics-token and notification-URL secrets created: deploy.sh adds their fragments, and each
 *    setting is in effect in the running container: GET /status says so, the metrics token reads /metrics
 *    and nothing else, a backup on a worker runs its retention step and is notified to a receiver.
 *
 * Needs port 8080 on the manager; what an interrupted run left (the stack, secrets labelled
 * swarm-utils.test=deploy) is removed first, everything made here in afterAll.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMAGES, REGISTRY, REGISTRY_AUTH, S3, run } from '../helpers/testbed.js';
import { createAppService, manager, removeServices, uid } from '../helpers/cluster.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { deleteS3Prefix, removeVolumes } from '../helpers/leftovers.js';
import { ROOT, SWARM_UTILS_IMAGE as IMAGE, buildSwarmUtilsImage, createOwnSecrets, currentTask, diagnostics, dockerCli, removeSecret, removeStack, until } from '../helpers/stack.js';

const STACK = 'su-deploy-test';
const SERVICE = `${STACK}_swarm-utils`;
const VOLUME = `${STACK}_swarm-utils-data`;
const BASE_URL = 'http://10.77.0.1:8080';
const OWN = { key: 'swarm-utils.test', value: 'deploy' } as const;
const VERSION = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;

const TOKEN = `deploy-admin-${randomBytes(16).toString('hex')}`;
const METRICS_TOKEN = `deploy-metrics-${randomBytes(16).toString('hex')}`;
const HOOK_TOKEN = `deploy-hook-${randomBytes(8).toString('hex')}`;
const S3_SECRET = `deploy-s3-secret-${randomBytes(8).toString('hex')}`;
const TYPO_VALUE = `typo-value-${randomBytes(6).toString('hex')}`;
const RUN = uid();
const DB = `deploy-db-${RUN}`;
const DB_VOLUME = `deploy-db-data-${RUN}`;
const S3_PREFIX = `deploy-${RUN}`;
const SECRET_NAMES = [
  'swarm_utils_admin_tokens',
  'swarm_utils_registry_user',
  'swarm_utils_registry_password',
  'swarm_utils_s3_access_key',
  'swarm_utils_s3_secret_access_key',
  'swarm_utils_metrics_tokens',
  'swarm_utils_notify_url',
];

const tmp = mkdtempSync(path.join(tmpdir(), 'swarm-utils-deploy-'));
let receiver: Receiver | null = null;
let deployed = false;
const created: string[] = [];

const waitFor = <T>(what: string, ms: number, probe: () => Promise<T | null | undefined | false>) => until(what, ms, probe, () => diagnostics(SERVICE));

async function api(p: string, token?: string, init: RequestInit = {}, timeoutMs = 10_000): Promise<{ status: number; json: any }> {
  const r = await fetch(BASE_URL + p, { ...init, headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(timeoutMs) });
  const text = await r.text();
  try {
    return { status: r.status, json: JSON.parse(text) };
  } catch {
    return { status: r.status, json: text };
  }
}

/** deploy/deploy.sh as an operator runs it, from another directory, with no SWARM_UTILS_* in the shell but a stray one */
async function deploySh(envFile: string): Promise<string> {
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_CLI_HINTS: 'false', SWARM_UTILS_S3_DOMAIN: 'stray.example.com' };
  for (const k of Object.keys(env)) if ((k.startsWith('SWARM_UTILS_') && k !== 'SWARM_UTILS_S3_DOMAIN') || k === 'DOCKER_HOST') delete env[k];
  const r = await run('bash', [path.join(ROOT, 'deploy/deploy.sh'), envFile, STACK], { cwd: tmp, env, timeoutMs: 120_000 });
  const out = r.stdout + r.stderr;
  if (r.code !== 0) throw new Error(`deploy/deploy.sh failed (exit ${r.code}):\n${out}`);
  return out;
}

function envFile(name: string, lines: string[]): string {
  const file = path.join(tmp, name);
  writeFileSync(file, `# ${name}: non-secret settings (docs/install.md)\n${lines.join('\n')}\n`);
  return file;
}

const BASE_SETTINGS = [
  `SWARM_UTILS_IMAGE=${IMAGE}`,
  `SWARM_UTILS_DOCKER_CLI_IMAGE_NAME=${IMAGES.dockerCli}`,
  `SWARM_UTILS_BACKUP_IMAGE=${IMAGES.backup}`,
  'SWARM_UTILS_CRON_EXPR="30 2 * * *"',
  'SWARM_UTILS_BACKUP_ENV_BACKUP_COMPRESSION=gz',
  `SWARM_UTILS_BACKUP_RETENTON_DAYS=${TYPO_VALUE}`,
];

async function removeLeftovers(): Promise<void> {
  await removeServices(DB);
  if ((await manager.listServices({ filters: { label: [`com.docker.stack.namespace=${STACK}`] } })).length) await removeStack(STACK, [VOLUME]);
  else await manager.getVolume(VOLUME).remove().catch(() => undefined);
  for (const name of SECRET_NAMES) {
    const secret: any = await manager.getSecret(name).inspect().catch(() => null);
    if (!secret) continue;
    if (secret.Spec?.Labels?.[OWN.key] !== OWN.value) throw new Error(`a Docker secret "${name}" exists that this test did not create: remove it (docker secret rm ${name}) or run the test on another swarm`);
    await removeSecret(name);
  }
}

beforeAll(async () => {
  await removeLeftovers();
  const taken = await fetch(`${BASE_URL}/healthz`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.status, () => null);
  if (taken !== null) throw new Error(`${BASE_URL} already answers (HTTP ${taken}): port 8080 on the manager is taken; stop it and run again`);
  receiver = await startReceiver('10.77.0.1');
  expect(await buildSwarmUtilsImage()).toMatch(/@sha256:[a-f0-9]{64}$/);
  created.push(...(await createOwnSecrets({ swarm_utils_admin_tokens: TOKEN }, OWN)));
});

afterAll(async () => {
  const problems: string[] = [];
  const step = async (what: string, fn: () => Promise<unknown>) => fn().catch((e: unknown) => problems.push(`${what}: ${e instanceof Error ? e.message : String(e)}`));
  await step(`remove service ${DB}`, () => removeServices(DB));
  if (deployed) await step(`remove stack ${STACK}`, () => removeStack(STACK, [VOLUME]));
  await step(`remove volume ${DB_VOLUME}`, () => removeVolumes([DB_VOLUME]));
  await step(`remove s3 prefix ${S3_PREFIX}`, () => deleteS3Prefix(S3_PREFIX));
  await step('stop the receiver', async () => receiver?.close());
  for (const name of created) await step(`remove secret ${name}`, () => removeSecret(name));
  rmSync(tmp, { recursive: true, force: true });
  if (problems.length) throw new Error(`clean-up incomplete:\n${problems.join('\n')}`);
});

describe('deploy/deploy.sh from the operator’s env file', () => {
  it('without a registry and without S3: only the parts in use, the stack comes up, the env file reaches the container', async () => {
    deployed = true;
    const out = await deploySh(envFile('minimal.env', BASE_SETTINGS));
    expect(out).toContain('- deploy/registry-secrets.yml   SWARM_UTILS_REGISTRY_URL is not set');
    expect(out).toContain('- deploy/s3-secrets.yml, s3-ca.yml, s3-network.yml   SWARM_UTILS_S3_DOMAIN is not set');
    expect(out).toContain('ignoring SWARM_UTILS_S3_DOMAIN of this shell (the env file decides)');
    expect(out).toContain(`+ docker stack deploy --with-registry-auth -c swarm-stack.yml -c deploy/env-file.yml ${STACK}`);

    await waitFor(`${BASE_URL}/healthz`, 90_000, async () => (await api('/healthz', undefined, {}, 2_000)).status === 200);
    expect((await api('/healthz')).json).toEqual({ status: 'ok', version: VERSION });
    const svc: any = await manager.getService(SERVICE).inspect();
    expect(svc.Spec.TaskTemplate.ContainerSpec.Secrets.map((s: any) => s.SecretName)).toEqual(['swarm_utils_admin_tokens']);
    const env: string[] = svc.Spec.TaskTemplate.ContainerSpec.Env;
    expect(env).toEqual(expect.arrayContaining(['SWARM_UTILS_BACKUP_ENV_BACKUP_COMPRESSION=gz', 'SWARM_UTILS_S3_DOMAIN=', 'SWARM_UTILS_CRON_EXPR=30 2 * * *']));
    expect(env.some((e) => e.startsWith('SWARM_UTILS_IMAGE='))).toBe(false);

    const status = await api('/status', TOKEN);
    expect(status.status, JSON.stringify(status.json)).toBe(200);
    expect(status.json).toMatchObject({ version: VERSION, config: { s3: null, registry: null, cron: { expr: '30 2 * * *' }, backupEnv: ['BACKUP_COMPRESSION'], tokens: { admin: 1, metrics: 0 } } });
    expect((await api('/readyz')).status).toBe(200);

    const task = await currentTask(SERVICE);
    const log = await dockerCli(['logs', task.Status.ContainerStatus.ContainerID]);
    const lines = (log.stdout + log.stderr).split('\n').filter(Boolean);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 30, version: VERSION, msg: `swarm-utils ${VERSION} starting` });
    expect(lines.some((l) => l.includes('SWARM_UTILS_BACKUP_RETENTON_DAYS: unknown variable (a typo?), ignored'))).toBe(true);
    expect(lines.join('\n')).not.toContain(TYPO_VALUE);
  });

  it('redeployed with a registry, S3, retention, a metrics token and a notify URL: each fragment added, each setting in effect', async () => {
    receiver!.status = 200;
    created.push(
      ...(await createOwnSecrets(
        {
          swarm_utils_registry_user: REGISTRY_AUTH.username,
          swarm_utils_registry_password: REGISTRY_AUTH.password,
          swarm_utils_s3_access_key: S3.accessKey,
          swarm_utils_s3_secret_access_key: S3_SECRET,
          swarm_utils_metrics_tokens: METRICS_TOKEN,
          swarm_utils_notify_url: `${receiver!.url}/hook/${HOOK_TOKEN}`,
        },
        OWN,
      )),
    );
    const file = envFile('full.env', [
      ...BASE_SETTINGS,
      `SWARM_UTILS_REGISTRY_URL=https://${REGISTRY}`,
      `SWARM_UTILS_S3_DOMAIN=${S3.endpoint}`,
      'SWARM_UTILS_S3_HTTPS=false',
      `SWARM_UTILS_S3_BUCKET_NAME=${S3.bucket}`,
      `SWARM_UTILS_S3_PATH=${S3_PREFIX}`,
      'SWARM_UTILS_BACKUP_RETENTION_DAYS=7',
      'SWARM_UTILS_NOTIFY_ON=always',
    ]);
    const out = await deploySh(file);
    for (const line of [
      '+ deploy/registry-secrets.yml   SWARM_UTILS_REGISTRY_URL is set',
      '+ deploy/s3-secrets.yml   SWARM_UTILS_S3_DOMAIN is set',
      '- deploy/s3-ca.yml   SWARM_UTILS_S3_HTTPS=false',
      '- deploy/s3-network.yml   SWARM_UTILS_HELPER_NETWORKS is not set',
      '+ deploy/metrics-secret.yml',
      '+ deploy/notify-secret.yml',
      `+ docker stack deploy --with-registry-auth -c swarm-stack.yml -c deploy/env-file.yml -c deploy/registry-secrets.yml -c deploy/s3-secrets.yml -c deploy/metrics-secret.yml -c deploy/notify-secret.yml ${STACK}`,
    ]) {
      expect(out).toContain(line);
    }

    // the redeployed task (stop-first) answers with the new configuration
    const status = await waitFor('the redeployed task with the metrics token', 120_000, async () => {
      const s = await api('/status', TOKEN, {}, 2_000);
      return s.status === 200 && s.json.config.tokens.metrics === 1 ? s.json : null;
    });
    expect(status.config).toMatchObject({
      s3: { domain: S3.endpoint, https: false, bucket: S3.bucket, path: S3_PREFIX },
      registry: { url: REGISTRY },
      backupRetentionDays: 7,
      notify: { url: true, urls: 0, on: 'always', format: 'json' },
      tokens: { admin: 1, metrics: 1, query: true },
    });

    // the metrics token reads /metrics and nothing else
    const metrics = await api('/metrics', METRICS_TOKEN);
    expect(metrics.status).toBe(200);
    expect(metrics.json).toContain('swarm_utils_jobs');
    expect((await api('/jobs', METRICS_TOKEN)).status).toBe(403);

    // retention in effect: a backup's retention step runs; NOTIFY_ON=always: the receiver gets it
    await createAppService(DB, {
      constraints: ['node.hostname==su-worker-1'],
      mounts: [{ Type: 'volume', Source: DB_VOLUME, Target: '/data' }],
      labels: { 'swarm-utils.backup.enable': 'true' },
    });
    const r = await api(`/backup?service=${DB}&waitRes=true`, TOKEN, { method: 'POST' }, 180_000);
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const steps = Object.fromEntries(r.json.steps.map((s: any) => [s.name, s.state]));
    expect(steps).toMatchObject({ archive: 'done', retention: 'done' });
    const note = await waitFor(`the notification of backup job ${r.json.id}`, 60_000, async () => receiver!.received.find((x) => x.json?.job?.id === r.json.id));
    expect(note.path).toBe(`/hook/${HOOK_TOKEN}`);
    expect(note.json).toMatchObject({ event: 'succeeded', job: { id: r.json.id, type: 'backup' } });

    const logs = await dockerCli(['service', 'logs', '--raw', '--no-trunc', SERVICE]);
    for (const secret of [TOKEN, METRICS_TOKEN, HOOK_TOKEN, S3_SECRET, REGISTRY_AUTH.password]) expect(logs.stdout + logs.stderr).not.toContain(secret);
  });
});
