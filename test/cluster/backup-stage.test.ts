// Staged stop=true backups on the real swarm (README "Backups: staging"): the copy made while the service is
// stopped, the service running again before the upload, the archive made from the copy, no staging volume
// left behind; a SIGKILL after staging; a node without room for the copy; staging off.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { COUNT_TREE_SH, parseTreeCount } from '../../src/jobs/tree-count.js';
import { openDb } from '../../src/db/index.js';
import { finishJob, insertJob } from '../../src/db/jobs.js';
import { orphanStaging, recordStaging } from '../../src/db/staging.js';
import { IMAGES, REGISTRY_AUTH, dockerFor } from '../helpers/testbed.js';
import { startServer, waitJob, type RunningServer } from '../helpers/server.js';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { execInTask, inspect, manager, removeServices, runningTasks, serverEnv, uid, waitRunning } from '../helpers/cluster.js';
import { containerLifetimes, overlaps } from '../helpers/events.js';
import { deleteS3Prefix, instanceOf, removeHelperContainers, removeVolumes, s3Client, s3Env } from '../helpers/leftovers.js';
import { S3 } from '../helpers/testbed.js';
import { TREE_SH, downloadTar, treeOfTar } from '../helpers/tar.js';

const id = uid();
const PREFIX = `bs-${id}`;
const W1 = 'su-worker-1';
const W2 = 'su-worker-2';
const env = serverEnv(s3Env(PREFIX, `s3-secret-${id}`));

const services: string[] = [];
const volumes: string[] = [];
const instances = new Set<string>();
let s: RunningServer;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, ms: number, cond: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(200);
  }
}
const stepOf = (job: any, name: string) => job.steps.find((x: any) => x.name === name);
const t = (iso: string) => Date.parse(iso);

/**
 * A service whose task writes a new /data/boot.txt each time it starts: an archive holding the boot.txt of
 * before the backup was made from what the volume held while the service was stopped, not from the live volume.
 */
async function bootingService(name: string, o: { volume: string; labels: Record<string, string>; replicas?: number; node?: string }): Promise<void> {
  services.push(name);
  volumes.push(o.volume);
  await manager.createService(REGISTRY_AUTH as any, {
    Name: name,
    Labels: { 'swarm-utils.backup.enable': 'true', 'swarm-utils.backup.stop': 'true', ...o.labels },
    TaskTemplate: {
      ContainerSpec: {
        Image: IMAGES.appV1,
        Command: ['sh', '-c', "cat /proc/sys/kernel/random/uuid > /data/boot.txt; trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"],
        Mounts: [{ Type: 'volume', Source: o.volume, Target: '/data' }],
        StopGracePeriod: 2_000_000_000,
      },
      Placement: o.node ? { Constraints: [`node.hostname==${o.node}`] } : { Constraints: ['node.role==worker'], MaxReplicas: 1 },
      RestartPolicy: { Condition: 'any', Delay: 1_000_000_000 },
    },
    Mode: { Replicated: { Replicas: o.replicas ?? 1 } },
  } as any);
  await waitRunning(name, o.replicas ?? 1);
}

/** a tree with what a copy must keep: owners, modes, times, symlinks, hard links, an empty file, odd names */
const FILL_SH = `set -e
mkdir -p /data/sub/deep /data/empty-dir
head -c 300000 /dev/urandom > /data/sub/deep/blob.bin
# about a second of gzip: long enough for the two nodes' archives to be seen running at the same time
head -c 24000000 /dev/urandom > /data/noise.bin
echo "hello" > "/data/with space.txt"
: > /data/empty.txt
ln -s sub/deep/blob.bin /data/link
ln /data/with\\ space.txt /data/hard.txt
chown 70:71 /data/sub && chmod 0750 /data/sub
chown 1234:5678 /data/sub/deep/blob.bin && chmod 0600 /data/sub/deep/blob.bin
chmod 0700 /data && chown 70:70 /data
touch -d "2021-03-04 05:06:07" /data/empty.txt /data/sub/deep
`;

async function treeOf(task: any): Promise<string[]> {
  return (await execInTask(task, ['sh', '-c', TREE_SH('/data')])).trim().split('\n').sort();
}

async function countOf(task: any): Promise<{ files: number; bytes: number }> {
  return parseTreeCount(await execInTask(task, ['sh', '-c', `${COUNT_TREE_SH}\ncount_tree /data`]))!;
}

/** the tree of the archive's backup/<volume>/ */
const archivedTree = async (key: string, volume: string) => treeOfTar(await downloadTar(key), `backup/${volume}`);

