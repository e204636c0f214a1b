// deploy/deploy.sh: its list of secrets is the config's, and it refuses what would break a deploy before
// calling Docker (a secret in the env file, no image). The deploys themselves: test/cluster/deploy.test.ts.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SECRET_VARS } from '../../src/config.js';

const ROOT = resolve(import.meta.dirname, '../..');
const SCRIPT = join(ROOT, 'deploy/deploy.sh');
const tmp = mkdtempSync(join(tmpdir(), 'swarm-utils-deploy-sh-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function deploy(lines: string[]) {
  const file = join(tmp, 'x.env');
  writeFileSync(file, `${lines.join('\n')}\n`);
  // no docker on PATH: each case must be refused before any Docker call
  return spawnSync('bash', [SCRIPT, '--dry-run', file], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: tmp } });
}

describe('deploy/deploy.sh', () => {
  it('knows every secret variable of the configuration', () => {
    const names = [...readFileSync(SCRIPT, 'utf8').matchAll(/^ {2}\[(SWARM_UTILS_[A-Z0-9_]+)\]=/gm)].map((m) => m[1]);
    expect(names.sort()).toEqual([...SECRET_VARS].sort());
  });

  it('refuses a secret in the env file, naming the Docker secret to create, and never prints its value', () => {
    const r = deploy(['SWARM_UTILS_IMAGE=x:1', 'SWARM_UTILS_NOTIFY_URL=https://hooks.example.com/SECRET-PATH']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('SWARM_UTILS_NOTIFY_URL is a secret');
    expect(r.stderr).toContain('docker secret create swarm_utils_notify_url <file>');
    expect(r.stderr + r.stdout).not.toContain('SECRET-PATH');
  });

  it('refuses an env file without SWARM_UTILS_IMAGE', () => {
    const r = deploy(['SWARM_UTILS_IS_CRON_CLEAN=true']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('does not set SWARM_UTILS_IMAGE');
  });
});
