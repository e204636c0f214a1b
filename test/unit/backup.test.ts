import { describe, it, expect } from 'vitest';
import { AppError } from '../../src/errors.js';
import {
  backupFilename,
  backupStamp,
  helperEnv,
  helperSecrets,
  namedVolumes,
  objectKey,
  planPairs,
  scrub,
  selectVolumes,
  type NamedVolume,
} from '../../src/jobs/backup/plan.js';
import { refusal } from '../../src/jobs/backup/resolve.js';
import { start, stop } from '../../src/jobs/backup/scale.js';
import { archive } from '../../src/jobs/backup/archive.js';
import { ShutdownSignal } from '../../src/engine/runner.js';
import { helperServiceSpec } from '../../src/swarm/docker-map.js';
import type { Db } from '../../src/db/index.js';
import type { JobRow } from '../../src/db/jobs.js';
import type { StepContext } from '../../src/engine/types.js';
import type { HelperSpec, ServiceInfo, TaskInfo } from '../../src/swarm/port.js';
import { captureLog, fakeDocker, makeDeps, testConfig } from '../helpers/engine-fixture.js';

const vols = (...names: string[]): NamedVolume[] => names.map((name) => ({ name, driver: null }));

const errorOf = (fn: () => unknown): AppError => {
  try {
    fn();
  } catch (e) {
    if (e instanceof AppError) return e;
    throw e;
  }
  throw new Error('no error thrown');
};

describe('namedVolumes', () => {
  it('keeps named volume mounts in spec order, once each, with their driver', () => {
    const spec = {
      TaskTemplate: {
        ContainerSpec: {
          Mounts: [
            { Type: 'volume', Source: 'app_data', Target: '/data' },
            { Type: 'bind', Source: '/etc/hosts', Target: '/h' },
            { Type: 'volume', Target: '/anonymous' },
            { Type: 'tmpfs', Target: '/tmp' },
            { Type: 'volume', Source: 'nfs', Target: '/nfs', VolumeOptions: { DriverConfig: { Name: 'nfs-driver' } } },
            { Type: 'volume', Source: 'app_data', Target: '/again' },
            { Type: 'volume', Source: 'loc', Target: '/loc', VolumeOptions: { DriverConfig: { Name: 'local' } } },
          ],
        },
      },
    };
    expect(namedVolumes(spec)).toEqual([
      { name: 'app_data', driver: null },
      { name: 'nfs', driver: 'nfs-driver' },
      { name: 'loc', driver: 'local' },
    ]);
    expect(namedVolumes({})).toEqual([]);
    expect(namedVolumes({ TaskTemplate: { ContainerSpec: {} } })).toEqual([]);
  });
});

describe('selectVolumes', () => {
  const mounted = [...vols('shop_data', 'shop_logs', 'plain'), { name: 'remote', driver: 'rexray' }];

  it('without volume-list: every local named volume', () => {
    expect(selectVolumes('svc', mounted, undefined, 'shop')).toEqual(['shop_data', 'shop_logs', 'plain']);
    expect(selectVolumes('svc', mounted, ' , ', 'shop')).toEqual(['shop_data', 'shop_logs', 'plain']);
  });

  it('items match the full name or the name without the <stack>_ prefix, in the list order, once each', () => {
    expect(selectVolumes('svc', mounted, 'data', 'shop')).toEqual(['shop_data']);
    expect(selectVolumes('svc', mounted, 'shop_logs, plain,', 'shop')).toEqual(['shop_logs', 'plain']);
    expect(selectVolumes('svc', mounted, 'data,shop_data', 'shop')).toEqual(['shop_data']);
  });

  it('without a stack label only full names match', () => {
    expect(selectVolumes('svc', mounted, 'shop_data', undefined)).toEqual(['shop_data']);
    const e = errorOf(() => selectVolumes('svc', mounted, 'data', undefined));
    expect(e.code).toBe('VALIDATION');
  });

  it('an item that matches nothing is an error naming the item and what the service mounts', () => {
    const e = errorOf(() => selectVolumes('svc', mounted, 'data,nope', 'shop'));
    expect(e.code).toBe('VALIDATION');
    expect(e.message).toContain('"nope"');
    expect(e.message).toContain('swarm-utils.backup.volume-list');
    expect(e.message).toContain('shop_data, shop_logs, plain, remote');
  });

  it('a volume of another driver is not backed up, and naming it says why', () => {
    const e = errorOf(() => selectVolumes('svc', mounted, 'remote', 'shop'));
    expect(e.code).toBe('VALIDATION');
    expect(e.message).toContain('rexray');
  });

  it('a service with no local named volume has nothing to back up', () => {
    expect(errorOf(() => selectVolumes('svc', [], undefined, undefined)).code).toBe('UNSUPPORTED');
    expect(errorOf(() => selectVolumes('svc', [{ name: 'r', driver: 'rexray' }], undefined, undefined)).code).toBe('UNSUPPORTED');
  });
});

