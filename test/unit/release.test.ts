// The release (docs/install.md "Version"): the version the image reports in GET /healthz, GET /status and
// the first log line, the stamp `docker build` writes (scripts/build-info.mjs), what GET /status says of
// the configuration (nothing secret), and `npm start` building only when dist/ is older than src/.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { JobKind } from '../../src/engine/types.js';
import type { SubmitCheck } from '../../src/api/jobs-service.js';
import { apiFixture, fakeService, type ApiFixture } from '../helpers/api-fixture.js';

const ROOT = resolve(import.meta.dirname, '../..');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
const tmp = mkdtempSync(join(tmpdir(), 'swarm-utils-release-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const noop: JobKind & SubmitCheck = { type: 'update', locks: () => [], steps: () => [{ name: 'work', run: async () => ({ output: 'ok' }) }] };
let f: ApiFixture | null = null;
afterEach(async () => {
  await f?.close();
  f = null;
});

const SECRETS = {
  SWARM_UTILS_S3_ACCESS_KEY: 'ACCESS-KEY-VALUE',
  SWARM_UTILS_S3_SECRET_ACCESS_KEY: 'SECRET-KEY-VALUE',
  SWARM_UTILS_REGISTRY_USER: 'REGISTRY-USER-VALUE',
  SWARM_UTILS_REGISTRY_PASSWORD: 'REGISTRY-PASSWORD-VALUE',
  SWARM_UTILS_METRICS_TOKEN_LIST: 'METRICS-TOKEN-A,METRICS-TOKEN-B',
  SWARM_UTILS_NOTIFY_URL: 'https://hooks.example.com/NOTIFY-TOKEN-VALUE',
  SWARM_UTILS_BACKUP_ENV_GPG_PASSPHRASE: 'GPG-PASSPHRASE-VALUE',
};

describe('the version and the configuration in effect', () => {
  it('package.json is at 1.0.0 and has a CHANGELOG entry for it', () => {
    expect(PKG.version).toBe('1.0.0');
    expect(readFileSync(join(ROOT, 'CHANGELOG.md'), 'utf8')).toMatch(/^## \[1\.0\.0\] - \d{4}-\d{2}-\d{2}$/m);
  });

  it('GET /healthz answers the version; GET /status (admin only) the version and a configuration summary without any secret', async () => {
    f = await apiFixture({
      services: [fakeService('web', { 'swarm-utils.update.token': 'web-token' })],
      kinds: { update: noop },
      env: {
        ...SECRETS,
        SWARM_UTILS_S3_DOMAIN: 'minio:9000',
        SWARM_UTILS_S3_BUCKET_NAME: 'backups',
        SWARM_UTILS_REGISTRY_URL: 'registry.example.com',
        SWARM_UTILS_BACKUP_RETENTION_DAYS: '7',
        SWARM_UTILS_JOB_RETENTION_DAYS: '12',
        SWARM_UTILS_NOTIFY_ON: 'always',
        SWARM_UTILS_BACKUP_ENV_BACKUP_COMPRESSION: 'zst',
      },
    });
    const health = await f.app.inject({ url: '/healthz' });
    expect(health.json()).toEqual({ status: 'ok', version: PKG.version });

    expect((await f.app.inject({ url: '/status' })).statusCode).toBe(401);
    expect((await f.app.inject({ url: '/status', headers: { authorization: 'Bearer web-token' } })).statusCode).toBe(403);
    expect((await f.app.inject({ url: '/status', headers: { authorization: 'Bearer METRICS-TOKEN-A' } })).statusCode).toBe(403);
    const r = await f.app.inject({ url: '/status', headers: { authorization: 'Bearer admin-token' } });
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body).toMatchObject({
      version: PKG.version,
      config: {
        s3: { domain: 'minio:9000', bucket: 'backups' },
        registry: { url: 'registry.example.com' },
        backupRetentionDays: 7,
        jobRetentionDays: 12,
        backupEnv: ['BACKUP_COMPRESSION', 'GPG_PASSPHRASE'],
        tokens: { admin: 1, metrics: 2, query: true },
        notify: { url: true, urls: 0, on: 'always', format: 'json' },
      },
    });
    for (const value of [...Object.values(SECRETS), 'admin-token', 'METRICS-TOKEN-B', 'hooks.example.com']) expect(r.body).not.toContain(value);
  });
});

describe('scripts/build-info.mjs (the Dockerfile stamps build-info.json with it)', () => {
  const stamp = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, 'scripts/build-info.mjs'), ...args], { encoding: 'utf8' });

  it('writes the given version and revision, package.json`s version by default, and refuses a non-semver', () => {
    expect(JSON.parse(stamp().stdout)).toEqual({ version: PKG.version, revision: null });
    expect(JSON.parse(stamp('v1.2.3', 'a1b2c3d').stdout)).toEqual({ version: '1.2.3', revision: 'a1b2c3d' });
    expect(JSON.parse(stamp('', '').stdout)).toEqual({ version: PKG.version, revision: null });
    const bad = stamp('latest');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('"latest" is not a semantic version');
  });

  it('is what the Dockerfile runs, with the VERSION and REVISION build arguments, into the runtime stage', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toContain('RUN node scripts/build-info.mjs "$VERSION" "$REVISION" > build-info.json');
    expect(dockerfile).toMatch(/^ARG VERSION=$/m);
    expect(dockerfile).toMatch(/^ARG REVISION=$/m);
    expect(dockerfile).toContain('COPY --from=build /app/build-info.json ./');
    expect(dockerfile).toContain('CMD ["node", "dist/main.js"]');
  });
});