/** the image on the node's daemon (pulled from the test registry if it lacks it) */
async function pulled(d: ReturnType<typeof dockerFor>, image: string): Promise<void> {
  if (await d.getImage(image).inspect().then(() => true, () => false)) return;
  const stream = await d.pull(image, { authconfig: REGISTRY_AUTH });
  await new Promise((resolve, reject) => d.modem.followProgress(stream, (err: unknown) => (err ? reject(err) : resolve(null))));
}

async function stagingVolumesOn(node: string, inst: string, jobId: number): Promise<string[]> {
  const d = dockerFor(node);
  const byLabel = (await d.listVolumes({ filters: { label: [`swarm-utils.staging=${inst}.${jobId}`] } })).Volumes ?? [];
  const byName = (await d.listVolumes({ filters: { name: [`swarm-utils-${inst}-${jobId}-staged-`] } })).Volumes ?? [];
  return [...new Set([...byLabel, ...byName].map((v: any) => v.Name as string))];
}

beforeAll(async () => {
  s = await startServer(env);
  instances.add(instanceOf(s));
});

afterAll(async () => {
  await s?.stop();
  await removeServices(...services);
  await removeHelperContainers(instances);
  await removeVolumes(volumes);
  await deleteS3Prefix(PREFIX).catch(() => undefined);
});

