/**
 * Nodes by id: su-worker-2 leaves the swarm and joins it again under the same hostname, which leaves a
 * Down entry beside the live one. `clean all` cleans the live node once and reports the stale entry
 * skipped; a request by that hostname is ambiguous (409) and one by id works. The swarm is healed
 * exactly as test/swarm/up.sh expects: the stale entry removed, three Ready nodes.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { IMAGES, REGISTRY_AUTH, SWARM_SCRIPTS_DIR, dockerFor, run } from '../helpers/testbed.js';
import { startServer, type RunningServer } from '../helpers/server.js';
import { manager, serverEnv } from '../helpers/cluster.js';

const W2 = 'su-worker-2';
const w2 = dockerFor(W2);
let s: RunningServer;
let oldId = '';
let newId = '';

const nodesNamed = async (hostname: string) => (await manager.listNodes()).filter((n: any) => n.Description?.Hostname === hostname);

async function until<T>(what: string, ms: number, fn: () => Promise<T | null | undefined | false>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** su-worker-2 leaves, the manager marks its entry Down, it joins again: a new node id, the same hostname */
async function rejoin(): Promise<void> {
  const [node] = await nodesNamed(W2);
  oldId = node.ID;
  const addr = node.Status.Addr as string;
  const token = ((await manager.swarmInspect()) as any).JoinTokens.Worker as string;
  await w2.swarmLeave({ force: false });
  await until('the old entry to be down', 90_000, async () => (await manager.getNode(oldId).inspect()).Status.State === 'down');
  await w2.swarmJoin({ ListenAddr: `${addr}:2377`, AdvertiseAddr: addr, RemoteAddrs: ['10.77.0.1:2377'], JoinToken: token });
  newId = await until('the re-joined node to be ready', 90_000, async () => {
    const live = (await nodesNamed(W2)).find((n: any) => n.ID !== oldId && n.Status.State === 'ready');
    return live?.ID as string | undefined;
  });
}

/** back to the shape up.sh makes: su-worker-2 in the swarm once, no stale entry; up.sh itself if that fails */
async function heal(): Promise<void> {
  try {
    if ((await w2.info()).Swarm?.LocalNodeState === 'active') {
      for (const n of await nodesNamed(W2)) if (n.Status.State === 'down') await manager.getNode(n.ID).remove({ force: true });
    }
  } catch {
    // up.sh below repairs whatever is left
  }
  let check = await run('bash', [`${SWARM_SCRIPTS_DIR}check.sh`], { timeoutMs: 120_000 });
  if (check.code !== 0) {
    const up = await run('bash', [`${SWARM_SCRIPTS_DIR}up.sh`], { timeoutMs: 600_000 });
    expect(up.code, up.stdout + up.stderr).toBe(0);
    check = await run('bash', [`${SWARM_SCRIPTS_DIR}check.sh`], { timeoutMs: 120_000 });
  }
  expect(check.code, check.stdout).toBe(0);
}

beforeAll(async () => {
  s = await startServer(serverEnv());
  await rejoin();
});

afterAll(async () => {
  await s?.stop();
  await heal();
});

describe('a node that left and re-joined under the same hostname', () => {
  it('clean all cleans the live node once and reports the stale entry skipped', async () => {
    // litter on the re-joined node: a stopped container for the container prune
    await new Promise<void>((resolve, reject) =>
      w2.pull(IMAGES.busybox, { authconfig: REGISTRY_AUTH }, (err: unknown, stream?: NodeJS.ReadableStream) => {
        if (err || !stream) return reject(err);
        w2.modem.followProgress(stream, (e: unknown) => (e ? reject(e) : resolve()));
      }),
    );
    const litter = await w2.createContainer({ Image: IMAGES.busybox, Cmd: ['sh', '-c', 'exit 0'] });
    await litter.start();
    await litter.wait();

    const r = await s.api('POST', '/jobs', { type: 'clean', all: true, waitRes: true });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const children = r.json.result.children.filter((c: any) => c.target.node === W2);
    expect(children.map((c: any) => c.target.nodeId).sort()).toEqual([newId, oldId].sort());
    const stale = children.find((c: any) => c.target.nodeId === oldId);
    const live = children.find((c: any) => c.target.nodeId === newId);
    expect(stale).toMatchObject({ state: 'succeeded', skipped: 'node is down' });
    expect(live.state).toBe('succeeded');
    expect(live.skipped).toBeUndefined();
    const liveJob = (await s.api('GET', `/jobs/${live.id}`)).json;
    expect(liveJob.steps.map((x: any) => [x.name, x.state])).toEqual([
      ['check-node', 'done'],
      ['container-prune', 'done'],
      ['image-prune', 'done'],
      ['builder-prune', 'done'],
    ]);
    expect(await litter.inspect().then(() => true, () => false)).toBe(false);
    // every node entry once: no two children share a lock, none waited for one
    const nodeChildren = r.json.result.children.filter((c: any) => c.target.node);
    expect(new Set(nodeChildren.map((c: any) => c.target.nodeId)).size).toBe(nodeChildren.length);
    expect(nodeChildren.every((c: any) => c.error === null)).toBe(true);
  });

  it('the hostname is ambiguous (409 AMBIGUOUS_NODE with both entries); the id is not', async () => {
    const r = await s.api('POST', '/jobs', { type: 'clean', node: W2 });
    expect(r.status, JSON.stringify(r.json)).toBe(409);
    expect(r.json.error.code).toBe('AMBIGUOUS_NODE');
    expect(r.json.error.details.candidates.map((c: any) => c.id).sort()).toEqual([newId, oldId].sort());
    const byId = await s.api('POST', '/jobs', { type: 'clean', node: newId, waitRes: true });
    expect(byId.status, JSON.stringify(byId.json)).toBe(200);
    expect(byId.json.target).toEqual({ node: W2, nodeId: newId });
    // listing by hostname finds both entries' jobs, by id only that entry's
    const byHost = (await s.api('GET', `/jobs?node=${W2}`)).json.jobs.map((j: any) => j.target.nodeId);
    expect(new Set(byHost)).toEqual(new Set([oldId, newId]));
    const byOld = (await s.api('GET', `/jobs?node=${oldId}`)).json.jobs;
    expect(byOld).toHaveLength(1);
    expect(byOld[0].result).toMatchObject({ skipped: 'node is down' });
  });
});
