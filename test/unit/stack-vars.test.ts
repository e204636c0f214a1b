// Every variable an operator may set reaches the container (SPEC section 14): the list comes from the
// config schema (CONFIG_VARS), the stack files are swarm-stack.yml and the deploy/*.yml fragments.
// A non-secret variable is passed by swarm-stack.yml itself as `${VAR:-default}` from the deploying shell;
// a secret (and SWARM_UTILS_S3_CA_CERT) as VAR_FILE by a fragment that mounts its Docker secret or config.
// `docker stack config` (the docker client, no daemon needed) then renders the files as a deploy would.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_VARS, FILE_VARS, SECRET_VARS } from '../../src/config.js';

const ROOT = resolve(import.meta.dirname, '../..');
const FRAGMENTS = readdirSync(join(ROOT, 'deploy'))
  .filter((f) => f.endsWith('.yml'))
  .map((f) => `deploy/${f}`);
const FILES = ['swarm-stack.yml', ...FRAGMENTS];
const BY_FILE = new Set<string>([...SECRET_VARS, ...FILE_VARS]);
const tmp = mkdtempSync(join(tmpdir(), 'swarm-utils-stack-vars-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface StackFile {
  file: string;
  env: Record<string, string>;
  secrets: string[];
  configs: string[];
}

function load(file: string): StackFile {
  const doc = parse(readFileSync(join(ROOT, file), 'utf8'));
  const svc = doc?.services?.['swarm-utils'] ?? {};
  const env = Object.fromEntries(Object.entries(svc.environment ?? {}).map(([k, v]) => [k, String(v)]));
  const names = (list: unknown[] | undefined) => (list ?? []).map((x) => (typeof x === 'string' ? x : (x as { source: string }).source));
  return { file, env, secrets: names(svc.secrets), configs: names(svc.configs) };
}
const stack = FILES.map(load);
const base = stack[0]!;

/** `docker stack config` of the given files with the given environment (and nothing of this shell's SWARM_UTILS_*) */
function render(files: string[], env: Record<string, string>) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SWARM_UTILS_') && k !== 'DOCKER_HOST'));
  const r = spawnSync('docker', ['stack', 'config', ...files.flatMap((f) => ['-c', f])], {
    cwd: ROOT,
    env: { ...clean, DOCKER_HOST: 'unix:///nonexistent.sock', ...env },
    encoding: 'utf8',
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the stack files pass every configuration variable', () => {
  it('passes each non-secret variable from the deploying shell in swarm-stack.yml', () => {
    const missing = CONFIG_VARS.filter((v) => !BY_FILE.has(v) && !(v in base.env));
    expect(missing, `variables of src/config.ts that swarm-stack.yml does not pass: ${missing.join(', ')}`).toEqual([]);
    // the value is the deploying shell's, with the contract's default or blank (= the default)
    const notFromShell = CONFIG_VARS.filter((v) => v in base.env && !new RegExp(`^\\$\\{${v}(:-[^}]*)?\\}$`).test(base.env[v]!));
    expect(notFromShell, 'environment values that are not ${VAR:-default} of their own name').toEqual([]);
  });

  it('passes each secret (and SWARM_UTILS_S3_CA_CERT) as VAR_FILE from a fragment that mounts it, never as a value', () => {
    const missing: string[] = [];
    for (const v of BY_FILE) {
      const f = stack.find((s) => `${v}_FILE` in s.env);
      if (!f) {
        missing.push(v);
        continue;
      }
      const path = f.env[`${v}_FILE`]!;
      const m = /^\/run\/(secrets|configs)\/([a-z0-9_.]+?)(\.crt)?$/.exec(path);
      expect(m, `${f.file}: ${v}_FILE=${path}`).not.toBeNull();
      const mounted = m![1] === 'secrets' ? f.secrets : f.configs;
      expect(mounted, `${f.file} mounts what ${v}_FILE reads`).toContain(m![2]);
    }
    expect(missing, `secret variables no stack file passes as _FILE: ${missing.join(', ')}`).toEqual([]);
    const plain = stack.flatMap((s) => Object.keys(s.env).filter((k) => BY_FILE.has(k)).map((k) => `${s.file}: ${k}`));
    expect(plain, 'a secret in the service spec').toEqual([]);
  });

  it('names only variables the configuration knows', () => {
    const known = new Set([...CONFIG_VARS, ...[...BY_FILE].map((v) => `${v}_FILE`)]);
    const unknown = stack.flatMap((s) => Object.keys(s.env).filter((k) => !known.has(k)).map((k) => `${s.file}: ${k}`));
    expect(unknown).toEqual([]);
  });

  it('refuses to deploy without SWARM_UTILS_IMAGE, naming it (no fallback to :latest)', () => {
    const r = render(['swarm-stack.yml'], {});
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('required variable SWARM_UTILS_IMAGE is missing a value: set SWARM_UTILS_IMAGE to the image to deploy');
    const ok = render(['swarm-stack.yml'], { SWARM_UTILS_IMAGE: 'registry.example.com/swarm-utils:1.0.0' });
    expect(ok.code, ok.stderr).toBe(0);
    expect(parse(ok.stdout).services['swarm-utils'].image).toBe('registry.example.com/swarm-utils:1.0.0');
  });

  it('renders with every fragment: the settings of the shell, the secrets as files, the env file for BACKUP_ENV_* and typos', () => {
    const envFile = join(tmp, 'passthrough.env');
    writeFileSync(envFile, 'SWARM_UTILS_BACKUP_ENV_BACKUP_COMPRESSION=zst\nSWARM_UTILS_BACKUP_RETENTION_DAYS=7\nSWARM_UTILS_PROT=80\n');
    const r = render(FILES, {
      SWARM_UTILS_IMAGE: 'registry.example.com/swarm-utils:1.0.0',
      SWARM_UTILS_BACKUP_RETENTION_DAYS: '7',
      SWARM_UTILS_HELPER_NETWORKS: 'storage_minio',
      SWARM_UTILS_DEPLOY_ENV_FILE: envFile,
    });
    expect(r.code, r.stderr).toBe(0);
    const env: Record<string, string> = parse(r.stdout).services['swarm-utils'].environment;
    expect(env).toMatchObject({
      SWARM_UTILS_BACKUP_RETENTION_DAYS: '7',
      SWARM_UTILS_BACKUP_ENV_BACKUP_COMPRESSION: 'zst',
      SWARM_UTILS_PROT: '80',
      SWARM_UTILS_QUERY_TOKEN: 'true',
      SWARM_UTILS_NOTIFY_URL_FILE: '/run/secrets/swarm_utils_notify_url',
      SWARM_UTILS_METRICS_TOKEN_LIST_FILE: '/run/secrets/swarm_utils_metrics_tokens',
    });
    for (const v of CONFIG_VARS) expect(v in env || `${v}_FILE` in env, v).toBe(true);
  });
});
