import fs from 'node:fs';
import path from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { s3Client as s3 } from '../helpers/leftovers.js';
import { S3, dockerFor } from '../helpers/testbed.js';
import { startServer, waitJob, type RunningServer } from '../helpers/server.js';
import { createAppService, execInTask, inspect, manager, removeServices, runningTasks, serverEnv, uid, waitRunning } from '../helpers/cluster.js';

const id = uid();
const PREFIX = `rs-${id}`;
const s3Env = {
  SWARM_UTILS_S3_DOMAIN: S3.endpoint,
  SWARM_UTILS_S3_HTTPS: 'false',
  SWARM_UTILS_S3_BUCKET_NAME: S3.bucket,
  SWARM_UTILS_S3_ACCESS_KEY: S3.accessKey,
  SWARM_UTILS_S3_SECRET_ACCESS_KEY: S3.secretKey,
  SWARM_UTILS_S3_PATH: PREFIX,
};
const env = serverEnv(s3Env);
const W1 = 'su-worker-1';
const W2 = 'su-worker-2';
const RS = `rs-app-${id}`;
const OTHER = `rs-other-${id}`;
const MG = `rs-mig-${id}`;
const VOL = { rs: `rs-data-${id}`, other: `rs-odata-${id}`, mg: `rs-mdata-${id}` };
const RESTORE_TOKEN = `restore-token-${id}`;
const BACKUP_TOKEN = `backup-token-${id}`;

let s: RunningServer;

const vol = (name: string) => ({ Type: 'volume' as const, Source: name, Target: '/data' });

beforeAll(async () => {
  s = await startServer(env);
  await Promise.all([
    createAppService(RS, {
      constraints: [`node.hostname==${W1}`],
      mounts: [vol(VOL.rs)],
      labels: { 'swarm-utils.backup.enable': 'true', 'swarm-utils.restore.token': RESTORE_TOKEN, 'swarm-utils.backup.token': BACKUP_TOKEN },
    }),
    createAppService(OTHER, {
      constraints: [`node.hostname==${W2}`],
      mounts: [vol(VOL.other)],
      labels: { 'swarm-utils.backup.enable': 'true', 'swarm-utils.backup.token': RESTORE_TOKEN },
    }),
  ]);
}, 120_000);

afterAll(async () => {
  await s?.stop();
  await removeServices(RS, OTHER, MG);
  await new Promise((r) => setTimeout(r, 3000));
  for (const node of [W1, W2]) {
    for (const v of Object.values(VOL)) await dockerFor(node).getVolume(v).remove({ force: true }).catch(() => undefined);
  }
  const keys = await listKeys();
  if (keys.length) await s3.send(new DeleteObjectsCommand({ Bucket: S3.bucket, Delete: { Objects: keys.map((Key) => ({ Key })) } }));
});

/** every entry under /data: type, path, and the md5 of a file or the target of a symlink */
const FINGERPRINT = `cd /data && find . -mindepth 1 | sort | while read -r f; do
  if [ -L "$f" ]; then echo "L $f -> $(readlink "$f")";
  elif [ -f "$f" ]; then echo "F $f $(md5sum < "$f" | cut -d' ' -f1) $(stat -c %s "$f")";
  else echo "D $f"; fi; done`;
const fingerprint = async (service: string): Promise<string> => execInTask((await runningTasks(service))[0], ['sh', '-c', FINGERPRINT]);
const sh = async (service: string, script: string): Promise<string> => execInTask((await runningTasks(service))[0], ['sh', '-c', script]);

/** files of several sizes, nested directories, a symlink, an empty file, a dot file */
const POPULATE = `cd /data && mkdir -p a/b/c empty-dir && echo one > one.txt && : > empty.txt && echo hidden > .dot &&
  head -c 100000 /dev/urandom > a/b/mid.bin && head -c 3000000 /dev/urandom > a/b/c/big.bin && ln -s a/b/mid.bin link && echo deep > a/b/c/deep.txt`;

async function listKeys(): Promise<string[]> {
  const out = await s3.send(new ListObjectsV2Command({ Bucket: S3.bucket, Prefix: `${PREFIX}/` }));
  return (out.Contents ?? []).map((o) => o.Key!);
}