describe('npm start builds only when dist/ is older than src/ (scripts/build-if-stale.mjs)', () => {
  it('builds without dist/, not again while dist/ is newer, and again once a source file changed', () => {
    const dir = join(tmp, 'checkout');
    mkdirSync(join(dir, 'src'), { recursive: true });
    writeFileSync(join(dir, 'src/main.ts'), 'export {};\n');
    writeFileSync(join(dir, 'tsconfig.json'), '{}\n');
    // a build that records each run and writes dist/main.js, as tsc would
    const build = `node -e "const fs=require('fs');fs.mkdirSync('dist',{recursive:true});fs.writeFileSync('dist/main.js','');fs.appendFileSync('builds','x')"`;
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'x', version: '1.0.0', scripts: { build } }));
    const prestart = () => spawnSync(process.execPath, [join(ROOT, 'scripts/build-if-stale.mjs')], { cwd: dir, encoding: 'utf8' });
    const builds = () => (existsSync(join(dir, 'builds')) ? readFileSync(join(dir, 'builds'), 'utf8').length : 0);
    const age = (path: string, seconds: number) => {
      const t = new Date(Date.now() - seconds * 1000);
      utimesSync(join(dir, path), t, t);
    };

    let r = prestart();
    expect(r.status, r.stderr).toBe(0);
    expect(builds()).toBe(1);
    for (const p of ['src/main.ts', 'src', 'tsconfig.json']) age(p, 60);
    r = prestart();
    expect(r.stderr).toContain('up to date');
    expect(builds()).toBe(1);
    age('dist/main.js', 120); // a source file is newer than the build
    r = prestart();
    expect(r.status).toBe(0);
    expect(builds()).toBe(2);
    // package.json runs it before `node dist/main.js`
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.scripts).toMatchObject({ prestart: 'node scripts/build-if-stale.mjs', start: 'node dist/main.js' });
  });

  it('does nothing where there is no src/ (the image)', () => {
    const dir = join(tmp, 'image');
    mkdirSync(dir, { recursive: true });
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/build-if-stale.mjs')], { cwd: dir, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(existsSync(join(dir, 'dist'))).toBe(false);
  });
});
