/**
 * The command-line client (docs/cli.md) against a running server on the real test swarm and S3:
 * backup, restore --latest (the tree's checksums afterwards), drill and update, each with --wait and
 * through the real `swarm-utils` process; `jobs wait` on a job started through the API; the exit codes
 * for success, a failed job, a 403 and an unreachable server; --json parsed.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMAGES, S3, dockerFor } from '../helpers/testbed.js';
import { ADMIN_TOKEN, startServer, type RunningServer } from '../helpers/server.js';
import { createAppService, execInTask, removeServices, runningTasks, serverEnv, uid, waitRunning } from '../helpers/cluster.js';
import { deleteS3Prefix } from '../helpers/leftovers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const id = uid();
const PREFIX = `cli-${id}`;
const W1 = 'su-worker-1';
const APP = `cli-app-${id}`;
const VOL = `cli-data-${id}`;
const WEB = `cli-web-${id}`;
const PREFAIL = `cli-prefail-${id}`;
const NOTHING = `cli-nothing-${id}-token`;

let s: RunningServer;

beforeAll(async () => {
  s = await startServer(
    serverEnv({
      SWARM_UTILS_S3_DOMAIN: S3.endpoint,
      SWARM_UTILS_S3_HTTPS: 'false',
      SWARM_UTILS_S3_BUCKET_NAME: S3.bucket,
      SWARM_UTILS_S3_ACCESS_KEY: S3.accessKey,
      SWARM_UTILS_S3_SECRET_ACCESS_KEY: S3.secretKey,
      SWARM_UTILS_S3_PATH: PREFIX,
    }),
  );
  await Promise.all([
    createAppService(APP, {
      constraints: [`node.hostname==${W1}`],
      mounts: [{ Type: 'volume', Source: VOL, Target: '/data' }],
      labels: { 'swarm-utils.backup.enable': 'true' },
    }),
    createAppService(WEB, { replicas: 1 }),
    createAppService(PREFAIL, { replicas: 1, labels: { 'swarm-utils.update.exec-pre': 'echo cannot >&2; exit 3' } }),
  ]);
}, 180_000);

afterAll(async () => {
  await s?.stop();
  await removeServices(APP, WEB, PREFAIL);
  await new Promise((r) => setTimeout(r, 3000));
  await dockerFor(W1).getVolume(VOL).remove({ force: true }).catch(() => undefined);
  await deleteS3Prefix(PREFIX);
});

interface Ran {
  code: number | null;
  out: string;
  err: string;
}

/** the real client process: `node --import tsx src/cli/main.ts …`, token from the environment */
function cli(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SWARM_UTILS_URL: s.url, SWARM_UTILS_TOKEN: ADMIN_TOKEN, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += String(d)));
    child.stderr.on('data', (d) => (err += String(d)));
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

/** every entry under /data: type, path, and the md5 and size of a file or the target of a symlink */
const FINGERPRINT = `cd /data && find . -mindepth 1 | sort | while read -r f; do
  if [ -L "$f" ]; then echo "L $f -> $(readlink "$f")";
  elif [ -f "$f" ]; then echo "F $f $(md5sum < "$f" | cut -d' ' -f1) $(stat -c %s "$f")";
  else echo "D $f"; fi; done`;
const sh = async (service: string, script: string): Promise<string> => execInTask((await runningTasks(service))[0], ['sh', '-c', script]);

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });

const noToken = (r: Ran) => {
  expect(r.out).not.toContain(ADMIN_TOKEN);
  expect(r.err).not.toContain(ADMIN_TOKEN);
};