describe('stamp, file name and object key', () => {
  it('the stamp is UTC YYYY-MM-DDTHH-mm-ssZ (no colon, no %)', () => {
    expect(backupStamp(new Date('2024-03-09T07:05:03.999Z'))).toBe('2024-03-09T07-05-03Z');
    expect(backupStamp(new Date(Date.UTC(2025, 11, 31, 23, 59, 59)))).toBe('2025-12-31T23-59-59Z');
    expect(backupStamp(new Date())).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$/);
  });

  it('file name is <node>_<volume>_<stamp>.tar.gz', () => {
    expect(backupFilename('su-worker-1', 'shop_data', '2024-03-09T07-05-03Z')).toBe('su-worker-1_shop_data_2024-03-09T07-05-03Z.tar.gz');
  });

  it('the key is <S3 path>/<file name> without double slashes, or the file name alone', () => {
    expect(objectKey('', 'f.tar.gz')).toBe('f.tar.gz');
    expect(objectKey('backups', 'f.tar.gz')).toBe('backups/f.tar.gz');
    expect(objectKey('/backups/', 'f.tar.gz')).toBe('backups/f.tar.gz');
    expect(objectKey('a//b/', 'f.tar.gz')).toBe('a/b/f.tar.gz');
    expect(objectKey('/', 'f.tar.gz')).toBe('f.tar.gz');
  });

  it('pairs: each node × each volume, numbered', () => {
    const pairs = planPairs(
      [
        { nodeId: 'n1', node: 'w1' },
        { nodeId: 'n2', node: 'w2' },
      ],
      ['a', 'b'],
      '2024-01-02T03-04-05Z',
      'p/',
    );
    expect(pairs.map((p) => [p.index, p.node, p.volume, p.key])).toEqual([
      [0, 'w1', 'a', 'p/w1_a_2024-01-02T03-04-05Z.tar.gz'],
      [1, 'w1', 'b', 'p/w1_b_2024-01-02T03-04-05Z.tar.gz'],
      [2, 'w2', 'a', 'p/w2_a_2024-01-02T03-04-05Z.tar.gz'],
      [3, 'w2', 'b', 'p/w2_b_2024-01-02T03-04-05Z.tar.gz'],
    ]);
    expect(pairs[3]!.filename).toBe('w2_b_2024-01-02T03-04-05Z.tar.gz');
  });
});

