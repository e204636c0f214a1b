// Staged stop=true backups on the real swarm (README "Backups: staging"): the copy made while the service is
// stopped, the service running again before the upload, the archive made from the copy, no staging volume
// left behind; a SIGKILL after staging; a node without room for the copy; staging off.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { COUNT_TREE_SH, parseTreeCount } from '../../src/jobs/tree-count.js';
import { IMAGES, REGISTRY_AUTH, dockerFor } from '../helpers/testbed.js';
import { startServer, waitJob, type RunningServer } from '../helpers/server.js';
import { execInTask, inspect, manager, removeServices, runningTasks, serverEnv, uid, waitRunning } from '../helpers/cluster.js';
import { containerLifetimes, overlaps } from '../helpers/events.js';
import { deleteS3Prefix, instanceOf, removeHelperContainers, removeVolumes, s3Env } from '../helpers/leftovers.js';
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
});
