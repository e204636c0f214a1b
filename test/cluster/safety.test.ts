// Safety at the edges, on the real test swarm: SIGTERM, node prunes against stopped services, calls that
// never return, compensation retried after Docker came back (or left to an operator), jobs written by an
// older version, one process per database file, `all` parents past the occupation limit, the cron run.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import Database from 'better-sqlite3';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { IMAGES, MANAGER_SOCKET, REGISTRY, S3, dockerFor, pushApp, run } from '../helpers/testbed.js';
import { deleteS3Prefix, instanceOf, removeHelperContainers, removeVolumes, s3Client as s3 } from '../helpers/leftovers.js';
import { startServer, waitJob, type RunningServer } from '../helpers/server.js';
import { createAppService, inspect, manager, removeServices, runningTasks, serverEnv, uid, waitRunning } from '../helpers/cluster.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { containerLifetimes, daemonEvents, overlaps } from '../helpers/events.js';

const id = uid();
const W1 = 'su-worker-1';
const W2 = 'su-worker-2';
const PREFIX = `sf-${id}`;
const s3Env = (domain: string) => ({
  SWARM_UTILS_S3_DOMAIN: domain,
  SWARM_UTILS_S3_HTTPS: 'false',
  SWARM_UTILS_S3_BUCKET_NAME: S3.bucket,
  SWARM_UTILS_S3_ACCESS_KEY: S3.accessKey,
  SWARM_UTILS_S3_SECRET_ACCESS_KEY: S3.secretKey,
  SWARM_UTILS_S3_PATH: PREFIX,
});

const vol = (name: string) => ({ Type: 'volume' as const, Source: name, Target: '/data' });
const stopped = (extra: Record<string, string> = {}) => ({ 'swarm-utils.backup.enable': 'true', 'swarm-utils.backup.stop': 'true', ...extra });
const stepOf = (job: any, name: string) => job.steps?.find((x: any) => x.name === name);
const t = (iso: string | null) => (iso ? Date.parse(iso) : NaN);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const volumes: string[] = [];
const services: string[] = [];
/** the installation ids of the servers this file started: their helpers' stopped containers go at the end */
const instances = new Set<string>();
const servers: RunningServer[] = [];
let s3proxy: Proxy;
let tmp: string;

async function server(env: Record<string, string>, opts: { dbPath?: string; port?: number } = {}): Promise<RunningServer> {
  const s = await startServer(env, opts);
  servers.push(s);
  instances.add(instanceOf(s));
  return s;
}

async function service(name: string, o: Parameters<typeof createAppService>[1] = {}): Promise<string> {
  services.push(name);
  for (const m of o.mounts ?? []) volumes.push(m.Source);
  return createAppService(name, o);
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'su-safety-'));
  // helpers on the workers reach the test process on the bridge address
  s3proxy = await startProxy({ listen: { host: '10.77.0.1', port: 0 }, target: { host: '10.77.0.1', port: 9000 } });
});