describe('helper environment', () => {
  const s3 = { domain: 's3.example.com:9000', https: false, bucket: 'bk', accessKey: 'AK', secretAccessKey: 'very-secret', path: '/team/db/' };

  it("is offen's variables, secrets only as _FILE paths; pass-through values cannot replace them", () => {
    const env = helperEnv(s3, { BACKUP_RETENTION_DAYS: '7', AWS_S3_BUCKET_NAME: 'other' }, { filename: 'n_v_s.tar.gz' });
    expect(env).toEqual({
      BACKUP_RETENTION_DAYS: '7',
      AWS_S3_BUCKET_NAME: 'bk',
      AWS_ENDPOINT: 's3.example.com:9000',
      AWS_ENDPOINT_PROTO: 'http',
      AWS_ACCESS_KEY_ID_FILE: '/run/secrets/AWS_ACCESS_KEY_ID',
      AWS_SECRET_ACCESS_KEY_FILE: '/run/secrets/AWS_SECRET_ACCESS_KEY',
      AWS_S3_PATH: 'team/db',
      BACKUP_FILENAME: 'n_v_s.tar.gz',
    });
    const plain = helperEnv({ ...s3, https: true, path: '' }, {}, { filename: 'f' });
    expect(plain.AWS_ENDPOINT_PROTO).toBe('https');
    expect('AWS_S3_PATH' in plain).toBe(false);
  });

  it('secret backup variables (by name) become Docker secrets and reach offen as <NAME>_FILE; the others stay plain', () => {
    const backupEnv = {
      GPG_PASSPHRASE: 'gpg pass',
      AGE_PASSPHRASE: 'age pass',
      EMAIL_SMTP_PASSWORD: 'smtp',
      DROPBOX_REFRESH_TOKEN: 'tok',
      NOTIFICATION_URLS: 'slack://tok@chan',
      BACKUP_RETENTION_DAYS: '7',
      BACKUP_COMPRESSION: 'zst',
      SSH_IDENTITY_FILE: '/root/.ssh/id',
      AGE_PASSPHRASE_EMPTY_KEY: '',
    };
    const env = helperEnv(s3, backupEnv, { filename: 'f' });
    const secrets = helperSecrets(s3, backupEnv);
    expect(Object.keys(secrets).sort()).toEqual(
      ['AGE_PASSPHRASE', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'DROPBOX_REFRESH_TOKEN', 'EMAIL_SMTP_PASSWORD', 'GPG_PASSPHRASE', 'NOTIFICATION_URLS'].sort(),
    );
    expect(env).toMatchObject({
      GPG_PASSPHRASE_FILE: '/run/secrets/GPG_PASSPHRASE',
      EMAIL_SMTP_PASSWORD_FILE: '/run/secrets/EMAIL_SMTP_PASSWORD',
      NOTIFICATION_URLS_FILE: '/run/secrets/NOTIFICATION_URLS',
      BACKUP_RETENTION_DAYS: '7',
      BACKUP_COMPRESSION: 'zst',
      SSH_IDENTITY_FILE: '/root/.ssh/id',
      // an empty value has nothing to hide (and Docker refuses an empty secret)
      AGE_PASSPHRASE_EMPTY_KEY: '',
    });
    for (const value of Object.values(secrets)) expect(JSON.stringify(env)).not.toContain(value);
    for (const name of Object.keys(secrets)) expect(name in env).toBe(false);
  });

  it('passes the S3 CA certificate as AWS_ENDPOINT_CA_CERT (offen takes the PEM itself)', () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    expect(helperEnv({ ...s3, https: true, caCert: pem }, {}, { filename: 'f' }).AWS_ENDPOINT_CA_CERT).toBe(pem);
    expect('AWS_ENDPOINT_CA_CERT' in helperEnv({ ...s3, caCert: null }, {}, { filename: 'f' })).toBe(false);
  });

  it('scrub removes the credentials and secret backup variables from text', () => {
    expect(scrub('key AK secret very-secret twice very-secret', s3)).toBe('key [redacted] secret [redacted] twice [redacted]');
    expect(scrub('nothing', { accessKey: null, secretAccessKey: null })).toBe('nothing');
    expect(scrub('bad gpg pass here, keep 7', s3, { GPG_PASSPHRASE: 'gpg pass', BACKUP_RETENTION_DAYS: '7' })).toBe('bad [redacted] here, keep 7');
  });
});

describe('refusal (precheck and resolve)', () => {
  const s3Env = {
    SWARM_UTILS_S3_DOMAIN: 's3.local:9000',
    SWARM_UTILS_S3_BUCKET_NAME: 'b',
    SWARM_UTILS_S3_ACCESS_KEY: 'a',
    SWARM_UTILS_S3_SECRET_ACCESS_KEY: 's',
  };
  const svc = (labels: Record<string, string>, mode: ServiceInfo['mode'] = 'replicated'): ServiceInfo => ({
    id: 'id',
    name: 'web',
    version: 1,
    labels,
    mode,
    replicas: mode === 'replicated' ? 1 : null,
    image: 'x',
    forceUpdate: 0,
    updateStatus: null,
    createdAt: '',
    updatedAt: '',
    spec: {},
  });

  it('NOT_ENABLED without backup.enable=true; UNSUPPORTED without S3 or for stop on a global service', () => {
    const config = testConfig(s3Env);
    expect(refusal(svc({}), config)?.code).toBe('NOT_ENABLED');
    expect(refusal(svc({ 'swarm-utils.backup.enable': 'yes' }), config)?.code).toBe('NOT_ENABLED');
    expect(refusal(svc({ 'swarm-utils.backup.enable': 'true' }), config)).toBeNull();
    expect(refusal(svc({ 'swarm-utils.backup.enable': 'true' }, 'global'), config)).toBeNull();
    const global = refusal(svc({ 'swarm-utils.backup.enable': 'true', 'swarm-utils.backup.stop': 'true' }, 'global'), config);
    expect(global?.code).toBe('UNSUPPORTED');
    const noS3 = refusal(svc({ 'swarm-utils.backup.enable': 'true' }), testConfig());
    expect(noS3?.code).toBe('UNSUPPORTED');
    expect(noS3?.message).toContain('SWARM_UTILS_S3_DOMAIN');
    expect(noS3?.message).toContain('SWARM_UTILS_S3_SECRET_ACCESS_KEY');
  });
});