async function getObject(key: string): Promise<Buffer> {
  const out = await s3.send(new GetObjectCommand({ Bucket: S3.bucket, Key: key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

/** the host path of a volume on a worker (the test nodes' data roots are directories of this machine) */
async function volumePath(node: string, name: string): Promise<string> {
  return (await dockerFor(node).getVolume(name).inspect()).Mountpoint;
}

async function scratchVolumes(): Promise<string[]> {
  const out: string[] = [];
  for (const node of [W1, W2]) {
    const { Volumes } = await dockerFor(node).listVolumes();
    out.push(...(Volumes ?? []).map((v: any) => v.Name as string).filter((n) => /-drill-\d+$/.test(n)));
  }
  return out;
}

let backedUp: { key: string; tree: string; files: number; bytes: number };

async function backup(service: string): Promise<any> {
  const r = await s.api('POST', '/jobs', { type: 'backup', service, waitRes: true });
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  return r.json.result.archives[0];
}

describe('restore on the real swarm', () => {
  it('restores a volume to exactly the backed-up tree: changed, added and deleted files; a safety backup first; the service runs again', async () => {
    await sh(RS, POPULATE);
    const tree = await fingerprint(RS);
    expect(tree).toContain('L ./link -> a/b/mid.bin');
    expect(tree).toContain('F ./empty.txt d41d8cd98f00b204e9800998ecf8427e 0');
    const counts = await sh(RS, "cd /data && echo $(find . ! -type d | wc -l) $(find . -type f -exec stat -c %s {} + | awk '{s+=$1} END {print s}')");
    const [files, bytes] = counts.trim().split(/\s+/).map(Number);
    const archive = await backup(RS);
    backedUp = { key: archive.key, tree, files: files!, bytes: bytes! };
    // stamps have second resolution: the safety backup must get a later one
    await new Promise((r) => setTimeout(r, 1100));
    await sh(RS, 'cd /data && echo changed > one.txt && echo new > added.txt && mkdir -p newdir && echo x > newdir/x && rm a/b/c/deep.txt && rm .dot');
    const changed = await fingerprint(RS);
    expect(changed).not.toEqual(tree);

    const r = await s.api('POST', `/restore?service=${RS}&key=${encodeURIComponent(archive.key)}&waitRes=true`, undefined, RESTORE_TOKEN);
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.steps.map((x: any) => [x.name, x.state])).toEqual([
      ['resolve', 'done'],
      ['exec', 'skipped'],
      ['stop', 'done'],
      ['safety-backup', 'done'],
      ['safety-verify', 'done'],
      ['download', 'done'],
      ['swap', 'done'],
      ['settle', 'skipped'],
      ['start', 'done'],
      ['verify', 'done'],
    ]);
    expect(await fingerprint(RS)).toEqual(tree);
    expect(await sh(RS, 'ls -A /data')).not.toContain('added.txt');
    expect(r.json.result).toMatchObject({ service: RS, node: W1, volume: VOL.rs, key: archive.key, files, bytes });
    const safety = r.json.result.safetyBackup;
    expect(safety.key).not.toBe(archive.key);
    expect(await listKeys()).toContain(safety.key);
    // the safety backup holds the content as it was before the restore
    expect((await getObject(safety.key)).length).toBe(safety.size);
    await waitRunning(RS, 1);
    expect((await inspect(RS)).Spec.Mode.Replicated.Replicas).toBe(1);
    expect(await sh(RS, 'ls -A /data')).not.toContain('.swarm-utils-restore');
  });

  it('from a truncated object: RESTORE_FAILED saying so, the volume unchanged, the service running', async () => {
    const full = await getObject(backedUp.key);
    const key = `${PREFIX}/${W1}_${VOL.rs}_2001-01-01T00-00-00Z.tar.gz`;
    await s3.send(new PutObjectCommand({ Bucket: S3.bucket, Key: key, Body: full.subarray(0, Math.floor(full.length / 2)) }));
    await sh(RS, 'echo after > /data/after.txt');
    const before = await fingerprint(RS);
    const r = await s.api('POST', '/jobs', { type: 'restore', service: RS, key, safetyBackup: false, waitRes: true });
    expect(r.status, JSON.stringify(r.json)).toBe(502);
    expect(r.json.error.code).toBe('RESTORE_FAILED');
    expect(r.json.error.message).toMatch(/truncated or corrupt/);
    expect(r.json.error.message).toContain('the volume was not changed');
    await waitRunning(RS, 1);
    expect(await fingerprint(RS)).toEqual(before);
    expect(r.json.steps.find((x: any) => x.name === 'start').state).toBe('done');
    await sh(RS, 'rm /data/after.txt');
  });

  describe('SIGKILL of the server, then a restart: the job ends, the volume is the old or the restored tree, never a mix', () => {
    let big: { key: string; tree: string };
    beforeAll(async () => {
      // many top-level entries (the swap moves them one by one) and ~40 MB (the download and unpack take a moment)
      await sh(RS, 'cd /data && i=0; while [ $i -lt 1500 ]; do echo $i > top-$i; i=$((i+1)); done; head -c 40000000 /dev/urandom > noise.bin');
      const archive = await backup(RS);
      big = { key: archive.key, tree: await fingerprint(RS) };
      await new Promise((r) => setTimeout(r, 1100));
    }, 180_000);

    for (const phase of [['downloading'], ['unpacking'], ['out', 'in']] as const) {
      it(`during the ${phase[0] === 'out' ? 'swap' : phase[0] === 'downloading' ? 'download' : 'unpack'}`, async () => {
        await sh(RS, 'rm -f /data/top-1* && echo changed > /data/top-2 && echo added > /data/zz-added');
        const old = await fingerprint(RS);
        const start = await s.api('POST', '/jobs', { type: 'restore', service: RS, key: big.key, safetyBackup: false });
        expect(start.status, JSON.stringify(start.json)).toBe(202);
        const jobId = start.json.id;
        const dir = path.join(await volumePath(W1, VOL.rs), `.swarm-utils-restore-${jobId}`);
        await untilState(dir, phase as readonly string[], 120_000);
        const atKill = (await s.api('GET', `/jobs/${jobId}`)).json;
        await s.kill9();
        s = await startServer(env, { dbPath: s.dbPath, port: s.port });
        const job = await waitJob(s, jobId);
        expect(job.state, JSON.stringify(job)).toBe('succeeded');
        // the step that was running when the process died was re-entered by the new one (its helper reattached)
        const running = atKill.steps.find((x: any) => x.state === 'running')?.name;
        expect(running).toBe(phase[0] === 'out' ? 'swap' : 'download');
        expect(reentered(s.output())).toContain(running);
        await waitRunning(RS, 1);
        const after = await fingerprint(RS);
        expect([big.tree, old]).toContain(after);
        expect(after).toEqual(big.tree);
        expect(fs.existsSync(dir)).toBe(false);
      }, 240_000);
    }
  });

  it('drill of a good archive: ok with the counts of the tree; of a truncated one: DRILL_FAILED; no scratch volume left either time', async () => {
    const good = await s.api('POST', '/jobs', { type: 'drill', service: RS, key: backedUp.key, waitRes: true }, RESTORE_TOKEN);
    expect(good.status, JSON.stringify(good.json)).toBe(200);
    expect(good.json.result).toEqual({ key: backedUp.key, files: backedUp.files, bytes: backedUp.bytes, ok: true });
    expect(await scratchVolumes()).toEqual([]);

    const key = `${PREFIX}/${W1}_${VOL.rs}_2001-01-01T00-00-00Z.tar.gz`;
    const bad = await s.api('POST', '/drill', undefined, undefined).catch(() => null);
    expect(bad?.status).toBe(400);
    const r = await s.api('POST', `/drill?service=${RS}&key=${encodeURIComponent(key)}&waitRes=true`);
    expect(r.status, JSON.stringify(r.json)).toBe(502);
    expect(r.json.error.code).toBe('DRILL_FAILED');
    expect(r.json.error.message).toMatch(/truncated or corrupt/);
    expect(r.json.result).toMatchObject({ key, ok: false });
    expect(await scratchVolumes()).toEqual([]);
  });

  it('a restore token restores and drills its own service and gets 403 on another; a backup-only token gets 403 on restore and drill', async () => {
    expect((await s.api('POST', '/jobs', { type: 'restore', service: OTHER }, RESTORE_TOKEN)).status).toBe(403);
    expect((await s.api('POST', '/jobs', { type: 'drill', service: OTHER }, RESTORE_TOKEN)).status).toBe(403);
    expect((await s.api('POST', '/jobs', { type: 'restore', service: RS }, BACKUP_TOKEN)).status).toBe(403);
    expect((await s.api('POST', `/drill?service=${RS}`, undefined, BACKUP_TOKEN)).status).toBe(403);
    expect((await s.api('POST', '/jobs', { type: 'migrate', service: RS, to: W2 }, RESTORE_TOKEN)).status).toBe(403);
    // field-level 400s before anything: a missing archive is a 404
    const missing = await s.api('POST', '/jobs', { type: 'restore', service: RS, key: `${PREFIX}/${W1}_${VOL.rs}_1999-01-01T00-00-00Z.tar.gz` }, RESTORE_TOKEN);
    expect(missing.status, JSON.stringify(missing.json)).toBe(404);
    const wrong = await s.api('POST', '/jobs', { type: 'restore', service: RS, volume: 'nope' }, RESTORE_TOKEN);
    expect(wrong.status).toBe(400);
    expect(wrong.json.error.code).toBe('VALIDATION');
    expect((await s.api('POST', '/jobs', { type: 'restore', all: true })).status).toBe(400);
    expect(s.output()).not.toContain(RESTORE_TOKEN);
  });

  it('encrypted archives (the stand-in encrypts the way offen does) pass verify under their real name; without the swarm-utils image to run, a drill says what is missing to decrypt them', async () => {
    for (const [variable, suffix] of [['GPG_PASSPHRASE', '.gpg'], ['AGE_PASSPHRASE', '.age']] as const) {
      const other = await startServer(serverEnv({ ...s3Env, [`SWARM_UTILS_BACKUP_ENV_${variable}`]: `pass-${id}` }));
      try {
        const r = await other.api('POST', '/jobs', { type: 'backup', service: RS, waitRes: true });
        expect(r.status, JSON.stringify(r.json)).toBe(200);
        const [archive] = r.json.result.archives;
        expect(archive.key.endsWith(`.tar.gz${suffix}`)).toBe(true);
        expect(await listKeys()).toContain(archive.key);
        const head = await getObject(archive.key);
        expect(head.subarray(0, 21).toString()).toBe(suffix === '.age' ? 'age-encryption.org/v1' : head.subarray(0, 21).toString());
        if (suffix === '.gpg') expect(head[0]).toBe(0xc3); // a symmetric-key session key packet
        const d = await other.api('POST', '/jobs', { type: 'drill', service: RS, key: archive.key, waitRes: true });
        expect(d.status, JSON.stringify(d.json)).toBe(502);
        expect(d.json.error.code).toBe('UNSUPPORTED');
        expect(d.json.error.message).toContain(suffix === '.gpg' ? 'gpg' : 'age');
        expect(d.json.error.message).toContain('SWARM_UTILS_RESTORE_IMAGE');
        expect(await scratchVolumes()).toEqual([]);
        // without the passphrase the server refuses at once, saying which variable is missing
        const refused = await s.api('POST', '/jobs', { type: 'drill', service: RS, key: archive.key });
        expect(refused.status).toBe(422);
        expect(refused.json.error.message).toContain(`SWARM_UTILS_BACKUP_ENV_${variable}`);
        expect(other.output()).not.toContain(`pass-${id}`);
      } finally {
        await other.stop();
      }
    }
  }, 240_000);
});

describe('migrate on the real swarm', () => {
  it('moves a one-replica service with its volume to the other worker: same files there, the old node keeps its copy; back to a node with a non-empty volume: refused, nothing changed', async () => {
    await createAppService(MG, { constraints: [`node.hostname==${W1}`], mounts: [vol(VOL.mg)] });
    await sh(MG, POPULATE);
    const tree = await fingerprint(MG);
    const r = await s.api('POST', '/jobs', { type: 'migrate', service: MG, to: W2, waitRes: true });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const tasks = await waitRunning(MG, 1);
    const w2 = (await manager.listNodes()).find((n: any) => n.Description.Hostname === W2)!;
    expect(tasks[0].NodeID).toBe(w2.ID);
    expect(await fingerprint(MG)).toEqual(tree);
    expect((await inspect(MG)).Spec.TaskTemplate.Placement.Constraints).toEqual([`node.hostname==${W2}`]);
    expect(r.json.result).toMatchObject({ service: MG, from: W1, to: W2, replicas: 1 });
    // the old node's volume is left as it was
    expect(fs.readFileSync(path.join(await volumePath(W1, VOL.mg), 'one.txt'), 'utf8')).toBe('one\n');

    const before = await inspect(MG);
    const back = await s.api('POST', '/jobs', { type: 'migrate', service: MG, to: W1, waitRes: true });
    expect(back.status, JSON.stringify(back.json)).toBe(502);
    expect(back.json.error.code).toBe('UNSUPPORTED');
    expect(back.json.error.message).toContain('not empty');
    expect(back.json.steps.find((x: any) => x.name === 'stop').state).toBe('skipped');
    const after = await inspect(MG);
    expect(after.Version.Index).toBe(before.Version.Index);
    expect((await waitRunning(MG, 1))[0].NodeID).toBe(w2.ID);
  }, 300_000);
});

/** names of the steps the server's log says it re-entered after a restart */
const reentered = (output: string): string[] =>
  output
    .split('\n')
    .filter((l) => l.includes('step re-entered after restart'))
    .map((l) => JSON.parse(l).step as string);

/** polls the state file of a restore's work directory until it names one of `states` */
async function untilState(dir: string, states: readonly string[], ms: number): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    let st = '';
    try {
      st = fs.readFileSync(path.join(dir, 'state'), 'utf8').trim();
    } catch {
      /* not there yet */
    }
    if (states.includes(st)) return;
    if (Date.now() > end) throw new Error(`${dir}: state ${states.join('/')} not seen within ${ms} ms (last: ${st || 'none'})`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
