/**
 * Restores and drills of every archive swarm-utils makes or finds, on the real swarm, with the swarm-utils
 * image (built from this checkout) as the fetch helper: GPG and age encrypted archives, an S3 endpoint
 * behind a self-signed CA, offen's own archives, and node A's archive restored onto node B.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REGISTRY_AUTH, S3, dockerFor } from '../helpers/testbed.js';
import { startServer, type RunningServer } from '../helpers/server.js';
import { createAppService, execInTask, manager, removeServices, runningTasks, serverEnv, uid, waitRunning } from '../helpers/cluster.js';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { deleteS3Prefix, instanceOf, removeHelperContainers, removeVolumes, s3Client, s3Env } from '../helpers/leftovers.js';
import { offenArchive, offenFilename } from '../helpers/offen-archive.js';
import { execFileSync } from 'node:child_process';
import { ROOT, buildSwarmUtilsImage } from '../helpers/stack.js';
import { makeTestCa } from '../helpers/tls.js';

const id = uid();
const PREFIX = `ra-${id}`;
const W1 = 'su-worker-1';
const W2 = 'su-worker-2';
const APP = `ra-app-${id}`;
const VOL = `ra-data-${id}`;
const TLS_APP = `ra-tls-${id}`;
const TLS_VOL = `ra-tdata-${id}`;
const PASS = `pass-${id}-Ünïcode ok`;
const WRONG = `wrong-${id}`;
const OFFEN_VOL = `ra-offen-${id}`;
const MOVED_VOL = `ra-moved-${id}`;
const volumes = [VOL, TLS_VOL, OFFEN_VOL, MOVED_VOL];
const servers: RunningServer[] = [];
let image = '';

const vol = (name: string) => ({ Type: 'volume' as const, Source: name, Target: '/data' });

/** files of several sizes, nested directories, a symlink, an empty file, a dot file */
const POPULATE = `cd /data && mkdir -p a/b/c empty-dir && echo one > one.txt && : > empty.txt && echo hidden > .dot &&
  head -c 100000 /dev/urandom > a/b/mid.bin && head -c 3000000 /dev/urandom > a/b/c/big.bin && ln -s a/b/mid.bin link && echo deep > a/b/c/deep.txt`;
const CHANGE = 'cd /data && echo changed > one.txt && echo new > added.txt && rm a/b/c/deep.txt && rm .dot';
const sh = async (service: string, script: string): Promise<string> => execInTask((await runningTasks(service))[0], ['sh', '-c', script]);

/** the host path of a volume on a node (the test nodes' data roots are directories of this machine) */
const volumePath = async (node: string, name: string): Promise<string> => (await dockerFor(node).getVolume(name).inspect()).Mountpoint;

/** every entry of a volume: type, path, and the md5 and size of a file, or the target of a symlink */
const fingerprint = async (node: string, name: string): Promise<string[]> => treePrint(await volumePath(node, name));

function treePrint(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(dir, e.name);
      const rel = path.relative(root, p);
      if (e.isSymbolicLink()) out.push(`L ${rel} -> ${fs.readlinkSync(p)}`);
      else if (e.isDirectory()) {
        out.push(`D ${rel}`);
        walk(p);
      } else out.push(`F ${rel} ${createHash('md5').update(fs.readFileSync(p)).digest('hex')} ${fs.statSync(p).size}`);
    }
  };
  walk(root);
  return out;
}

