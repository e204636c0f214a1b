/**
 * test/swarm/up.sh on a host whose dockerd is in another swarm: it must stop with a message and
 * change nothing. A second real swarm cannot be made on the test machine's host daemon without
 * taking it out of the test swarm, so the host's daemon is played by a fake `docker` first on PATH:
 * it answers `info` (and `node ls`) as the case says and records every command it is given; the
 * assertions are that up.sh exits non-zero with the message and never sent a command that would
 * leave, join, initialise or change a swarm. The real host swarm is also compared before and after.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../helpers/testbed.js';

const SWARM_DIR = fileURLToPath(new URL('../swarm/', import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'swarm-utils-guard-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const isRoot = process.getuid?.() === 0;
const hasDocker = existsSync('/usr/local/bin/docker') || existsSync('/usr/bin/docker');

// the fake daemon: `info` prints FAKE_INFO, `node ls` prints FAKE_NODES; everything is logged
writeFileSync(
  path.join(dir, 'docker'),
  `#!/usr/bin/env bash
printf '%s\\n' "$*" >>"$FAKE_LOG"
for a in "$@"; do
  case $a in
    info) printf '%s\\n' "$FAKE_INFO"; exit 0 ;;
    ls) [[ " $* " == *" node "* ]] && { printf '%s\\n' $FAKE_NODES; exit 0; } ;;
  esac
done
exit 0
`,
);
chmodSync(path.join(dir, 'docker'), 0o755);

/** the commands that would change a swarm's membership or its content */
const MUTATING = /\b(swarm (leave|init|join|update)|node (update|rm|demote|promote)|service (create|rm|update|scale)|stack|network (create|rm))\b/;

interface Case {
  name: string;
  /** state|node id|manager?|address|cluster id|daemon name, as guard.sh asks for it */
  info: string;
  nodes?: string;
}

async function runWithFake(script: string, args: string[], c: Case, extraEnv: Record<string, string> = {}) {
  const log = path.join(dir, `${c.name}.log`);
  writeFileSync(log, '');
  const res = await run('bash', [path.join(SWARM_DIR, script), ...args], {
    env: {
      ...process.env,
      PATH: `${dir}:${process.env.PATH}`,
      FAKE_LOG: log,
      FAKE_INFO: c.info,
      FAKE_NODES: c.nodes ?? 'prod-1 prod-2',
      ...extraEnv,
    },
    timeoutMs: 60_000,
  });
  return { ...res, commands: readFileSync(log, 'utf8').split('\n').filter(Boolean) };
}

/** the real host daemon's swarm identity (node id and cluster id) */
async function realSwarm(): Promise<string> {
  const r = await run('docker', ['info', '--format', '{{.Swarm.LocalNodeState}} {{.Swarm.NodeID}} {{if .Swarm.Cluster}}{{.Swarm.Cluster.ID}}{{end}}']);
  return r.stdout.trim();
}

const FOREIGN: Case[] = [
  { name: 'manager', info: 'active|prodnode1|true|192.168.50.10|prodcluster1|prod-manager-1' },
  { name: 'worker', info: 'active|prodnode2|false|192.168.50.11||prod-worker-2' },
  { name: 'locked', info: 'locked|prodnode3|false|||prod-manager-3' },
  { name: 'pending', info: 'pending|prodnode4|false|192.168.50.12||prod-4' },
  { name: 'error', info: 'error|prodnode5|false|192.168.50.13||prod-5' },
  // on the test bridge's address, but with nodes that are not the test nodes
  { name: 'lookalike', info: 'active|prodnode6|true|10.77.0.1|prodcluster6|host-a', nodes: 'host-a su-worker-1 prod-db-1' },
];

describe.skipIf(!isRoot || !hasDocker)('up.sh on a host in another swarm', () => {
  it.each(FOREIGN)('refuses a foreign swarm ($name) with the reason, and sends no command that changes it', async (c) => {
    const before = await realSwarm();
    const r = await runWithFake('up.sh', [], c, { SU_SWARM_RECORD: path.join(dir, `${c.name}.record`) });
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.stderr).toContain('did not create');
    expect(r.stderr).toContain('disposable machine');
    expect(r.stderr).toContain(c.info.split('|')[1]);
    // the guard asked, and the script stopped there: no other command at all (not even a check
    // whether a daemon answers), so certainly none that changes a swarm
    expect(r.commands.length).toBeGreaterThan(0);
    expect(r.commands.filter((cmd) => !cmd.includes('{{.Swarm.LocalNodeState}}|{{.Swarm.NodeID}}') && !/ node ls /.test(cmd))).toEqual([]);
    expect(r.commands.filter((cmd) => MUTATING.test(cmd))).toEqual([]);
    expect(existsSync(path.join(dir, `${c.name}.record`))).toBe(false);
    expect(await realSwarm()).toBe(before);
  });

  it('the demo stops the same way, before installing anything', async () => {
    const c = FOREIGN[0]!;
    const r = await runWithFake('../demo.sh', ['--once'], c);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('did not create');
    expect(r.stdout).not.toContain('==>');
    expect(r.commands.filter((cmd) => MUTATING.test(cmd))).toEqual([]);
  });
});

describe.skipIf(!hasDocker)('guard.sh: what counts as the test swarm', () => {
  const guard = (c: Case, record: string, ...args: string[]) => runWithFake('guard.sh', args, c, { SU_SWARM_RECORD: record });

  it('passes a daemon in no swarm', async () => {
    expect((await guard({ name: 'inactive', info: 'inactive|||||host-a' }, path.join(dir, 'none.record'))).code).toBe(0);
  });

  it('passes the swarm it recorded, in any state, and refuses another one with the same address', async () => {
    const record = path.join(dir, 'ours.record');
    writeFileSync(record, 'ournode ourcluster\n');
    expect((await guard({ name: 'ours', info: 'active|ournode|true|10.77.0.1|ourcluster|host-a', nodes: 'host-a' }, record)).code).toBe(0);
    expect((await guard({ name: 'ours-error', info: 'error|ournode|false|10.77.0.1||host-a' }, record)).code).toBe(0);
    const other = await guard({ name: 'other-cluster', info: 'active|ournode|true|192.168.1.5|othercluster|host-a' }, record);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('othercluster');
  });

  it('adopts (and records) a test swarm made before the record existed: the test address and only test nodes', async () => {
    const record = path.join(dir, 'adopt.record');
    const c = { name: 'adopt', info: 'active|oldnode|true|10.77.0.1|oldcluster|host-a', nodes: 'host-a su-worker-1 su-worker-2' };
    expect((await guard(c, record, '--no-record')).code).toBe(0);
    expect(existsSync(record)).toBe(false);
    expect((await guard(c, record)).code).toBe(0);
    expect(readFileSync(record, 'utf8')).toBe('oldnode oldcluster\n');
  });
});