// The steps that change a service, against a fake Docker port (the cluster tests run them on a real swarm).
describe('stop / start / archive steps (fake Docker)', () => {
  const env = {
    SWARM_UTILS_S3_DOMAIN: 's3.local:9000',
    SWARM_UTILS_S3_BUCKET_NAME: 'b',
    SWARM_UTILS_S3_ACCESS_KEY: 'AKID',
    SWARM_UTILS_S3_SECRET_ACCESS_KEY: 'the-s3-secret',
    SWARM_UTILS_REGISTRY_URL: 'reg.local:5000',
    SWARM_UTILS_REGISTRY_USER: 'u',
    SWARM_UTILS_REGISTRY_PASSWORD: 'p',
  };
  const resolved = {
    serviceId: 'svc1',
    service: 'web',
    stop: true,
    tasks: [],
    volumes: ['data'],
    stamp: '2024-01-02T03-04-05Z',
    pairs: [
      { index: 0, nodeId: 'n1', node: 'w1', volume: 'data', filename: 'w1_data_s.tar.gz', key: 'w1_data_s.tar.gz' },
      { index: 1, nodeId: 'n2', node: 'w2', volume: 'data', filename: 'w2_data_s.tar.gz', key: 'w2_data_s.tar.gz' },
    ],
  };

  function swarm(replicas: number, conflicts = 0) {
    const svc = { replicas, version: 10 };
    const updates: { replicas: number; auth: unknown }[] = [];
    const info = (): ServiceInfo => ({
      id: 'svc1',
      name: 'web',
      version: svc.version,
      labels: {},
      mode: 'replicated',
      replicas: svc.replicas,
      image: 'reg.local:5000/app:v1',
      forceUpdate: 0,
      updateStatus: null,
      createdAt: '',
      updatedAt: '',
      spec: { Name: 'web', Mode: { Replicated: { Replicas: svc.replicas } }, TaskTemplate: { ContainerSpec: { Image: 'reg.local:5000/app:v1' } } },
    });
    const task = (i: number): TaskInfo => ({
      id: `t${i}`, serviceId: 'svc1', nodeId: 'n1', state: 'running', desiredState: 'running', containerId: `c${i}`,
      error: null, message: null, exitCode: null, image: '', serviceVersion: null, createdAt: '', updatedAt: '',
    });
    const docker = fakeDocker({
      getService: async () => info(),
      listTasks: async () => Array.from({ length: svc.replicas }, (_, i) => task(i)),
      updateService: async (_id, version, spec, auth) => {
        if (conflicts > 0) {
          conflicts--;
          svc.version++; // someone else changed the spec meanwhile
          throw new AppError('DOCKER_ERROR', 'rpc error: code = Unknown desc = update out of sequence');
        }
        if (version !== svc.version) throw new AppError('DOCKER_ERROR', 'update out of sequence');
        svc.replicas = (spec as { Mode: { Replicated: { Replicas: number } } }).Mode.Replicated.Replicas;
        svc.version++;
        updates.push({ replicas: svc.replicas, auth });
      },
    });
    return { svc, updates, docker };
  }

  function ctxOf(docker: ReturnType<typeof fakeDocker>, details: Record<string, Record<string, unknown>>, step: string, log = captureLog()) {
    const saves: Record<string, unknown>[] = [];
    const holds: string[] = [];
    const ctx: StepContext = {
      job: { id: 7, target: 'web' } as JobRow,
      deps: makeDeps({} as Db, docker, testConfig(env), log.logger),
      log: log.logger,
      signal: new AbortController().signal,
      detail: details[step] ?? {},
      reentered: details[step] !== undefined,
      save: (d) => {
        saves.push(structuredClone(d));
        details[step] = d;
      },
      detailOf: ((step: string | { name: string }) =>
        typeof step === 'string' ? (details[step] ?? {}) : (details[step.name] ?? null)) as StepContext['detailOf'],
      setResult: () => undefined,
      holds: {
        holdService: async (h) => void holds.push(`hold ${h.service} on ${h.nodes.join(',')} undo ${h.undo}`),
        setVersion: (id, v) => void holds.push(`version ${id} ${v}`),
        releaseService: (id) => void holds.push(`release ${id}`),
        isHeld: () => false,
        holdNode: async () => undefined,
      },
    };
    return { ctx, saves, holds };
  }

  it('stop commits the replica count before it scales to 0, with the registry credentials', async () => {
    const { docker, updates } = swarm(3);
    const details: Record<string, Record<string, unknown>> = { resolve: resolved };
    const { ctx, saves } = ctxOf(docker, details, 'stop');
    const out = await stop(ctx);
    expect(saves[0]).toMatchObject({ replicas: 3 });
    expect(updates).toEqual([{ replicas: 0, auth: { username: 'u', password: 'p', serveraddress: 'reg.local:5000' } }]);
    expect(out?.detail).toMatchObject({ replicas: 3 });
  });

  it('a re-entered stop never overwrites the recorded count (the service is already at 0)', async () => {
    const { docker, updates } = swarm(0);
    const details: Record<string, Record<string, unknown>> = { resolve: resolved, stop: { replicas: 3, recordedAt: 'x' } };
    const { ctx, saves } = ctxOf(docker, details, 'stop');
    const out = await stop(ctx);
    expect(saves).toEqual([]);
    expect(updates).toEqual([]);
    expect(out?.detail).toMatchObject({ replicas: 3 });
  });

  it('start retries a version conflict on a fresh read and waits for the recorded count', async () => {
    const { docker, updates, svc } = swarm(0, 2);
    const details: Record<string, Record<string, unknown>> = { resolve: resolved, stop: { replicas: 2, startTimeoutMs: 20_000 } };
    const log = captureLog();
    const out = await start(ctxOf(docker, details, 'start', log).ctx);
    expect(svc.replicas).toBe(2);
    expect(updates.map((u) => u.replicas)).toEqual([2]);
    expect(out?.detail).toEqual({ replicas: 2, scaled: true });
    expect(log.text()).toContain('retrying on a fresh read');
  });

  it('start does nothing when nothing was recorded, and does not update a service already at its count', async () => {
    const a = swarm(0);
    expect(await start(ctxOf(a.docker, { resolve: resolved }, 'start').ctx)).toMatchObject({ skipped: true });
    const b = swarm(2);
    const out = await start(ctxOf(b.docker, { resolve: resolved, stop: { replicas: 2 } }, 'start').ctx);
    expect(b.updates).toEqual([]);
    expect(out?.detail).toEqual({ replicas: 2, scaled: false });
  });

  it('archive: the credentials go to the helper as Docker secrets of the job, removed once the helpers are gone', async () => {
    const { docker } = swarm(0);
    const created: HelperSpec[] = [];
    const order: string[] = [];
    docker.createHelper = async (spec) => {
      created.push(spec);
      return { id: spec.name, name: spec.name, jobId: spec.jobId };
    };
    docker.waitHelper = async () => ({ exitCode: 0, state: 'complete', error: null, output: 'backup: finished successfully\n' });
    docker.removeService = async (id) => void order.push(`service ${id}`);
    const removeSecret = docker.removeSecret;
    docker.removeSecret = async (id) => {
      order.push(`secret ${id}`);
      await removeSecret(id);
    };
    const details: Record<string, Record<string, unknown>> = { resolve: resolved };
    await archive(ctxOf(docker, details, 'archive').ctx);
    expect(created).toHaveLength(2);
    for (const spec of created) {
      expect(JSON.stringify(spec)).not.toContain('the-s3-secret');
      expect(JSON.stringify(spec)).not.toContain('AKID');
      expect(spec.env).toMatchObject({ AWS_SECRET_ACCESS_KEY_FILE: '/run/secrets/AWS_SECRET_ACCESS_KEY', AWS_ACCESS_KEY_ID_FILE: '/run/secrets/AWS_ACCESS_KEY_ID' });
      expect(spec.secrets?.map((x) => [x.secretName, x.file]).sort()).toEqual([
        ['swarm-utils-test01-7-AWS_ACCESS_KEY_ID', 'AWS_ACCESS_KEY_ID'],
        ['swarm-utils-test01-7-AWS_SECRET_ACCESS_KEY', 'AWS_SECRET_ACCESS_KEY'],
      ]);
    }
    // both helpers first, then the secrets: Docker refuses to remove a secret in use
    expect(order.slice(0, 2).every((x) => x.startsWith('service'))).toBe(true);
    expect(order.slice(2).sort()).toEqual(['secret secret-swarm-utils-test01-7-AWS_ACCESS_KEY_ID', 'secret secret-swarm-utils-test01-7-AWS_SECRET_ACCESS_KEY']);
    expect(docker.secrets).toEqual([]);
  });

  it('archive: a failed upload leaves no secret; a shutdown keeps the helper and its secrets for the next process', async () => {
    const { docker } = swarm(0);
    docker.createHelper = async (spec) => ({ id: spec.name, name: spec.name, jobId: spec.jobId });
    docker.waitHelper = async () => ({ exitCode: 1, state: 'failed', error: null, output: 'backup: FAILED\n' });
    await archive(ctxOf(docker, { resolve: resolved }, 'archive').ctx).catch(() => undefined);
    expect(docker.secrets).toEqual([]);

    const stopping = new AbortController();
    docker.waitHelper = async () => {
      stopping.abort(new ShutdownSignal());
      throw new AppError('CANCELED', 'shutting down');
    };
    const removed: string[] = [];
    docker.removeService = async (id) => void removed.push(id);
    const { ctx } = ctxOf(docker, { resolve: resolved }, 'archive');
    await archive({ ...ctx, signal: stopping.signal }).catch(() => undefined);
    expect(removed).toEqual([]);
    expect(docker.secrets.map((x) => x.data).sort()).toEqual(['AKID', 'the-s3-secret']);
  });

  it('archive helpers join SWARM_UTILS_HELPER_NETWORKS, and their service spec attaches them', async () => {
    const created: HelperSpec[] = [];
    const { docker } = swarm(0);
    docker.createHelper = async (spec) => {
      created.push(spec);
      return { id: spec.name, name: spec.name, jobId: spec.jobId };
    };
    docker.waitHelper = async () => ({ exitCode: 0, state: 'complete', error: null, output: 'backup: finished successfully\n' });
    docker.removeService = async () => undefined;
    const details: Record<string, Record<string, unknown>> = { resolve: resolved };
    const { ctx } = ctxOf(docker, details, 'archive');
    ctx.deps.config = testConfig({ ...env, SWARM_UTILS_HELPER_NETWORKS: 'minio_net,backup' });
    await archive(ctx);
    expect(created.map((c) => c.networks)).toEqual([['minio_net', 'backup'], ['minio_net', 'backup']]);
    const spec = helperServiceSpec(created[0]!) as { TaskTemplate: { Networks?: unknown } };
    expect(spec.TaskTemplate.Networks).toEqual([{ Target: 'minio_net' }, { Target: 'backup' }]);
    const none = helperServiceSpec({ ...created[0]!, networks: [] }) as { TaskTemplate: Record<string, unknown> };
    expect('Networks' in none.TaskTemplate).toBe(false);
  });

  it('archive: a finished pair is not redone; a failed upload is S3_ERROR without the secret; helpers are removed', async () => {
    const created: HelperSpec[] = [];
    const removed: string[] = [];
    const { docker } = swarm(0);
    docker.createHelper = async (spec) => {
      created.push(spec);
      return { id: spec.name, name: spec.name, jobId: spec.jobId };
    };
    docker.waitHelper = async () => ({ exitCode: 1, state: 'failed', error: null, output: 'backup: FAILED: bad key AKID/the-s3-secret\n' });
    docker.removeService = async (id) => void removed.push(id);
    const details: Record<string, Record<string, unknown>> = { resolve: resolved, archive: { done: { 0: { key: 'w1_data_s.tar.gz' } } } };
    const err = await archive(ctxOf(docker, details, 'archive').ctx).catch((e: unknown) => e as AppError);
    expect(created.map((c) => c.name)).toEqual(['swarm-utils-test01-7-archive-1']);
    expect(created[0]).toMatchObject({
      nodeId: 'n2',
      command: ['backup'],
      mounts: [{ type: 'volume', source: 'data', target: '/backup/data', readOnly: true }],
    });
    expect(created[0]!.env).toMatchObject({ BACKUP_FILENAME: 'w2_data_s.tar.gz', AWS_ENDPOINT: 's3.local:9000', AWS_ENDPOINT_PROTO: 'https' });
    expect(removed).toEqual(['swarm-utils-test01-7-archive-1']);
    expect((err as AppError).code).toBe('S3_ERROR');
    expect((err as AppError).message).toContain('w2');
    expect((err as AppError).message).not.toContain('the-s3-secret');
  });
});