/** the specs of every helper service seen while `during` runs (they are removed when their step ends) */
async function helperSpecsDuring<T>(during: () => Promise<T>): Promise<{ value: T; specs: string[] }> {
  const specs = new Map<string, string>();
  let on = true;
  const poll = (async () => {
    while (on) {
      for (const s of await manager.listServices({ filters: { label: ['swarm-utils.helper'] } }).catch(() => [])) specs.set(s.ID, JSON.stringify(s.Spec));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    return { value: await during(), specs: [...specs.values()] };
  } finally {
    on = false;
    await poll;
  }
}

async function server(extra: Record<string, string>): Promise<RunningServer> {
  const s = await startServer(serverEnv({ ...s3Env(PREFIX, S3.secretKey), SWARM_UTILS_RESTORE_IMAGE: image, ...extra }));
  servers.push(s);
  return s;
}

beforeAll(async () => {
  // the image of this checkout, pushed to the test registry, so workers pull it as the fetch helper
  image = await buildSwarmUtilsImage();
  expect(image).toMatch(/@sha256:[0-9a-f]{64}$/);
  await createAppService(APP, { constraints: [`node.hostname==${W1}`], mounts: [vol(VOL)], labels: { 'swarm-utils.backup.enable': 'true' } });
  await sh(APP, POPULATE);
}, 300_000);

afterAll(async () => {
  const instances = servers.map(instanceOf);
  for (const s of servers) await s.stop();
  await removeServices(APP, TLS_APP);
  await new Promise((r) => setTimeout(r, 2000));
  await removeHelperContainers(instances);
  await removeVolumes(volumes);
  await deleteS3Prefix(PREFIX);
}, 120_000);

describe('encrypted archives, decrypted by the swarm-utils image as the helper', () => {
  for (const [variable, suffix] of [
    ['GPG_PASSPHRASE', '.gpg'],
    ['AGE_PASSPHRASE', '.age'],
  ] as const) {
    it(`${suffix}: the drill passes; the restore gives the exact tree; a wrong passphrase fails with the volume unchanged; no passphrase in a helper spec or log`, async () => {
      const s = await server({ [`SWARM_UTILS_BACKUP_ENV_${variable}`]: PASS });
      const tree = await fingerprint(W1, VOL);
      const b = await s.api('POST', '/jobs', { type: 'backup', service: APP, waitRes: true });
      expect(b.status, JSON.stringify(b.json)).toBe(200);
      const [archive] = b.json.result.archives;
      expect(archive.key.endsWith(`.tar.gz${suffix}`)).toBe(true);

      const drill = await helperSpecsDuring(() => s.api('POST', '/jobs', { type: 'drill', service: APP, key: archive.key, waitRes: true }));
      expect(drill.value.status, JSON.stringify(drill.value.json)).toBe(200);
      expect(drill.value.json.result).toMatchObject({ key: archive.key, ok: true });
      expect(drill.value.json.result.files).toBe(tree.filter((l) => !l.startsWith('D ')).length);

      await new Promise((r) => setTimeout(r, 1100));
      await sh(APP, CHANGE);
      expect(await fingerprint(W1, VOL)).not.toEqual(tree);
      const restore = await helperSpecsDuring(() => s.api('POST', '/jobs', { type: 'restore', service: APP, key: archive.key, waitRes: true }));
      expect(restore.value.status, JSON.stringify(restore.value.json)).toBe(200);
      await waitRunning(APP, 1);
      expect(await fingerprint(W1, VOL)).toEqual(tree);

      // the fetch helpers ran the swarm-utils image, and read the passphrase from a Docker secret
      const fetches = [...drill.specs, ...restore.specs].filter((spec) => spec.includes('/app/dist/helper/restore.js'));
      expect(fetches.length).toBeGreaterThanOrEqual(2);
      for (const spec of fetches) expect(spec).toContain(image.split('@')[0]);
      for (const spec of fetches) expect(spec).toContain('swarm-utils-passphrase');
      for (const spec of [...drill.specs, ...restore.specs]) expect(spec).not.toContain(PASS);
      expect(JSON.stringify([drill.value.json, restore.value.json])).not.toContain(PASS);
      expect(s.output()).not.toContain(PASS);

      // a wrong passphrase: the restore fails before the swap, the volume holds what it held
      const wrong = await server({ [`SWARM_UTILS_BACKUP_ENV_${variable}`]: WRONG });
      await sh(APP, 'echo after > /data/after.txt');
      const before = await fingerprint(W1, VOL);
      const r = await wrong.api('POST', '/jobs', { type: 'restore', service: APP, key: archive.key, safetyBackup: false, waitRes: true });
      expect(r.status, JSON.stringify(r.json)).toBe(502);
      expect(r.json.error.code).toBe('RESTORE_FAILED');
      expect(r.json.error.message).toMatch(/decrypt/);
      expect(r.json.error.message).toContain('the volume was not changed');
      expect(r.json.steps.find((x: any) => x.name === 'swap').state).not.toBe('done');
      await waitRunning(APP, 1);
      expect(await fingerprint(W1, VOL)).toEqual(before);
      const d = await wrong.api('POST', '/jobs', { type: 'drill', service: APP, key: archive.key, waitRes: true });
      expect(d.status, JSON.stringify(d.json)).toBe(502);
      expect(d.json.error.code).toBe('DRILL_FAILED');
      expect(wrong.output()).not.toContain(WRONG);
      await sh(APP, 'rm /data/after.txt');
      await wrong.stop();
      await s.stop();
    }, 300_000);
  }
});

describe('an S3 endpoint behind a self-signed CA', () => {
  const ca = makeTestCa('10.77.0.1');
  const dataDir = fs.mkdtempSync(path.join(tmpdir(), 'swarm-utils-s3tls-'));
  const BUCKET = 'tls-bucket';
  let s3rver: ChildProcess | null = null;
  let port = 0;

  beforeAll(async () => {
    port = await freePort();
    s3rver = spawn(
      path.join(ROOT, 'node_modules/.bin/s3rver'),
      ['--directory', dataDir, '--address', '10.77.0.1', '--port', String(port), '--key', ca.serverKeyPath, '--cert', ca.serverCertPath, '--configure-bucket', BUCKET, '--silent'],
      { stdio: 'ignore' },
    );
    const end = Date.now() + 30_000;
    while (!(await listening(port))) {
      if (Date.now() > end) throw new Error('the HTTPS s3rver did not start');
      await new Promise((r) => setTimeout(r, 200));
    }
    await createAppService(TLS_APP, { constraints: [`node.hostname==${W2}`], mounts: [vol(TLS_VOL)], labels: { 'swarm-utils.backup.enable': 'true' } });
    await sh(TLS_APP, POPULATE);
  }, 120_000);

  afterAll(() => {
    s3rver?.kill('SIGTERM');
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(ca.dir, { recursive: true, force: true });
  });

  it('a drill and a restore go through TLS with the CA (a Docker secret of the job) and the swarm-utils image', async () => {
    const s = await server({
      SWARM_UTILS_S3_DOMAIN: `10.77.0.1:${port}`,
      SWARM_UTILS_S3_HTTPS: 'true',
      SWARM_UTILS_S3_BUCKET_NAME: BUCKET,
      SWARM_UTILS_S3_SECRET_ACCESS_KEY: `s3-secret-${id}`,
      SWARM_UTILS_S3_CA_CERT_FILE: ca.caCertPath,
    });
    const tree = await fingerprint(W2, TLS_VOL);
    const b = await s.api('POST', '/jobs', { type: 'backup', service: TLS_APP, waitRes: true });
    expect(b.status, JSON.stringify(b.json)).toBe(200);
    const [archive] = b.json.result.archives;
    const drill = await helperSpecsDuring(() => s.api('POST', '/jobs', { type: 'drill', service: TLS_APP, key: archive.key, waitRes: true }));
    expect(drill.value.status, JSON.stringify(drill.value.json)).toBe(200);
    expect(drill.value.json.result).toMatchObject({ key: archive.key, ok: true });
    const fetch = drill.specs.find((spec) => spec.includes('/app/dist/helper/restore.js'));
    expect(fetch).toContain('swarm-utils-ca');

    await new Promise((r) => setTimeout(r, 1100));
    await sh(TLS_APP, CHANGE);
    const r = await s.api('POST', '/jobs', { type: 'restore', service: TLS_APP, key: archive.key, waitRes: true });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    await waitRunning(TLS_APP, 1);
    expect(await fingerprint(W2, TLS_VOL)).toEqual(tree);
    expect(s.output()).not.toContain(`s3-secret-${id}`);
    await s.stop();
  }, 300_000);
});

describe("offen's own archives", () => {
  const tree = fs.mkdtempSync(path.join(tmpdir(), 'swarm-utils-offen-'));
  const keys: Record<string, string> = {};
  let s: RunningServer;

  beforeAll(async () => {
    execFileSync('sh', ['-c', POPULATE.replace('cd /data', `cd ${tree}`)]);
    s = await server({});
    // written a second apart: offen's default names differ by their time only
    for (const [i, c] of (['gz', 'zst'] as const).entries()) {
      keys[c] = `${PREFIX}/${offenFilename(new Date(Date.UTC(2026, 0, 2, 3, 4, 5 + i)), c)}`;
      await s3Client.send(new PutObjectCommand({ Bucket: S3.bucket, Key: keys[c], Body: offenArchive(tree, 'my-app', c) }));
    }
  });

  afterAll(() => fs.rmSync(tree, { recursive: true, force: true }));

  it('GET /backups lists them with format offen and the time of their name', async () => {
    const r = await s.api('GET', '/backups?limit=1000');
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const gz = r.json.backups.find((b: any) => b.key === keys.gz);
    const zst = r.json.backups.find((b: any) => b.key === keys.zst);
    expect(gz).toMatchObject({ format: 'offen', node: null, volume: null, time: '2026-01-02T03:04:05.000Z', encrypted: false });
    expect(zst).toMatchObject({ format: 'offen', time: '2026-01-02T03:04:06.000Z' });
    expect(gz.size).toBeGreaterThan(0);
    // a listing narrowed to a service's volumes has none of them: their names say no volume
    const narrowed = await s.api('GET', `/backups?service=${APP}`);
    expect(narrowed.json.backups.some((b: any) => b.format === 'offen')).toBe(false);
  });

  for (const c of ['gz', 'zst'] as const) {
    it(`${c}: a drill passes with the tree's count; a restore gives the exact tree`, async () => {
      const files = treePrint(tree).filter((l) => !l.startsWith('D ')).length;
      const d = await s.api('POST', '/jobs', { type: 'drill', service: APP, key: keys[c], waitRes: true });
      expect(d.status, JSON.stringify(d.json)).toBe(200);
      expect(d.json.result).toMatchObject({ key: keys[c], ok: true, files });
      // gz into a new volume on the other worker; zst into the service's own volume
      const into = c === 'gz' ? { volume: OFFEN_VOL, node: W2 } : { volume: VOL, node: W1 };
      const q = new URLSearchParams({ service: APP, key: keys[c]!, ...into, waitRes: 'true' });
      const r = await s.api('POST', `/restore?${q}`);
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      expect(r.json.result).toMatchObject({ volume: into.volume, node: into.node, key: keys[c], files });
      expect(await fingerprint(into.node, into.volume)).toEqual(treePrint(tree));
      await waitRunning(APP, 1);
    }, 180_000);
  }
});

describe('node A is gone', () => {
  it("restores node A's archive onto node B into a new volume, for a service that is not running", async () => {
    const s = await server({});
    const b = await s.api('POST', '/jobs', { type: 'backup', service: APP, waitRes: true });
    expect(b.status, JSON.stringify(b.json)).toBe(200);
    const [archive] = b.json.result.archives;
    expect(archive.node).toBe(W1);
    const tree = await fingerprint(W1, VOL);
    await manager.getService(APP).inspect().then((i: any) => manager.getService(APP).update({ version: i.Version.Index, ...i.Spec, Mode: { Replicated: { Replicas: 0 } } }));
    await waitRunning(APP, 0);
    // without node and volume it would restore onto W1, the node of its last task: given both, it goes to W2
    const q = new URLSearchParams({ service: APP, key: archive.key, node: W2, volume: MOVED_VOL, waitRes: 'true' });
    const r = await s.api('POST', `/restore?${q}`);
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.result).toMatchObject({ node: W2, volume: MOVED_VOL, key: archive.key, safetyBackup: null });
    expect(r.json.steps.find((x: any) => x.name === 'safety-backup').state).toBe('skipped');
    expect(await fingerprint(W2, MOVED_VOL)).toEqual(tree);
    // the service was left as it was: not running
    expect((await manager.getService(APP).inspect()).Spec.Mode.Replicated.Replicas).toBe(0);
    // a node that does not exist is a 400 before any job
    const bad = await s.api('POST', `/restore?${new URLSearchParams({ service: APP, key: archive.key, node: 'no-such-node', volume: MOVED_VOL })}`);
    expect(bad.status, JSON.stringify(bad.json)).toBe(400);
  }, 240_000);
});

describe('the default helper image', () => {
  it('with SWARM_UTILS_RESTORE_IMAGE unset, swarm-utils running as a swarm service names its own image (with its digest) for the helpers', async () => {
    const name = `ra-self-${id}`;
    const script = [
      "const { createDockerPort } = await import('/app/dist/swarm/dockerode.js');",
      "const { restoreImage } = await import('/app/dist/jobs/restore/fetch.js');",
      'const log = { child: () => log, debug() {}, info() {}, warn() {}, error() {} };',
      "console.log('helper-image=' + (await restoreImage({ docker: createDockerPort({ logger: log }), config: { restoreImage: null } })));",
    ].join('\n');
    await manager.createService(REGISTRY_AUTH as any, {
      Name: name,
      Labels: { 'swarm-utils.test': id },
      TaskTemplate: {
        ContainerSpec: { Image: image, Command: ['node', '--input-type=module', '-e', script], Mounts: [{ Type: 'bind', Source: '/var/run/docker.sock', Target: '/var/run/docker.sock' }] },
        Placement: { Constraints: ['node.role==manager'] },
        RestartPolicy: { Condition: 'none' },
      },
      Mode: { ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } },
    } as any);
    try {
      const end = Date.now() + 90_000;
      let state = '';
      while (state !== 'complete' && state !== 'failed' && Date.now() < end) {
        const [task] = await manager.listTasks({ filters: { service: [name] } });
        state = task?.Status?.State ?? '';
        await new Promise((r) => setTimeout(r, 500));
      }
      const logs = (await manager.getService(name).logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
      expect(state, logs.toString()).toBe('complete');
      const spec = (await manager.getService(name).inspect()).Spec.TaskTemplate.ContainerSpec.Image;
      expect(/helper-image=(\S+)/.exec(logs.toString())?.[1]).toBe(spec);
      expect(spec).toContain(image.split('@')[1]);
    } finally {
      await removeServices(name);
    }
  }, 120_000);
});

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '10.77.0.1', () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
    srv.on('error', reject);
  });
}

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '10.77.0.1');
    socket.on('connect', () => resolve(socket.destroy() !== undefined)).on('error', () => resolve(false));
  });