describe('staged stop=true backups on the real swarm', () => {
  it('two nodes: each copy keeps the tree, the service runs again before the upload starts, archives of both nodes overlap, no staging volume is left', async () => {
    const SVC = `bs-two-${id}`;
    const VOL = `bs-two-data-${id}`;
    await bootingService(SVC, { volume: VOL, labels: {}, replicas: 2 });
    const before = new Map<string, { tree: string[]; count: { files: number; bytes: number }; task: any }>();
    for (const task of await runningTasks(SVC)) {
      await execInTask(task, ['sh', '-c', FILL_SH]);
      const node = task.NodeID === (await manager.listNodes()).find((n: any) => n.Description.Hostname === W1)?.ID ? W1 : W2;
      before.set(node, { tree: await treeOf(task), count: await countOf(task), task });
    }
    expect([...before.keys()].sort()).toEqual([W1, W2]);
    const since = Date.now();
    const r = await s.api('POST', '/jobs', { type: 'backup', service: SVC, waitRes: true });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const job = r.json;
    expect(job.steps.map((x: any) => [x.name, x.state])).toEqual([
      ['resolve', 'done'],
      ['exec', 'skipped'],
      ['prepare', 'done'],
      ['stop', 'done'],
      ['stage', 'done'],
      ['archive', 'skipped'],
      ['start', 'done'],
      ['archive-staged', 'done'],
      ['verify', 'done'],
      ['retention', 'skipped'],
      ['unstage', 'done'],
    ]);
    expect(stepOf(job, 'stage').output).toContain('2 of 2 volume(s) staged');

    // each archive holds the tree its node's volume held while the service was stopped, boot.txt included
    for (const a of job.result.archives) {
      const b = before.get(a.node)!;
      expect(await archivedTree(a.key, VOL), a.node).toEqual(b.tree);
      expect({ files: a.files, bytes: a.bytes }).toEqual(b.count);
      expect(a.size).toBeGreaterThan(0);
    }
    // the live volumes have moved on: the service started again and wrote a new boot.txt
    const boot = (tree: string[]) => tree.find((l) => l.startsWith('./boot.txt|'));
    const archivedBoots = [...before.values()].map((b) => boot(b.tree));
    for (const task of await waitRunning(SVC, 2)) expect(archivedBoots).not.toContain(boot(await treeOf(task)));
    expect((await inspect(SVC)).Spec.Mode.Replicated.Replicas).toBe(2);

    // step times: the service ran again before the archives started
    expect(t(stepOf(job, 'start').finishedAt)).toBeLessThanOrEqual(t(stepOf(job, 'archive-staged').startedAt));
    const inst = instanceOf(s);
    const archives: { node: string; start: number; end: number }[] = [];
    for (const node of [W1, W2]) {
      const d = dockerFor(node);
      const tasks = await containerLifetimes(d, since, (n) => n.startsWith(`${SVC}.`));
      const stage = await containerLifetimes(d, since, (n) => n.startsWith(`swarm-utils-${inst}-${job.id}-stage-`));
      const archive = await containerLifetimes(d, since, (n) => n.startsWith(`swarm-utils-${inst}-${job.id}-archive-`));
      expect(tasks.length, `${node}: the old task and the new one`).toBe(2);
      expect(archive.length).toBe(1);
      expect(stage.length).toBe(1);
      // the service's tasks, from its node's daemon: the new one started before the archive helper did
      expect(tasks[1]!.start, `${node}: running again before the upload`).toBeLessThan(archive[0]!.start);
      expect(overlaps(archive[0]!, tasks[0]!), `${node}: no archive while the old task ran`).toBe(false);
      // the staging helper was up before the service stopped: its start-up is not part of the downtime
      expect(stage[0]!.start, `${node}: staging helper started before the stop`).toBeLessThan(tasks[0]!.end);
      archives.push({ node, ...archive[0]! });
      expect(await stagingVolumesOn(node, inst, job.id), `${node}: staging volumes left`).toEqual([]);
    }
    expect(overlaps(archives[0]!, archives[1]!), 'the archives of the two nodes ran at the same time').toBe(true);
  });
  describe('a process that dies or stops while a staging copy is archived', () => {
    const LONG = `bs-long-${id}`;
    const VOL = `bs-long-data-${id}`;
    beforeAll(async () => {
      await bootingService(LONG, { volume: VOL, labels: {}, node: W2 });
      // enough noise for the archive to take a few seconds: the process is stopped in the middle of it
      const [task] = await runningTasks(LONG);
      await execInTask(task, ['sh', '-c', 'head -c 48000000 /dev/urandom > /data/noise.bin && echo kept > /data/note.txt']);
    });

    /** starts a backup and answers once its archive of the staging copy runs on su-worker-2 */
    async function untilArchiving(): Promise<{ jobId: number; tree: string[]; since: number }> {
      const [task] = await runningTasks(LONG);
      const tree = await treeOf(task);
      const since = Date.now();
      const r = await s.api('POST', '/jobs', { type: 'backup', service: LONG });
      expect(r.status, JSON.stringify(r.json)).toBe(202);
      const jobId = r.json.id;
      const inst = instanceOf(s);
      const w2 = dockerFor(W2);
      await until('the archive of the staging copy running', 120_000, async () => {
        const job = (await s.api('GET', `/jobs/${jobId}`)).json;
        if (['succeeded', 'failed', 'canceled'].includes(job.state)) throw new Error(`the job ended first: ${JSON.stringify(job)}`);
        if (stepOf(job, 'archive-staged').state !== 'running') return false;
        return (await w2.listContainers({ filters: { name: [`swarm-utils-${inst}-${jobId}-archive-`], status: ['running'] } })).length > 0;
      });
      return { jobId, tree, since };
    }

    async function expectArchivedFromCopy(job: any, tree: string[], since: number): Promise<void> {
      expect(job.state, JSON.stringify(job)).toBe('succeeded');
      const [a] = job.result.archives;
      expect(await archivedTree(a.key, VOL)).toEqual(tree);
      // the live volume has the boot.txt of the restart: the archive was made from the copy
      const [task] = await waitRunning(LONG, 1);
      expect(tree).not.toContain((await treeOf(task)).find((l) => l.startsWith('./boot.txt|')));
      expect((await inspect(LONG)).Spec.Mode.Replicated.Replicas).toBe(1);
      // one stop, one start: the old task and the new one, nothing more
      expect(await containerLifetimes(dockerFor(W2), since, (n) => n.startsWith(`${LONG}.`))).toHaveLength(2);
      const inst = instanceOf(s);
      await until('the staging volume removed', 30_000, async () => (await stagingVolumesOn(W2, inst, job.id)).length === 0);
      // the archive helper ran once: reattached by the next process, never made a second time
      const archives = await containerLifetimes(dockerFor(W2), since, (n) => n.startsWith(`swarm-utils-${inst}-${job.id}-archive-`));
      expect(archives).toHaveLength(1);
      await s3Client.send(new DeleteObjectCommand({ Bucket: S3.bucket, Key: a.key }));
    }

    it('SIGKILL: the restarted process takes the archive of the staging copy up again; the service runs; the staging volume is gone', async () => {
      const { jobId, tree, since } = await untilArchiving();
      await s.kill9();
      s = await startServer(env, { dbPath: s.dbPath, port: s.port });
      const job = await waitJob(s, jobId);
      expect(s.output()).toContain('resuming job interrupted by a restart');
      expect(s.output()).toMatch(/"step":"archive-staged"[^\n]*"msg":"step re-entered after restart"/);
      expect(job.steps.map((x: any) => [x.name, x.state])).toEqual([
        ['resolve', 'done'],
        ['exec', 'skipped'],
        ['prepare', 'done'],
        ['stop', 'done'],
        ['stage', 'done'],
        ['archive', 'skipped'],
        ['start', 'done'],
        ['archive-staged', 'done'],
        ['verify', 'done'],
        ['retention', 'skipped'],
        ['unstage', 'done'],
      ]);
      await expectArchivedFromCopy(job, tree, since);
    });

    it('SIGTERM: the archive of the staging copy goes on (the service already runs), the next process finishes the job', async () => {
      const { jobId, tree, since } = await untilArchiving();
      const t0 = Date.now();
      // SIGTERM, as Docker stops the stack's task (not s.stop(): it removes a thrown-away server's helpers)
      const exited = new Promise((r) => s.proc.once('exit', r));
      s.proc.kill('SIGTERM');
      await exited;
      expect(Date.now() - t0, 'nothing to give back: the process exits at once').toBeLessThan(10_000);
      expect(s.output()).toContain('interrupted by shutdown: the next process resumes the job');
      expect(s.output()).not.toContain('shutdown: service given back');
      s = await startServer(env, { dbPath: s.dbPath, port: s.port });
      const job = await waitJob(s, jobId);
      await expectArchivedFromCopy(job, tree, since);
      // it was never stopped: the archive helper's container ran to its end once
      const inst = instanceOf(s);
      const [archive] = await containerLifetimes(dockerFor(W2), since, (n) => n.startsWith(`swarm-utils-${inst}-${jobId}-archive-`));
      expect(archive!.end).toBeGreaterThan(t0);
    });
  });

  it('a node without room for the copy: that volume is archived in place while stopped, the output says why, the service is back at its count', async () => {
    const SVC = `bs-room-${id}`;
    const VOL = `bs-room-data-${id}`;
    // the exec gives the test time to put a 1 MB tmpfs volume where the job's staging volume will be
    await bootingService(SVC, { volume: VOL, labels: { 'swarm-utils.backup.exec': 'sleep 4' }, node: W1 });
    const [task] = await runningTasks(SVC);
    await execInTask(task, ['sh', '-c', 'head -c 4000000 /dev/urandom > /data/big.bin']);
    const tree = await treeOf(task);
    const since = Date.now();
    const r = await s.api('POST', '/jobs', { type: 'backup', service: SVC });
    expect(r.status, JSON.stringify(r.json)).toBe(202);
    const inst = instanceOf(s);
    const staging = `swarm-utils-${inst}-${r.json.id}-staged-0`;
    volumes.push(staging);
    await dockerFor(W1).createVolume({ Name: staging, Driver: 'local', DriverOpts: { type: 'tmpfs', device: 'tmpfs', o: 'size=1m' } } as any);
    const job = await waitJob(s, r.json.id);
    expect(job.state, JSON.stringify(job)).toBe('succeeded');
    expect(job.steps.map((x: any) => [x.name, x.state])).toEqual([
      ['resolve', 'done'],
      ['exec', 'done'],
      ['prepare', 'done'],
      ['stop', 'done'],
      ['stage', 'done'],
      ['archive', 'done'],
      ['start', 'done'],
      ['archive-staged', 'skipped'],
      ['verify', 'done'],
      ['retention', 'skipped'],
      ['unstage', 'done'],
    ]);
    expect(stepOf(job, 'prepare').output).toMatch(/archived in place while stopped: no room on su-worker-1 for a copy: needs \d+ KiB/);
    expect(stepOf(job, 'stage').output).toContain('0 of 1 volume(s) staged');
    expect(stepOf(job, 'stage').output).toContain(`[${W1} ${VOL}] archived in place while stopped: no room on ${W1}`);
    expect(stepOf(job, 'stage').detail.pairs['0']).toMatchObject({ staged: false, reason: expect.stringContaining('no room') });
    const [a] = job.result.archives;
    expect(a.files).toBeUndefined();
    expect(await archivedTree(a.key, VOL)).toEqual(tree);
    expect((await inspect(SVC)).Spec.Mode.Replicated.Replicas).toBe(1);
    await waitRunning(SVC, 1);
    // archived while stopped: between the old task's exit and the new task's start, on su-worker-1's daemon
    const w1 = dockerFor(W1);
    const tasks = await containerLifetimes(w1, since, (n) => n.startsWith(`${SVC}.`));
    const [archive] = await containerLifetimes(w1, since, (n) => n.startsWith(`swarm-utils-${inst}-${job.id}-archive-`));
    expect(tasks).toHaveLength(2);
    expect(archive!.start).toBeGreaterThan(tasks[0]!.end);
    expect(archive!.end).toBeLessThan(tasks[1]!.start);
    // the small volume it had no room in is gone with the job
    expect(await stagingVolumesOn(W1, inst, job.id)).toEqual([]);
  });

  it('swarm-utils.backup.stage=false: the service stays stopped until the archive is uploaded, as before', async () => {
    const SVC = `bs-off-${id}`;
    const VOL = `bs-off-data-${id}`;
    await bootingService(SVC, { volume: VOL, labels: { 'swarm-utils.backup.stage': 'false' }, node: W2 });
    const [task] = await runningTasks(SVC);
    const tree = await treeOf(task);
    const since = Date.now();
    const r = await s.api('POST', '/jobs', { type: 'backup', service: SVC, waitRes: true });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const job = r.json;
    expect(job.steps.map((x: any) => [x.name, x.state])).toEqual([
      ['resolve', 'done'],
      ['exec', 'skipped'],
      ['prepare', 'skipped'],
      ['stop', 'done'],
      ['stage', 'skipped'],
      ['archive', 'done'],
      ['start', 'done'],
      ['archive-staged', 'skipped'],
      ['verify', 'done'],
      ['retention', 'skipped'],
      ['unstage', 'skipped'],
    ]);
    expect(stepOf(job, 'stage').output).toContain('staging is off');
    expect(t(stepOf(job, 'archive').finishedAt)).toBeLessThanOrEqual(t(stepOf(job, 'start').startedAt));
    expect(await archivedTree(job.result.archives[0].key, VOL)).toEqual(tree);
    const w2 = dockerFor(W2);
    const tasks = await containerLifetimes(w2, since, (n) => n.startsWith(`${SVC}.`));
    const [archive] = await containerLifetimes(w2, since, (n) => n.startsWith(`swarm-utils-${instanceOf(s)}-${job.id}-archive-`));
    expect(tasks).toHaveLength(2);
    expect(archive!.start, 'archived after the stop').toBeGreaterThan(tasks[0]!.end);
    expect(archive!.end, 'started again only after the upload').toBeLessThan(tasks[1]!.start);
    expect(await containerLifetimes(w2, since, (n) => n.startsWith(`swarm-utils-${instanceOf(s)}-${job.id}-stage-`))).toEqual([]);
  });
  it('staging volumes of a job that is over (a crash, a node that was down) are removed by the start-up sweep, found by name and by label', async () => {
    // a database whose job ended leaving a staging volume recorded on su-worker-1, and one only its label names
    const other = await startServer(env);
    await other.stop();
    const inst = instanceOf(other);
    instances.add(inst);
    const db = openDb(other.dbPath);
    const job = insertJob(db, { type: 'backup', targetKind: 'service', target: 'gone', source: 'api', locks: [] });
    finishJob(db, job.id, 'failed');
    const [recorded, labelled] = [`swarm-utils-${inst}-${job.id}-staged-0`, `swarm-utils-${inst}-${job.id}-staged-1`];
    volumes.push(recorded, labelled);
    const nodeId = (await manager.listNodes()).find((n: any) => n.Description.Hostname === W1)!.ID as string;
    recordStaging(db, { jobId: job.id, nodeId, node: W1, volume: recorded });
    db.close();
    const w1 = dockerFor(W1);
    for (const name of [recorded, labelled]) await w1.createVolume({ Name: name, Labels: { 'swarm-utils.staging': `${inst}.${job.id}` } } as any);
    // a stopped container still holds one of them (Docker 20.10 keeps the containers of removed helpers)
    await pulled(w1, IMAGES.dockerCli);
    const holder = await w1.createContainer({ Image: IMAGES.dockerCli, Cmd: ['true'], HostConfig: { Binds: [`${recorded}:/v`] } } as any);
    const restarted = await startServer(env, { dbPath: other.dbPath });
    try {
      await until('the staging volumes removed by the sweep', 60_000, async () => (await stagingVolumesOn(W1, inst, job.id)).length === 0);
      expect(await holder.inspect().then(() => 'kept', (e: any) => e.statusCode)).toBe(404);
      expect(restarted.output()).toContain('removing staging volumes left by a job that is over');
      // the removal is recorded just after Docker removed the volume
      await until('the sweep recorded the removal', 10_000, async () => {
        const check = openDb(other.dbPath);
        try {
          return orphanStaging(check).length === 0;
        } finally {
          check.close();
        }
      });
    } finally {
      await restarted.stop();
    }
  });
});
