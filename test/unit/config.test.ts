import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { CONFIG_VARS, exitOnInvalidConfig, loadConfig, regionOfAwsDomain, SECRET_VARS, type Config, type ConfigResult } from '../../src/config.js';
import { makeTestCa } from '../helpers/tls.js';

const ROOT = resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(join(tmpdir(), 'swarm-utils-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function secretFile(name: string, content: string): string {
  const path = join(tmp, name);
  writeFileSync(path, content);
  return path;
}

const FULL_S3 = {
  SWARM_UTILS_S3_DOMAIN: 'minio:9000',
  SWARM_UTILS_S3_BUCKET_NAME: 'backups',
  SWARM_UTILS_S3_ACCESS_KEY: 'AKIA-access',
  SWARM_UTILS_S3_SECRET_ACCESS_KEY: 's3-secret',
};

function ok(env: Record<string, string | undefined>, opts?: Parameters<typeof loadConfig>[1]): Config {
  const result = loadConfig(env, opts);
  if (!result.ok) throw new Error(`expected a valid configuration, got:\n${result.problems.join('\n')}`);
  return result.config;
}

function problems(env: Record<string, string | undefined>, opts?: Parameters<typeof loadConfig>[1]): string[] {
  const result = loadConfig(env, opts);
  if (result.ok) throw new Error('expected configuration problems, got a valid configuration');
  return result.problems;
}

/** the one problem about `name` (each problem line begins with its variable) */
function problemOf(list: string[], name: string): string {
  const found = list.filter((p) => p.startsWith(`${name}: `));
  expect(found, `problems about ${name} in:\n${list.join('\n')}`).toHaveLength(1);
  return found[0]!;
}

describe('loadConfig: defaults', () => {
  it('gives the contract defaults for an empty environment', () => {
    expect(ok({})).toEqual({
      isCronBackup: false,
      isCronClean: false,
      isCronDrill: false,
      cronExpr: '0 3 * * *',
      cronTz: 'UTC',
      adminTokens: [],
      metricsTokens: [],
      dockerCliImage: 'docker:25.0.5-cli-alpine3.20',
      backupImage: 'offen/docker-volume-backup:v2.48.2',
      restoreImage: null,
      offenFilenames: ['backup-%Y-%m-%dT%H-%M-%S.{{ .Extension }}'],
      backupStage: true,
      lockTimeoutMs: 10_000,
      lockMaxExecutionMs: 600_000,
      lockMaxOccupationMs: 630_000,
      s3: {
        domain: null,
        https: true,
        bucket: null,
        accessKey: null,
        secretAccessKey: null,
        path: '',
        region: 'us-east-1',
        pathStyle: true,
        caCert: null,
      },
      helperNetworks: [],
      registry: { url: null, user: null, password: null },
      host: '0.0.0.0',
      port: 8080,
      dbPath: './data/swarm-utils.db',
      concurrency: 4,
      jobRetentionDays: 30,
      backupRetentionDays: null,
      logLevel: 'info',
      shutdownTimeoutMs: 30_000,
      stateCopy: { enabled: true, intervalMs: 5_000, startTimeoutMs: 30_000 },
      backupEnv: {},
      notify: { url: null, urls: [], on: 'failure', format: 'json' },
      queryToken: true,
    } satisfies Config);
  });

  it('ignores variables that are not ours, and treats blank as unset', () => {
    const config = ok({ PATH: '/usr/bin', HOME: undefined, SWARM_UTILS_PORT: '  ', SWARM_UTILS_S3_DOMAIN: '' });
    expect(config.port).toBe(8080);
    expect(config.s3.domain).toBeNull();
  });

  it('uses the image db path when inImage, and an explicit DB_PATH wins', () => {
    expect(ok({}, { inImage: true }).dbPath).toBe('/data/swarm-utils.db');
    expect(ok({}, { inImage: false }).dbPath).toBe('./data/swarm-utils.db');
    expect(ok({ SWARM_UTILS_DB_PATH: '/var/lib/su.db' }, { inImage: true }).dbPath).toBe('/var/lib/su.db');
  });

  it('names the secret variables', () => {
    expect([...SECRET_VARS].sort()).toEqual(
      [
        'SWARM_UTILS_ADMIN_TOKEN_LIST',
        'SWARM_UTILS_METRICS_TOKEN_LIST',
        'SWARM_UTILS_NOTIFY_URL',
        'SWARM_UTILS_NOTIFY_URLS',
        'SWARM_UTILS_REGISTRY_PASSWORD',
        'SWARM_UTILS_REGISTRY_USER',
        'SWARM_UTILS_S3_ACCESS_KEY',
        'SWARM_UTILS_S3_SECRET_ACCESS_KEY',
      ].sort(),
    );
  });
});

describe('loadConfig: values', () => {
  it('reads numbers with _ separators', () => {
    const config = ok({
      SWARM_UTILS_LOCK_TIMEOUT: '10_000',
      SWARM_UTILS_LOCK_MAX_EXECUTION_TIME: '1_200_000',
      SWARM_UTILS_LOCK_MAX_OCCUPATION_TIME: '1200000',
      SWARM_UTILS_PORT: ' 9090 ',
      SWARM_UTILS_CONCURRENCY: '64',
      SWARM_UTILS_JOB_RETENTION_DAYS: '1',
    });
    expect(config).toMatchObject({
      lockTimeoutMs: 10_000,
      lockMaxExecutionMs: 1_200_000,
      lockMaxOccupationMs: 1_200_000,
      port: 9090,
      concurrency: 64,
      jobRetentionDays: 1,
    });
  });

  it.each(['abc', '10.5', '1e4', '_10', '10_', '1__0', '0x10', '0', '65536', '-1'])('refuses port %j', (port) => {
    const list = problems({ SWARM_UTILS_PORT: port });
    expect(list).toEqual([`SWARM_UTILS_PORT: must be an integer between 1 and 65535 (got ${JSON.stringify(port)})`]);
  });

  it('splits lists on commas, trims items and drops empty ones', () => {
    expect(ok({ SWARM_UTILS_ADMIN_TOKEN_LIST: ' tok-a , tok-b,,tok-c, ' }).adminTokens).toEqual(['tok-a', 'tok-b', 'tok-c']);
    expect(ok({ SWARM_UTILS_ADMIN_TOKEN_LIST: 'tok-a,' }).adminTokens).toEqual(['tok-a']);
  });

  it('reads booleans as true/false in any case', () => {
    const config = ok({ SWARM_UTILS_IS_CRON_CLEAN: 'TRUE', SWARM_UTILS_S3_HTTPS: 'False' });
    expect(config.isCronClean).toBe(true);
    expect(config.s3.https).toBe(false);
  });

  it.each(['yes', '1', 'on', 'no'])('refuses boolean %j', (value) => {
    expect(problems({ SWARM_UTILS_IS_CRON_CLEAN: value })).toEqual([
      `SWARM_UTILS_IS_CRON_CLEAN: must be "true" or "false" (got ${JSON.stringify(value)})`,
    ]);
  });

  it('SWARM_UTILS_BACKUP_STAGE is a boolean like the others', () => {
    expect(ok({ SWARM_UTILS_BACKUP_STAGE: 'FALSE' }).backupStage).toBe(false);
    expect(problems({ SWARM_UTILS_BACKUP_STAGE: 'off' })).toEqual(['SWARM_UTILS_BACKUP_STAGE: must be "true" or "false" (got "off")']);
  });

  it('lower-cases the log level and refuses an unknown one', () => {
    expect(ok({ SWARM_UTILS_LOG_LEVEL: 'DEBUG' }).logLevel).toBe('debug');
    expect(problemOf(problems({ SWARM_UTILS_LOG_LEVEL: 'loud' }), 'SWARM_UTILS_LOG_LEVEL')).toContain('"loud"');
  });

  it('keeps the host, images and S3 path as given', () => {
    const config = ok({
      SWARM_UTILS_HOST: '127.0.0.1',
      SWARM_UTILS_DOCKER_CLI_IMAGE_NAME: 'docker:27-cli',
      SWARM_UTILS_BACKUP_IMAGE: 'offen/docker-volume-backup:v2.49.0',
      SWARM_UTILS_S3_PATH: 'cluster-a',
      SWARM_UTILS_BACKUP_STAGE: 'false',
    });
    expect(config).toMatchObject({
      backupStage: false,
      host: '127.0.0.1',
      dockerCliImage: 'docker:27-cli',
      backupImage: 'offen/docker-volume-backup:v2.49.0',
      s3: { path: 'cluster-a' },
    });
  });
});

describe('loadConfig: S3 providers', () => {
  const ca = makeTestCa();
  afterAll(() => rmSync(ca.dir, { recursive: true, force: true }));

  it('signs for the region set, else the one an AWS endpoint names, else us-east-1', () => {
    expect(ok({ ...FULL_S3, SWARM_UTILS_S3_REGION: 'eu-central-1' }).s3.region).toBe('eu-central-1');
    expect(ok({ ...FULL_S3, SWARM_UTILS_S3_DOMAIN: 's3.eu-west-3.amazonaws.com' }).s3.region).toBe('eu-west-3');
    expect(ok({ ...FULL_S3, SWARM_UTILS_S3_DOMAIN: 's3.amazonaws.com' }).s3.region).toBe('us-east-1');
    expect(ok({ ...FULL_S3, SWARM_UTILS_S3_DOMAIN: 'acc.r2.cloudflarestorage.com', SWARM_UTILS_S3_REGION: 'auto' }).s3.region).toBe('auto');
    expect(ok(FULL_S3).s3.region).toBe('us-east-1');
  });

  it.each([
    ['s3.eu-west-3.amazonaws.com', 'eu-west-3'],
    ['s3-eu-west-3.amazonaws.com', 'eu-west-3'],
    ['s3.dualstack.ap-south-1.amazonaws.com:443', 'ap-south-1'],
    ['s3.cn-north-1.amazonaws.com.cn', 'cn-north-1'],
    ['s3.amazonaws.com', null],
    ['s3-external-1.amazonaws.com', null],
    ['minio:9000', null],
    ['s3.us-west-004.backblazeb2.com', null],
  ])('regionOfAwsDomain(%j) is %j', (domain, region) => {
    expect(regionOfAwsDomain(domain)).toBe(region);
  });

  it('refuses a region that contradicts the AWS endpoint, and a malformed one', () => {
    const list = problems({ ...FULL_S3, SWARM_UTILS_S3_DOMAIN: 's3.eu-west-3.amazonaws.com', SWARM_UTILS_S3_REGION: 'eu-central-1' });
    expect(problemOf(list, 'SWARM_UTILS_S3_REGION')).toContain('"eu-west-3"');
    expect(problemOf(problems({ ...FULL_S3, SWARM_UTILS_S3_REGION: 'EU Central' }), 'SWARM_UTILS_S3_REGION')).toContain('"EU Central"');
  });

  it('addresses AWS virtual-hosted and everything else path-style, unless told', () => {
    expect(ok(FULL_S3).s3.pathStyle).toBe(true);
    expect(ok({ ...FULL_S3, SWARM_UTILS_S3_DOMAIN: 's3.eu-west-3.amazonaws.com' }).s3.pathStyle).toBe(false);
    expect(ok({ ...FULL_S3, SWARM_UTILS_S3_DOMAIN: 's3.eu-west-3.amazonaws.com', SWARM_UTILS_S3_ADDRESSING_STYLE: 'Path' }).s3.pathStyle).toBe(true);
    expect(ok({ ...FULL_S3, SWARM_UTILS_S3_ADDRESSING_STYLE: 'virtual' }).s3.pathStyle).toBe(false);
    expect(problemOf(problems({ SWARM_UTILS_S3_ADDRESSING_STYLE: 'dns' }), 'SWARM_UTILS_S3_ADDRESSING_STYLE')).toContain('auto, path, virtual');
  });

  it('takes a CA certificate as PEM or as a file, and refuses what is not one certificate', () => {
    expect(ok({ ...FULL_S3, SWARM_UTILS_S3_CA_CERT: ca.caCert }).s3.caCert).toBe(ca.caCert);
    expect(ok({ ...FULL_S3, SWARM_UTILS_S3_CA_CERT_FILE: ca.caCertPath }).s3.caCert).toBe(ca.caCert);
    expect(problemOf(problems({ ...FULL_S3, SWARM_UTILS_S3_CA_CERT: 'not a cert' }), 'SWARM_UTILS_S3_CA_CERT')).toContain('PEM');
    const bundle = problems({ ...FULL_S3, SWARM_UTILS_S3_CA_CERT: ca.caCert + ca.serverCert });
    expect(problemOf(bundle, 'SWARM_UTILS_S3_CA_CERT')).toContain('2 certificates');
    const broken = ca.caCert.replace(/\n[A-Za-z0-9+/]{20}/, '\nAAAAAAAAAAAAAAAAAAAA');
    expect(problemOf(problems({ ...FULL_S3, SWARM_UTILS_S3_CA_CERT: broken }), 'SWARM_UTILS_S3_CA_CERT')).toContain('not a valid certificate');
    const missing = join(tmp, 'no-ca.crt');
    expect(problems({ ...FULL_S3, SWARM_UTILS_S3_CA_CERT_FILE: missing })).toEqual([`SWARM_UTILS_S3_CA_CERT_FILE: cannot read ${JSON.stringify(missing)} (ENOENT)`]);
    const http = problems({ ...FULL_S3, SWARM_UTILS_S3_HTTPS: 'false', SWARM_UTILS_S3_CA_CERT: ca.caCert });
    expect(problemOf(http, 'SWARM_UTILS_S3_CA_CERT')).toContain('https');
  });

  it('lists the helper networks, and refuses what is not a network name', () => {
    expect(ok({ SWARM_UTILS_HELPER_NETWORKS: 'minio_net, backup-net,,minio_net' }).helperNetworks).toEqual(['minio_net', 'backup-net']);
    expect(problemOf(problems({ SWARM_UTILS_HELPER_NETWORKS: 'ok,no way' }), 'SWARM_UTILS_HELPER_NETWORKS')).toContain('"no way"');
  });

  it('refuses AWS_ENDPOINT_CA_CERT as a pass-through (the CA setting sets it)', () => {
    expect(problemOf(problems({ SWARM_UTILS_BACKUP_ENV_AWS_ENDPOINT_CA_CERT: 'x' }), 'SWARM_UTILS_BACKUP_ENV_AWS_ENDPOINT_CA_CERT')).toContain('set by swarm-utils');
  });
});

describe('loadConfig: all problems at once', () => {
  it('reports every invalid variable in one result, each line beginning with its name', () => {
    const list = problems({
      SWARM_UTILS_PORT: 'abc',
      SWARM_UTILS_CONCURRENCY: '65',
      SWARM_UTILS_LOCK_TIMEOUT: '0',
      SWARM_UTILS_JOB_RETENTION_DAYS: '0',
      SWARM_UTILS_IS_CRON_CLEAN: 'yes',
      SWARM_UTILS_S3_HTTPS: 'nope',
      SWARM_UTILS_LOG_LEVEL: 'loud',
      SWARM_UTILS_CRON_EXPR: 'every day',
      SWARM_UTILS_CRON_TZ: 'Mars/Olympus',
      SWARM_UTILS_S3_DOMAIN: 'minio:9000', // partial S3
      SWARM_UTILS_PROT: '8080', // typo: a warning, not a problem
    });
    expect(problemOf(list, 'SWARM_UTILS_PORT')).toBe('SWARM_UTILS_PORT: must be an integer between 1 and 65535 (got "abc")');
    expect(problemOf(list, 'SWARM_UTILS_CONCURRENCY')).toContain('between 1 and 64');
    problemOf(list, 'SWARM_UTILS_LOCK_TIMEOUT');
    problemOf(list, 'SWARM_UTILS_JOB_RETENTION_DAYS');
    problemOf(list, 'SWARM_UTILS_IS_CRON_CLEAN');
    problemOf(list, 'SWARM_UTILS_S3_HTTPS');
    problemOf(list, 'SWARM_UTILS_LOG_LEVEL');
    problemOf(list, 'SWARM_UTILS_CRON_EXPR');
    problemOf(list, 'SWARM_UTILS_CRON_TZ');
    problemOf(list, 'SWARM_UTILS_S3_BUCKET_NAME');
    expect(list.filter((p) => p.startsWith('SWARM_UTILS_PROT'))).toEqual([]);
    expect(list).toHaveLength(12); // the 10 above + missing S3 access key and secret
    for (const line of list) {
      expect(line).toMatch(/^SWARM_UTILS_[A-Z0-9_]+: \S/);
      expect(line).not.toContain('\n');
    }
  });
});

describe('loadConfig: cron', () => {
  it('accepts 5 and 6 fields', () => {
    expect(ok({ SWARM_UTILS_CRON_EXPR: '30 2 * * 1-5' }).cronExpr).toBe('30 2 * * 1-5');
    expect(ok({ SWARM_UTILS_CRON_EXPR: '0 */15 * * * *' }).cronExpr).toBe('0 */15 * * * *');
  });

  it('reports garbage with croner’s message', () => {
    const line = problemOf(problems({ SWARM_UTILS_CRON_EXPR: 'garbage' }), 'SWARM_UTILS_CRON_EXPR');
    expect(line).toContain('"garbage"');
    expect(line).toContain('CronPattern:');
    expect(problemOf(problems({ SWARM_UTILS_CRON_EXPR: '61 * * * *' }), 'SWARM_UTILS_CRON_EXPR')).toContain('minute');
  });

  it('refuses 7 fields (year), which croner would take', () => {
    problemOf(problems({ SWARM_UTILS_CRON_EXPR: '0 0 3 * * * 2030' }), 'SWARM_UTILS_CRON_EXPR');
  });

  it('checks the time zone', () => {
    expect(ok({ SWARM_UTILS_CRON_TZ: 'Europe/Paris' }).cronTz).toBe('Europe/Paris');
    expect(problems({ SWARM_UTILS_CRON_TZ: 'Mars/Olympus' })).toEqual([
      'SWARM_UTILS_CRON_TZ: must be an IANA time zone such as "UTC" or "Europe/Paris" (got "Mars/Olympus")',
    ]);
  });
});

describe('loadConfig: S3 and registry', () => {
  it('takes a complete S3 set', () => {
    expect(ok({ ...FULL_S3, SWARM_UTILS_S3_HTTPS: 'false' }).s3).toEqual({
      domain: 'minio:9000',
      https: false,
      bucket: 'backups',
      accessKey: 'AKIA-access',
      secretAccessKey: 's3-secret',
      path: '',
      region: 'us-east-1',
      pathStyle: true,
      caCert: null,
    });
  });

  it('lists each missing S3 variable of a partial set', () => {
    const list = problems({ SWARM_UTILS_S3_DOMAIN: 's3.example.com', SWARM_UTILS_S3_ACCESS_KEY: 'AKIA-x' });
    expect(list).toHaveLength(2);
    expect(problemOf(list, 'SWARM_UTILS_S3_BUCKET_NAME')).toContain('all-or-nothing');
    expect(problemOf(list, 'SWARM_UTILS_S3_SECRET_ACCESS_KEY')).toContain('SWARM_UTILS_S3_DOMAIN');
  });

  it('requires S3 when the cron run backs up', () => {
    const list = problems({ SWARM_UTILS_IS_CRON_BACKUP: 'true' });
    expect(list).toHaveLength(1);
    expect(problemOf(list, 'SWARM_UTILS_IS_CRON_BACKUP')).toContain('SWARM_UTILS_S3_BUCKET_NAME');
    expect(ok({ ...FULL_S3, SWARM_UTILS_IS_CRON_BACKUP: 'true' }).isCronBackup).toBe(true);
  });

  it('refuses a scheme in the S3 domain, with a hint', () => {
    const https = problemOf(problems({ ...FULL_S3, SWARM_UTILS_S3_DOMAIN: 'https://s3.example.com' }), 'SWARM_UTILS_S3_DOMAIN');
    expect(https).toContain('without a scheme');
    expect(https).toContain('"s3.example.com"');
    const http = problemOf(problems({ ...FULL_S3, SWARM_UTILS_S3_DOMAIN: 'http://minio:9000/' }), 'SWARM_UTILS_S3_DOMAIN');
    expect(http).toContain('SWARM_UTILS_S3_HTTPS=false');
    problemOf(problems({ ...FULL_S3, SWARM_UTILS_S3_DOMAIN: 's3.example.com/bucket' }), 'SWARM_UTILS_S3_DOMAIN');
  });

  it('stores the registry as host[:port], with or without https://', () => {
    const creds = { SWARM_UTILS_REGISTRY_USER: 'ci', SWARM_UTILS_REGISTRY_PASSWORD: 'pw' };
    expect(ok({ ...creds, SWARM_UTILS_REGISTRY_URL: 'https://registry.example.com:5000/' }).registry).toEqual({
      url: 'registry.example.com:5000',
      user: 'ci',
      password: 'pw',
    });
    expect(ok({ ...creds, SWARM_UTILS_REGISTRY_URL: 'registry.example.com' }).registry.url).toBe('registry.example.com');
    expect(problemOf(problems({ ...creds, SWARM_UTILS_REGISTRY_URL: 'http://registry.example.com' }), 'SWARM_UTILS_REGISTRY_URL')).toContain(
      'HTTPS',
    );
  });

  it('lists each missing registry variable of a partial set', () => {
    const list = problems({ SWARM_UTILS_REGISTRY_URL: 'registry.example.com' });
    expect(list).toHaveLength(2);
    problemOf(list, 'SWARM_UTILS_REGISTRY_USER');
    problemOf(list, 'SWARM_UTILS_REGISTRY_PASSWORD');
  });

  it('needs the lock occupation to cover one execution', () => {
    const list = problems({ SWARM_UTILS_LOCK_MAX_EXECUTION_TIME: '700_000' });
    expect(list).toEqual([
      'SWARM_UTILS_LOCK_MAX_OCCUPATION_TIME: must be >= SWARM_UTILS_LOCK_MAX_EXECUTION_TIME (700000) (got 630000)',
    ]);
  });

  it('does not repeat one mistake as a cross-field problem', () => {
    const list = problems({ SWARM_UTILS_LOCK_MAX_EXECUTION_TIME: 'soon', SWARM_UTILS_S3_DOMAIN: 'https://x' });
    expect(list.map((line) => line.split(':')[0])).toEqual(
      expect.arrayContaining(['SWARM_UTILS_LOCK_MAX_EXECUTION_TIME', 'SWARM_UTILS_S3_DOMAIN']),
    );
    expect(list.some((line) => line.startsWith('SWARM_UTILS_LOCK_MAX_OCCUPATION_TIME'))).toBe(false);
  });
});

describe('loadConfig: secrets from files', () => {
  it('reads NAME_FILE and trims the trailing newline', () => {
    const config = ok({
      SWARM_UTILS_ADMIN_TOKEN_LIST_FILE: secretFile('tokens', 'tok-1,tok-2,\n'),
      SWARM_UTILS_S3_DOMAIN: 'minio:9000',
      SWARM_UTILS_S3_BUCKET_NAME: 'backups',
      SWARM_UTILS_S3_ACCESS_KEY_FILE: secretFile('access', 'AKIA-file\n'),
      SWARM_UTILS_S3_SECRET_ACCESS_KEY_FILE: secretFile('secret', 'secret with trailing space \r\n'),
      SWARM_UTILS_REGISTRY_URL: 'registry.example.com',
      SWARM_UTILS_REGISTRY_USER_FILE: secretFile('user', 'ci'),
      SWARM_UTILS_REGISTRY_PASSWORD_FILE: secretFile('password', 'pw\n'),
    });
    expect(config.adminTokens).toEqual(['tok-1', 'tok-2']);
    expect(config.s3.accessKey).toBe('AKIA-file');
    expect(config.s3.secretAccessKey).toBe('secret with trailing space ');
    expect(config.registry).toEqual({ url: 'registry.example.com', user: 'ci', password: 'pw' });
  });

  it('reports an unreadable file with the variable and the path, and nothing else', () => {
    const missing = join(tmp, 'does-not-exist');
    const list = problems({ ...FULL_S3, SWARM_UTILS_S3_SECRET_ACCESS_KEY: undefined, SWARM_UTILS_S3_SECRET_ACCESS_KEY_FILE: missing });
    expect(list).toEqual([`SWARM_UTILS_S3_SECRET_ACCESS_KEY_FILE: cannot read ${JSON.stringify(missing)} (ENOENT)`]);
  });

  it('reports an empty file', () => {
    const list = problems({ SWARM_UTILS_ADMIN_TOKEN_LIST_FILE: secretFile('empty', '\n') });
    expect(problemOf(list, 'SWARM_UTILS_ADMIN_TOKEN_LIST_FILE')).toContain('empty');
  });

  it('refuses NAME and NAME_FILE together', () => {
    const list = problems({
      SWARM_UTILS_ADMIN_TOKEN_LIST: 'tok-env',
      SWARM_UTILS_ADMIN_TOKEN_LIST_FILE: secretFile('tokens-both', 'tok-file'),
    });
    expect(list).toEqual([
      'SWARM_UTILS_ADMIN_TOKEN_LIST: set either SWARM_UTILS_ADMIN_TOKEN_LIST or SWARM_UTILS_ADMIN_TOKEN_LIST_FILE, not both',
    ]);
  });

  it('uses the injected readFile', () => {
    const config = ok({ SWARM_UTILS_ADMIN_TOKEN_LIST_FILE: '/run/secrets/tokens' }, { readFile: () => 'tok-injected\n' });
    expect(config.adminTokens).toEqual(['tok-injected']);
  });

  it('warns about _FILE for a variable that is not a secret, and does not read it', () => {
    const result = loadConfig({ SWARM_UTILS_PORT_FILE: '/run/secrets/port' }, { readFile: () => expect.fail('not a secret: not read') });
    expect(result.ok).toBe(true);
    expect(result.warnings).toEqual([
      'SWARM_UTILS_PORT_FILE: unknown variable (a typo?), ignored; only the secret variables and SWARM_UTILS_S3_CA_CERT accept a _FILE form',
    ]);
  });
});

describe('loadConfig: secret values never appear in problems', () => {
  it('keeps every secret out of every problem line', () => {
    const SECRETS = ['TOKEN-VALUE-1', 'ACCESS-VALUE-2', 'SECRET-VALUE-3', 'USER-VALUE-4', 'PASSWORD-VALUE-5', 'FILE-CONTENT-6'];
    const list = problems(
      {
        SWARM_UTILS_ADMIN_TOKEN_LIST: 'TOKEN-VALUE-1,',
        SWARM_UTILS_ADMIN_TOKEN_LIST_FILE: '/run/secrets/tokens', // both set
        SWARM_UTILS_S3_ACCESS_KEY: 'ACCESS-VALUE-2', // partial S3
        SWARM_UTILS_S3_SECRET_ACCESS_KEY: 'SECRET-VALUE-3',
        SWARM_UTILS_REGISTRY_USER: 'USER-VALUE-4', // partial registry
        SWARM_UTILS_REGISTRY_PASSWORD_FILE: '/run/secrets/password', // unreadable
        SWARM_UTILS_S3_SECRET_KEY: 'SECRET-VALUE-3', // typo of a secret's name
        SWARM_UTILS_BACKUP_ENV_AWS_SECRET_ACCESS_KEY: 'PASSWORD-VALUE-5', // reserved
        SWARM_UTILS_REGISTRY_URL: 'https://USER-VALUE-4:PASSWORD-VALUE-5@registry.example.com',
      },
      {
        readFile: (path) => {
          throw new Error(`cannot read ${path}: FILE-CONTENT-6`);
        },
      },
    );
    expect(list.length).toBeGreaterThanOrEqual(6);
    const result = loadConfig({ SWARM_UTILS_S3_SECRET_KEY: 'SECRET-VALUE-3' });
    expect(result.warnings).toHaveLength(1);
    for (const line of [...list, ...result.warnings!]) for (const secret of SECRETS) expect(line).not.toContain(secret);
  });
});

describe('loadConfig: backup env and unknown variables', () => {
  it('passes SWARM_UTILS_BACKUP_ENV_<NAME> on as NAME', () => {
    const config = ok({
      SWARM_UTILS_BACKUP_ENV_GPG_PASSPHRASE: 'p4ss',
      SWARM_UTILS_BACKUP_ENV_BACKUP_COMPRESSION: 'zst',
      SWARM_UTILS_BACKUP_ENV_EMPTY_ONE: '',
    });
    expect(config.backupEnv).toEqual({ GPG_PASSPHRASE: 'p4ss', BACKUP_COMPRESSION: 'zst', EMPTY_ONE: '' });
  });

  it('refuses the names swarm-utils sets itself, and invalid names', () => {
    const reserved = ['AWS_S3_BUCKET_NAME', 'AWS_ENDPOINT', 'AWS_ENDPOINT_PROTO', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_S3_PATH', 'BACKUP_FILENAME'];
    const env = Object.fromEntries(reserved.map((name) => [`SWARM_UTILS_BACKUP_ENV_${name}`, 'x']));
    const list = problems({ ...env, SWARM_UTILS_BACKUP_ENV_lower: 'x', SWARM_UTILS_BACKUP_ENV_: 'x' });
    expect(list).toHaveLength(reserved.length + 2);
    for (const name of reserved) expect(problemOf(list, `SWARM_UTILS_BACKUP_ENV_${name}`)).toContain('set by swarm-utils');
    expect(problemOf(list, 'SWARM_UTILS_BACKUP_ENV_lower')).toContain('not a valid variable name');
    problemOf(list, 'SWARM_UTILS_BACKUP_ENV_');
  });

  it('warns about every unknown SWARM_UTILS_ variable by name only, and starts', () => {
    const result = loadConfig({ SWARM_UTILS_PROT: '80', SWARM_UTILS_CRON_EXPRESSION: '* * * * *', SWARM_UTILSX: 'not ours', SWARM_UTILS_S3_SECRET_KEY: 'SECRET-VALUE' });
    if (!result.ok) throw new Error(result.problems.join('\n'));
    expect(result.config.port).toBe(8080);
    expect(result.warnings).toEqual([
      'SWARM_UTILS_PROT: unknown variable (a typo?), ignored',
      'SWARM_UTILS_CRON_EXPRESSION: unknown variable (a typo?), ignored',
      'SWARM_UTILS_S3_SECRET_KEY: unknown variable (a typo?), ignored',
    ]);
    for (const line of result.warnings) expect(line).not.toContain('SECRET-VALUE');
  });

  it('knows the variables of the command-line client and of the stack: no warning for them', () => {
    const result = loadConfig({ SWARM_UTILS_URL: 'http://127.0.0.1:8080', SWARM_UTILS_TOKEN: 'tok', SWARM_UTILS_IMAGE: 'swarm-utils:1.0.0', SWARM_UTILS_BACKUP_ENV_BACKUP_COMPRESSION: 'zst' });
    expect(result.ok && result.warnings).toEqual([]);
  });

  it('warns about none of the CONFIG_VARS names', () => {
    const env = Object.fromEntries(CONFIG_VARS.map((name) => [name, '']));
    expect(loadConfig(env)).toMatchObject({ ok: true, warnings: [] });
  });

  it('prints the unknown names beside the problems of an invalid configuration', () => {
    const result = loadConfig({ SWARM_UTILS_PORT: 'abc', SWARM_UTILS_S3_BUCKET: 'x' });
    expect(result).toMatchObject({ ok: false, warnings: ['SWARM_UTILS_S3_BUCKET: unknown variable (a typo?), ignored'] });
  });
});

describe('exitOnInvalidConfig', () => {
  it('returns the configuration when valid', () => {
    const result = loadConfig({ SWARM_UTILS_PORT: '9000' });
    expect(exitOnInvalidConfig(result, () => expect.fail('nothing to print')).port).toBe(9000);
  });

  it('prints every problem and exits 2 when invalid', () => {
    const exit = vi.spyOn(process, 'exit').mockImplementation((code) => {
      throw new Error(`exit ${String(code)}`);
    });
    try {
      const lines: string[] = [];
      const result: ConfigResult = { ok: false, problems: ['SWARM_UTILS_A: bad', 'SWARM_UTILS_B: worse'] };
      expect(() => exitOnInvalidConfig(result, (line) => lines.push(line))).toThrow('exit 2');
      expect(lines).toEqual(['swarm-utils: invalid configuration:', '  SWARM_UTILS_A: bad', '  SWARM_UTILS_B: worse']);
    } finally {
      exit.mockRestore();
    }
  });

  it('exits 2 from a real process, printing all problems and no secret', () => {
    const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('SWARM_UTILS_')));
    Object.assign(env, {
      SWARM_UTILS_PORT: 'abc',
      SWARM_UTILS_S3_SECRET_ACCESS_KEY: 'supersecret-value',
      SWARM_UTILS_S3_DOMAIN: 'minio:9000',
    });
    const script = `import('./src/config.ts').then((m) => { m.exitOnInvalidConfig(m.loadConfig(process.env)); console.log('not reached'); })`;
    const run = spawnSync('npx', ['tsx', '-e', script], { cwd: ROOT, env, encoding: 'utf8', timeout: 15_000 });
    const output = `${run.stdout}${run.stderr}`;

    expect(run.status, output).toBe(2);
    expect(run.stderr).toContain('swarm-utils: invalid configuration:');
    expect(run.stderr).toContain('SWARM_UTILS_PORT: must be an integer between 1 and 65535 (got "abc")');
    expect(run.stderr).toMatch(/^ {2}SWARM_UTILS_S3_BUCKET_NAME: missing/m);
    expect(run.stderr).toMatch(/^ {2}SWARM_UTILS_S3_ACCESS_KEY: missing/m);
    expect(run.stdout).not.toContain('not reached');
    expect(output).not.toContain('supersecret-value');
  });
});