afterAll(async () => {
  s3proxy?.resume();
  for (const s of servers) if (s.proc.exitCode === null && s.proc.signalCode === null) await s.stop().catch(() => undefined);
  await s3proxy?.close();
  await removeServices(...services);
  await removeHelperContainers(instances);
  await removeVolumes(volumes);
  await deleteS3Prefix(PREFIX).catch(() => undefined);
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('safety at the edges on the real swarm', () => {
  it('SIGTERM during a stop=true backup’s archive, waitRes open: 503 at once, the service runs again before the exit, the next start finishes with a fresh stop of the same key', async () => {
    const SIG = `sf-sig-${id}`;
    // archived in place (no staging copy): the archive reads the stopped volume itself
    await service(SIG, { constraints: [`node.hostname==${W1}`], mounts: [vol(`sf-sig-data-${id}`)], labels: stopped({ 'swarm-utils.backup.stage': 'false' }) });
    const env = serverEnv({ ...s3Env(s3proxy.address), SWARM_UTILS_SHUTDOWN_TIMEOUT: '25_000' });
    const a = await server(env);
    const inst = instanceOf(a);
    const since = Date.now();
    s3proxy.pause(); // the archive reads the volume, then waits on its upload as long as the test wants
    try {
      const waiting = a.api('POST', '/jobs', { type: 'backup', service: SIG, waitRes: true });
      const job = await until('the archive running', 90_000, async () => {
        const [j] = (await a.api('GET', `/jobs?service=${SIG}`)).json.jobs;
        return j && stepOf(j, 'archive')?.state === 'running' ? j : null;
      });
      const w1 = dockerFor(W1);
      await until('the archive helper’s container on su-worker-1', 60_000, async () =>
        (await w1.listContainers({ filters: { name: [`swarm-utils-${inst}-${job.id}-archive`] } })).length ? true : null,
      );
      await sleep(1500);

      const t0 = Date.now();
      a.proc.kill('SIGTERM');
      const r = await waiting;
      expect(Date.now() - t0, 'the waitRes request is answered at once').toBeLessThan(3000);
      expect(r.status, JSON.stringify(r.json)).toBe(503);
      expect(r.headers.get('retry-after')).toBe('30');
      expect(r.json).toMatchObject({ id: job.id, state: 'running' });
      const code = await exitOf(a.proc);
      expect(code, a.output()).toBe(0);
      expect(Date.now() - t0, 'the process exits within SWARM_UTILS_SHUTDOWN_TIMEOUT').toBeLessThan(25_000);
      // given back before the process exited
      expect((await inspect(SIG)).Spec.Mode.Replicated.Replicas).toBe(1);
      expect(await runningTasks(SIG)).toHaveLength(1);
      expect(a.output()).toContain('shutdown: service given back');

      s3proxy.resume();
      const b = await server(env, { dbPath: a.dbPath, port: a.port });
      const done = await waitJob(b, job.id);
      expect(done.state, JSON.stringify(done)).toBe('succeeded');
      expect(done.steps.map((x: any) => [x.name, x.state])).toEqual([
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
      const keys = job.steps[0].detail.pairs.map((p: any) => p.key);
      expect(done.result.archives.map((x: any) => x.key)).toEqual(keys);
      expect((await s3.send(new HeadObjectCommand({ Bucket: S3.bucket, Key: keys[0] }))).ContentLength).toBeGreaterThan(0);
      expect((await inspect(SIG)).Spec.Mode.Replicated.Replicas).toBe(1);
      await waitRunning(SIG, 1);

      // su-worker-1's daemon: the service's containers and the archive helpers never ran at the same time
      const tasks = await containerLifetimes(w1, since, (n) => n.startsWith(`${SIG}.`));
      const helpers = await containerLifetimes(w1, since, (n) => n.startsWith(`swarm-utils-${inst}-${job.id}-archive-`));
      expect(tasks.length, 'stopped, given back at shutdown, stopped again, started').toBe(3);
      expect(helpers.length, 'the stopped archive and the fresh one').toBe(2);
      for (const h of helpers) for (const c of tasks) expect(overlaps(h, c), `${h.name} ran while ${c.name} ran`).toBe(false);
      await b.stop();
    } finally {
      s3proxy.resume();
    }
  });

  it('a node prune requested while a stop=true backup holds a service on that node down waits, never overlaps, and the image stays', async () => {
    const PRN = `sf-prn-${id}`;
    const image = `${REGISTRY}/test/app:sf-prune-${id}`;
    await pushApp(`sf-prune-${id}`, `prune-${id}`);
    // archived in place: the service is held down during the whole (paused) upload
    await service(PRN, { image, constraints: [`node.hostname==${W1}`], mounts: [vol(`sf-prn-data-${id}`)], labels: stopped({ 'swarm-utils.backup.stage': 'false' }) });
    const s = await server(serverEnv({ ...s3Env(s3proxy.address), SWARM_UTILS_LOCK_TIMEOUT: '120_000' }));
    const inst = instanceOf(s);
    const since = Date.now();
    s3proxy.pause();
    let backupId = 0;
    let cleanId = 0;
    try {
      backupId = (await s.api('POST', '/jobs', { type: 'backup', service: PRN })).json.id;
      await until('the archive running', 90_000, async () => (stepOf((await s.api('GET', `/jobs/${backupId}`)).json, 'archive')?.state === 'running' ? true : null));
      const clean = await s.api('POST', '/jobs', { type: 'clean', node: W1 });
      expect(clean.status, JSON.stringify(clean.json)).toBe(202);
      cleanId = clean.json.id;
      await sleep(6000);
      const waiting = (await s.api('GET', `/jobs/${cleanId}`)).json;
      expect(waiting.state).toBe('running');
      expect(stepOf(waiting, 'container-prune').state).toBe('running');
      expect(s.output()).toMatch(/"what":"prune node su-worker-1[^"]*","why":"job \d+ holds service sf-prn-/);
      expect((await manager.listServices({ filters: { label: [`swarm-utils.helper=${cleanId}`] } })).filter((x: any) => x.Spec.Name.startsWith(`swarm-utils-${inst}-`))).toEqual([]);
    } finally {
      s3proxy.resume();
    }
    const [cleanDone, backupDone] = [await waitJob(s, cleanId), await waitJob(s, backupId)];
    expect(backupDone.state, JSON.stringify(backupDone)).toBe('succeeded');
    expect(cleanDone.state, JSON.stringify(cleanDone)).toBe('succeeded');
    expect(cleanDone.steps.map((x: any) => x.state)).toEqual(['done', 'done', 'done', 'done']);

    const w1 = dockerFor(W1);
    const tasks = await containerLifetimes(w1, since, (n) => n.startsWith(`${PRN}.`));
    const prunes = await containerLifetimes(w1, since, (n) => n.startsWith(`swarm-utils-${inst}-${cleanDone.id}-`));
    expect(tasks).toHaveLength(2);
    // container, image list, builder; plus the image removal when the node had an image to remove (other runs leave some)
    expect(prunes.length).toBeGreaterThanOrEqual(3);
    expect(prunes.length).toBeLessThanOrEqual(4);
    // from the old task's end to the new task's start the service was down on su-worker-1: no prune then
    const down = { start: tasks[0]!.end, end: tasks[1]!.start };
    for (const p of prunes) expect(overlaps(p, down), `${p.name} ran while ${PRN} was down`).toBe(false);
    // its image was never removed from su-worker-1 (container-prune then image-prune -a would have removed it
    // while the service was down); a task start always asks the registry, so `pull` events prove nothing
    const imageEvents = await daemonEvents(w1, since, { type: ['image'] });
    const removed = imageEvents.filter((e) => ['untag', 'delete'].includes(e.Action) && (e.Actor.ID === image || e.Actor.Attributes?.name === image));
    expect(removed.map((e) => e.Action)).toEqual([]);
    expect(await w1.getImage(image).inspect()).toBeTruthy();
    await s.stop();
  });

  it('an update whose image names a registry that accepts TCP and never answers fails within a small execution limit; the next update runs', async () => {
    const UPD = `sf-upd-${id}`;
    await service(UPD, { labels: { 'swarm-utils.update.timeout-ms': '60_000' } });
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((sock) => void sockets.add(sock.on('error', () => undefined)));
    await new Promise<void>((r) => silent.listen(0, '10.77.0.1', r));
    const port = (silent.address() as net.AddressInfo).port;
    const s = await server(serverEnv({ SWARM_UTILS_LOCK_MAX_EXECUTION_TIME: '3_000', SWARM_UTILS_LOCK_MAX_OCCUPATION_TIME: '90_000' }));
    try {
      const before = await inspect(UPD);
      const r = await s.api('POST', '/jobs', { type: 'update', service: UPD, image: `10.77.0.1:${port}/test/app:v1`, waitRes: true });
      expect(r.status, JSON.stringify(r.json)).toBe(502);
      expect(['TIMEOUT', 'REGISTRY_ERROR']).toContain(r.json.error.code);
      expect(t(r.json.finishedAt) - t(r.json.startedAt), 'within the execution limit').toBeLessThan(3_000 + 1_500);
      expect(sockets.size, 'the registry was contacted').toBeGreaterThan(0);
      expect(r.json.steps.map((x: any) => x.state)).toEqual(['skipped', 'failed', 'skipped', 'skipped', 'skipped']);
      expect((await inspect(UPD)).Version.Index).toBe(before.Version.Index);
      const next = await s.api('POST', '/jobs', { type: 'update', service: UPD, image: IMAGES.appV2, waitRes: true });
      expect(next.status, JSON.stringify(next.json)).toBe(200);
    } finally {
      for (const sock of sockets) sock.destroy();
      silent.close();
      await s.stop();
    }
  });

  it('a Docker call that never returns (the distribution call hung in front of the socket) ends the job TIMEOUT; the lock is released', async () => {
    const UPD2 = `sf-upd2-${id}`;
    await service(UPD2, { labels: { 'swarm-utils.update.timeout-ms': '60_000' } });
    const docker = await startProxy({ listen: { path: path.join(tmp, 'hang.sock') }, target: { path: MANAGER_SOCKET } });
    // longer than dockerd's own ~10 s TLS handshake timeout: only swarm-utils' own limit can end it
    const s = await server(serverEnv({ DOCKER_HOST: `unix://${docker.address}`, SWARM_UTILS_LOCK_MAX_EXECUTION_TIME: '12_000', SWARM_UTILS_LOCK_MAX_OCCUPATION_TIME: '90_000' }));
    try {
      docker.hang(/^GET \/distribution\//);
      const r = await s.api('POST', '/jobs', { type: 'update', service: UPD2, image: IMAGES.appV2, waitRes: true });
      expect(r.status, JSON.stringify(r.json)).toBe(502);
      expect(r.json.error.code).toBe('TIMEOUT');
      const took = t(r.json.finishedAt) - t(r.json.startedAt);
      expect(took).toBeGreaterThanOrEqual(11_000);
      expect(took).toBeLessThan(12_000 + 2_000);
      expect(docker.requests.some((l) => l.startsWith('GET /distribution/'))).toBe(true);
      docker.hang(null);
      const next = await s.api('POST', '/jobs', { type: 'update', service: UPD2, image: IMAGES.appV2, waitRes: true });
      expect(next.status, JSON.stringify(next.json)).toBe(200);
    } finally {
      await s.stop();
      await docker.close();
    }
  });

  it('Docker unreachable past the start limit during a restore: the failed compensation is recorded and retried once Docker answers, without a restart; a service whose spec was changed by hand is left alone', async () => {
    const A = `sf-cmpa-${id}`;
    const B = `sf-cmpb-${id}`;
    // archived in place: the uploads fail while the services are still down, so the start is the compensation
    const labels = stopped({ 'swarm-utils.backup.start-timeout-ms': '4_000', 'swarm-utils.backup.upload-timeout-ms': '60_000', 'swarm-utils.backup.stage': 'false' });
    await Promise.all([
      service(A, { constraints: [`node.hostname==${W1}`], mounts: [vol(`sf-cmpa-data-${id}`)], labels }),
      service(B, { constraints: [`node.hostname==${W2}`], mounts: [vol(`sf-cmpb-data-${id}`)], labels }),
    ]);
    const [idA, idB] = [(await inspect(A)).ID, (await inspect(B)).ID];
    const docker = await startProxy({ listen: { path: path.join(tmp, 'docker.sock') }, target: { path: MANAGER_SOCKET } });
    const s3gate = await startProxy({ listen: { host: '10.77.0.1', port: 0 }, target: { host: '10.77.0.1', port: 9000 } });
    const s = await server(serverEnv({ ...s3Env(s3gate.address), DOCKER_HOST: `unix://${docker.address}`, SWARM_UTILS_LOCK_MAX_EXECUTION_TIME: '6_000' }));
    try {
      s3gate.pause();
      // both scale-downs go through; the first scale-up makes Docker unreachable (that request included)
      let pausedAt = 0;
      docker.pauseOn(new RegExp(`^POST /services/(${idA}|${idB})/update`), { after: 2, then: () => (pausedAt = Date.now()) });
      const jobA = (await s.api('POST', '/jobs', { type: 'backup', service: A })).json;
      const jobB = (await s.api('POST', '/jobs', { type: 'backup', service: B })).json;
      for (const j of [jobA, jobB]) {
        await until(`job ${j.id} archiving`, 90_000, async () => (stepOf((await s.api('GET', `/jobs/${j.id}`)).json, 'archive')?.state === 'running' ? true : null));
      }
      s3gate.refuse(true); // the uploads fail: both jobs go to their compensation
      const [failedA, failedB] = [await waitJob(s, jobA.id, 120_000), await waitJob(s, jobB.id, 120_000)];
      expect(docker.paused).toBe(true);
      for (const j of [failedA, failedB]) {
        expect(j.state, JSON.stringify(j)).toBe('failed');
        expect(stepOf(j, 'start').state).toBe('failed');
        expect(j.result.compensation).toMatchObject({ state: 'pending', services: [{ state: 'pending' }] });
      }
      expect((await inspect(A)).Spec.Mode.Replicated.Replicas).toBe(0);
      expect((await inspect(B)).Spec.Mode.Replicated.Replicas).toBe(0);
      // an operator changes B by hand meanwhile (through the real socket)
      const hand = await run('docker', ['service', 'update', '--detach', '--label-add', 'changed-by-hand=true', B]);
      expect(hand.code, hand.stderr).toBe(0);
      const handVersion = (await inspect(B)).Version.Index;
      // Docker unreachable for longer than the start limit, and until the hung calls were given up
      await sleep(Math.max(0, pausedAt + 8_000 - Date.now()));
      docker.resume();
      const pid = s.proc.pid;

      const doneA = await until('A given back by the retry', 90_000, async () => {
        const j = (await s.api('GET', `/jobs/${jobA.id}`)).json;
        return j.result?.compensation?.state === 'done' ? j : null;
      });
      expect(stepOf(doneA, 'start')).toMatchObject({ state: 'done', output: expect.stringContaining('retried after the job ended') });
      await waitRunning(A, 1);
      expect((await inspect(A)).Spec.Mode.Replicated.Replicas).toBe(1);

      const leftB = await until('B left to the operator', 90_000, async () => {
        const j = (await s.api('GET', `/jobs/${jobB.id}`)).json;
        return j.result?.compensation?.state === 'operator' ? j : null;
      });
      expect(leftB.result.compensation.services[0].error).toMatch(/changed .* left to the operator/);
      const after = await inspect(B);
      expect(after.Spec.Mode.Replicated.Replicas).toBe(0);
      expect(after.Version.Index).toBe(handVersion);
      expect(s.proc.pid).toBe(pid);
      expect(s.proc.exitCode).toBeNull();
      expect(s.output()).toContain('compensation left to the operator');
    } finally {
      docker.resume();
      s3gate.refuse(false);
      s3gate.resume();
      await s.stop();
      await docker.close();
      await s3gate.close();
    }
  });

  it('a running job written with an older step list (crafted in the database) resumes by name and its compensation runs', async () => {
    const OLD = `sf-old-${id}`;
    await service(OLD, { constraints: [`node.hostname==${W1}`], mounts: [vol(`sf-old-data-${id}`)], labels: stopped() });
    const env = serverEnv(s3Env(S3.endpoint));
    const first = await server(env);
    await first.stop();
    // that older version had stopped the service and was in a step this version does not have when it died
    const svc = await inspect(OLD);
    expect((await run('docker', ['service', 'update', '--detach', '--replicas', '0', OLD])).code).toBe(0);
    await until('no task of the service runs', 60_000, async () => ((await runningTasks(OLD)).length === 0 ? true : null));
    const jobId = craftOlderJob(first.dbPath, OLD, svc.ID);
    const s = await server(env, { dbPath: first.dbPath });
    const done = await waitJob(s, jobId);
    expect(done.steps.map((x: any) => [x.name, x.state])).toEqual([
      ['resolve', 'done'],
      ['exec', 'done'],
      ['stop', 'done'],
      ['archive-and-upload', 'skipped'],
      // the compensation under its former name, run by this version's `start`
      ['restore', 'done'],
      // a compensation step this version added: it finds nothing to do
      ['unstage', 'skipped'],
    ]);
    expect(stepOf(done, 'archive-and-upload').output).toContain('has no step "archive-and-upload"');
    expect(done.state).toBe('succeeded');
    await waitRunning(OLD, 1);
    expect((await inspect(OLD)).Spec.Mode.Replicated.Replicas).toBe(1);
    await s.stop();
  });

  it('a second process on the same database file exits non-zero with a clear message; the first keeps running', async () => {
    const s = await server(serverEnv());
    const err = await startServer(serverEnv(), { dbPath: s.dbPath }).then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/^server exited with 1:/);
    expect(err?.message).toContain(`another swarm-utils process is using the database ${s.dbPath}`);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    expect((await s.api('GET', '/readyz')).status).toBe(200);
    await s.stop();
  });

  it('backup all whose children together outlast LOCK_MAX_OCCUPATION_TIME: the parent ends after its last child, each outcome listed', async () => {
    const TOKEN = `sf-all-token-${id}`;
    const names = [1, 2, 3, 4].map((n) => `sf-all${n}-${id}`);
    // each child takes ~6 s (a 4 s dump, then the archive): each fits in the 15 s limit with room for a
    // loaded machine, all four (~24 s) do not
    const labels = { 'swarm-utils.backup.enable': 'true', 'swarm-utils.backup.token': TOKEN, 'swarm-utils.backup.exec': 'sleep 4' };
    await Promise.all(names.map((n) => service(n, { mounts: [vol(`${n}-data`)], labels })));
    const s = await server(
      serverEnv({ ...s3Env(S3.endpoint), SWARM_UTILS_LOCK_MAX_OCCUPATION_TIME: '15_000', SWARM_UTILS_LOCK_MAX_EXECUTION_TIME: '15_000', SWARM_UTILS_CONCURRENCY: '1' }),
    );
    try {
      const r = await s.api('POST', '/jobs', { type: 'backup', all: true, waitRes: true }, TOKEN);
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      const children = r.json.result.children;
      expect(children.map((c: any) => c.target.service).sort()).toEqual([...names].sort());
      expect(children.every((c: any) => c.state === 'succeeded')).toBe(true);
      const kids = await Promise.all(children.map(async (c: any) => (await s.api('GET', `/jobs/${c.id}`)).json));
      expect(t(r.json.finishedAt) - t(r.json.startedAt), 'longer than the occupation limit').toBeGreaterThan(15_000);
      expect(t(r.json.finishedAt)).toBeGreaterThanOrEqual(Math.max(...kids.map((k: any) => t(k.finishedAt))));
    } finally {
      await s.stop();
      await removeServices(...names);
    }
  });

  it('cron clean-then-backup: the backup starts after the last clean child; no prune runs while the backup holds its service down', async () => {
    // everything else of this file is gone: the cron's backup all covers this service (and whatever else the swarm enables)
    await removeServices(...services);
    const CRN = `sf-crn-${id}`;
    const SLOW = [1, 2].map((n) => `sf-slow${n}-${id}`);
    await service(CRN, { constraints: [`node.hostname==${W1}`], mounts: [vol(`sf-crn-data-${id}`)], labels: stopped() });
    // two clean children of 7 s: each fits in the 12 s occupation limit, the clean run's children together do not
    for (const n of SLOW) await service(n, { labels: { 'swarm-utils.clean.enable': 'true', 'swarm-utils.clean.exec': 'sleep 7' } });
    const at = new Date(Date.now() + 12_000);
    const expr = `${at.getUTCSeconds()} ${at.getUTCMinutes()} ${at.getUTCHours()} * * *`;
    const s = await server(
      serverEnv({
        ...s3Env(S3.endpoint),
        SWARM_UTILS_IS_CRON_CLEAN: 'true',
        SWARM_UTILS_IS_CRON_BACKUP: 'true',
        SWARM_UTILS_CRON_EXPR: expr,
        SWARM_UTILS_LOCK_MAX_OCCUPATION_TIME: '12_000',
        SWARM_UTILS_LOCK_MAX_EXECUTION_TIME: '12_000',
        SWARM_UTILS_CONCURRENCY: '1',
      }),
    );
    try {
      const [backup, clean] = await until('the cron run queued', 60_000, async () => {
        const jobs = (await s.api('GET', '/jobs?limit=100')).json.jobs.filter((j: any) => j.source === 'cron');
        return jobs.length === 2 ? jobs : null;
      });
      expect([clean.type, backup.type]).toEqual(['clean', 'backup']);
      const cleanDone = await waitJob(s, clean.id, 240_000);
      const backupDone = await waitJob(s, backup.id, 240_000);
      const cleanKids = await Promise.all(cleanDone.result.children.map(async (c: any) => (await s.api('GET', `/jobs/${c.id}`)).json));
      expect(cleanKids.filter((k: any) => k.target.node).length).toBe(3);
      expect(t(cleanDone.finishedAt) - t(cleanDone.startedAt), 'the clean run outlasts the occupation limit').toBeGreaterThan(12_000);
      expect(t(cleanDone.finishedAt)).toBeGreaterThanOrEqual(Math.max(...cleanKids.map((k: any) => t(k.finishedAt))));
      expect(t(backupDone.startedAt)).toBeGreaterThanOrEqual(t(cleanDone.finishedAt));
      const crn = backupDone.result.children.find((c: any) => c.target.service === CRN);
      expect(crn?.state, JSON.stringify(backupDone)).toBe('succeeded');
      const crnJob = (await s.api('GET', `/jobs/${crn.id}`)).json;
      const held = { start: t(stepOf(crnJob, 'stop').startedAt), end: t(stepOf(crnJob, 'start').finishedAt) };
      for (const k of cleanKids.filter((x: any) => x.target.node)) {
        for (const step of k.steps.filter((x: any) => x.name.endsWith('-prune') && x.startedAt)) {
          expect(overlaps({ start: t(step.startedAt), end: t(step.finishedAt) }, held), `${k.target.node} ${step.name}`).toBe(false);
        }
      }
    } finally {
      await s.stop();
    }
  });
});

/** a backup job as an older version planned it, left running in the middle of a step this version does not have */
function craftOlderJob(dbPath: string, service: string, serviceId: string): number {
  const db = new Database(dbPath);
  try {
    return db.transaction(() => {
      const now = Date.now();
      const jobId = Number(
        db
          .prepare(
            `INSERT INTO jobs (type, state, target_kind, target, params, source, locks, requester, requester_admin, created_at, started_at, owner)
             VALUES ('backup', 'running', 'service', ?, '{}', 'api', ?, 'old-version', 1, ?, ?, 'an-older-process')`,
          )
          .run(service, JSON.stringify([`backup_service_${service}`]), now, now).lastInsertRowid,
      );
      db.prepare('INSERT INTO locks (name, job_id, acquired_at) VALUES (?, ?, ?)').run(`backup_service_${service}`, jobId, now);
      const resolved = { serviceId, service, stop: true, tasks: [], volumes: [`sf-old-data-${id}`], stamp: 'old', pairs: [] };
      const rows: [string, string, number, object][] = [
        ['resolve', 'done', 0, resolved],
        ['exec', 'done', 0, {}],
        ['stop', 'done', 0, { replicas: 1 }],
        ['archive-and-upload', 'running', 0, { uploaded: [] }],
        ['restore', 'pending', 1, {}],
      ];
      rows.forEach(([name, state, always, detail], idx) =>
        db
          .prepare('INSERT INTO steps (job_id, idx, name, state, always, started_at, detail) VALUES (?, ?, ?, ?, ?, ?, ?)')
          .run(jobId, idx, name, state, always, state === 'pending' ? null : now, JSON.stringify(detail)),
      );
      return jobId;
    })();
  } finally {
    db.close();
  }
}

async function exitOf(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode === null && proc.signalCode === null) await new Promise((r) => proc.once('exit', r));
  return proc.exitCode;
}

async function until<T>(what: string, ms: number, fn: () => Promise<T | null>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(250);
  }
}