describe('swarm-utils CLI on the real swarm', () => {
  let archiveKey = '';
  let tree = '';

  it('backup --wait: exit 0, the steps as they end, the archive in the bucket (--json parsed)', async () => {
    await sh(APP, 'cd /data && mkdir -p a/b && echo one > one.txt && : > empty.txt && head -c 200000 /dev/urandom > a/b/mid.bin && ln -s a/b/mid.bin link');
    tree = await sh(APP, FINGERPRINT);
    const r = await cli(['backup', APP, '--wait', '--json']);
    expect(r.code, r.err).toBe(0);
    noToken(r);
    const job = JSON.parse(r.out);
    expect(job).toMatchObject({ type: 'backup', state: 'succeeded', target: { service: APP } });
    // progress on stderr with --json: each step as it ended
    expect(r.err).toMatch(/^done +resolve/m);
    expect(r.err).toMatch(/^done +archive/m);
    archiveKey = job.result.archives[0].key;
    expect(archiveKey.startsWith(`${PREFIX}/${W1}_${VOL}_`)).toBe(true);
    const listed = await cli(['backups', 'ls', '--service', APP, '--json']);
    expect(listed.code, listed.err).toBe(0);
    expect(JSON.parse(listed.out).backups.map((b: any) => b.key)).toContain(archiveKey);
    const table = await cli(['backups', 'ls', '--service', APP]);
    expect(table.out).toContain(archiveKey);
  });

  it('restore --latest --yes --wait: exit 0, the volume is exactly the backed-up tree again', async () => {
    expect(archiveKey, 'the backup test made no archive').not.toBe('');
    // archive names have second resolution: the safety backup gets a later one
    await new Promise((r) => setTimeout(r, 1100));
    await sh(APP, 'cd /data && echo changed > one.txt && echo new > added.txt && rm empty.txt');
    expect(await sh(APP, FINGERPRINT)).not.toEqual(tree);
    // without a terminal and without --yes: refused, nothing started
    const refused = await cli(['restore', APP, '--latest']);
    expect(refused.code).toBe(2);
    const r = await cli(['restore', APP, '--latest', '--yes', '--wait']);
    expect(r.code, r.out + r.err).toBe(0);
    noToken(r);
    expect(r.out).toMatch(/^done +swap/m);
    expect(r.out).toMatch(/^done +verify/m);
    expect(r.out).toMatch(/job \d+ \(restore cli-app-\w+\) succeeded after/);
    await waitRunning(APP, 1);
    expect(await sh(APP, FINGERPRINT)).toEqual(tree);
    const jobId = /job (\d+) \(restore/.exec(r.out)![1]!;
    const show = await cli(['--json', 'jobs', 'show', jobId]);
    expect(JSON.parse(show.out).result).toMatchObject({ key: archiveKey, volume: VOL, node: W1 });
  });

  it('drill --latest --wait: exit 0, the newest archive unpacked and counted', async () => {
    const r = await cli(['drill', APP, '--latest', '--wait', '--json']);
    expect(r.code, r.err).toBe(0);
    const job = JSON.parse(r.out);
    expect(job).toMatchObject({ type: 'drill', state: 'succeeded' });
    const newest = JSON.parse((await cli(['--json', 'backups', 'ls', '--service', APP, '--limit', '1'])).out).backups[0].key;
    expect(JSON.stringify(job.result)).toContain(newest);
    expect(JSON.stringify(job.result)).toContain('"ok":true');
  });

  it('update --image --wait: exit 0, the tasks run the new image', async () => {
    const r = await cli(['update', WEB, '--image', IMAGES.appV2, '--wait']);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toMatch(/^done +wait-rollout/m);
    const tasks = await runningTasks(WEB);
    expect(tasks).toHaveLength(1);
    expect((await execInTask(tasks[0], ['cat', '/version'])).trim()).toBe('v2');
  });

  it('a failed job: exit 1 with the error code; a 403: exit 3; an unreachable server: exit 4', async () => {
    const failed = await cli(['update', PREFAIL, '--image', IMAGES.appV2, '--wait']);
    expect(failed.code).toBe(1);
    expect(failed.out).toMatch(/^failed +exec-pre/m);
    expect(failed.err).toContain('EXEC_FAILED');
    const forbidden = await cli(['backup', APP, '--wait'], { SWARM_UTILS_TOKEN: NOTHING });
    expect(forbidden.code).toBe(3);
    expect(forbidden.err).toContain('FORBIDDEN');
    expect(forbidden.err).not.toContain(NOTHING);
    const down = await cli(['jobs', 'ls'], { SWARM_UTILS_URL: `http://127.0.0.1:${await freePort()}` });
    expect(down.code).toBe(4);
    expect(down.err).toContain('cannot reach swarm-utils');
  });

  it('jobs wait on a job started elsewhere (the API): its steps, then exit 0', async () => {
    const started = await s.api('POST', '/jobs', { type: 'update', service: WEB });
    expect(started.status, JSON.stringify(started.json)).toBe(202);
    const r = await cli(['jobs', 'wait', String(started.json.id)]);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toContain(`following job ${started.json.id} (update ${WEB})`);
    expect(r.out).toMatch(/^done +resolve-image/m);
    expect(r.out).toContain(`job ${started.json.id} (update ${WEB}) succeeded`);
    const listed = JSON.parse((await cli(['--json', 'jobs', 'ls', '--service', WEB])).out);
    expect(listed.jobs[0]).toMatchObject({ id: started.json.id, state: 'succeeded' });
  });
});
