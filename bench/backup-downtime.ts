/**
 * Downtime of a stop=true backup against the physical floor, on the test swarm, in one run (README "Benchmarks").
 * For volumes of 64 MB and 512 MB of random data on su-worker-1:
 *   downtime  the staged backup's: from the start of its `stop` step to the end of its `start` step (step times),
 *             and from the service's tasks (the old container's exit to the new one's start, node events);
 *   floor     by hand, in the same run: scale to 0 and wait, copy the volume on its node (`docker run … cp -a`),
 *             scale back and wait until it runs;
 *   total     the staged backup job's wall time, against the bare backup image run by hand on the node
 *             (`docker run` of the same image and environment) plus the floor plus 1 s;
 *   in place  the same backup with staging off (swarm-utils.backup.stage=false), for comparison;
 * and the idle RSS (VmRSS) of a server built as for production (`node dist/main.js`) that ran no job.
 * Run: bash test/node.sh bash test/swarm/up.sh && bash test/node.sh npx tsx bench/backup-downtime.ts [rounds]
 */
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IMAGES, REGISTRY_AUTH, S3, dockerFor } from '../test/helpers/testbed.js';
import { startServer, type RunningServer } from '../test/helpers/server.js';
import { execInTask, manager, removeServices, runningTasks, serverEnv, uid, waitRunning } from '../test/helpers/cluster.js';
import { containerLifetimes } from '../test/helpers/events.js';
import { deleteS3Prefix, instanceOf, removeHelperContainers, removeVolumes, s3Env } from '../test/helpers/leftovers.js';

const ROUNDS = Number(process.argv[2] ?? 3);
const SIZES_MB = (process.env.BENCH_SIZES_MB ?? '64,512').split(',').map(Number);
const W1 = 'su-worker-1';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const id = uid();
const PREFIX = `bench-${id}`;
const w1 = dockerFor(W1);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const LIVE = new Set(['new', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting', 'running']);

async function scale(name: string, replicas: number): Promise<void> {
  const svc: any = await manager.getService(name).inspect();
  await manager.getService(name).update({ ...svc.Spec, version: svc.Version.Index, Mode: { Replicated: { Replicas: replicas } } } as any);
  for (;;) {
    const tasks: any[] = await manager.listTasks({ filters: { service: [name] } });
    const done = replicas === 0
      ? !tasks.some((t) => t.DesiredState === 'running' || LIVE.has(t.Status.State))
      : tasks.filter((t) => t.DesiredState === 'running' && t.Status.State === 'running').length >= replicas;
    if (done) return;
    await sleep(50);
  }
}

/** scale to 0, copy the volume on its node, scale back: what any stop-copy-start must at least take */
async function floor(name: string, volume: string): Promise<number> {
  const target = `${volume}-floor`;
  const t0 = performance.now();
  await scale(name, 0);
  const c = await w1.createContainer({ Image: IMAGES.dockerCli, Cmd: ['sh', '-c', 'cp -a /from/. /to/'], HostConfig: { Binds: [`${volume}:/from:ro`, `${target}:/to`] } } as any);
  await c.start();
  const { StatusCode } = await c.wait();
  if (StatusCode !== 0) throw new Error(`the copy by hand failed with ${StatusCode}`);
  await scale(name, 1);
  const ms = performance.now() - t0;
  await c.remove();
  await w1.getVolume(target).remove();
  return ms;
}

/** the backup image run once by hand on the node: its own time for the same volume and environment */
async function bare(volume: string, round: number): Promise<number> {
  const env = [
    `AWS_S3_BUCKET_NAME=${S3.bucket}`,
    `AWS_ENDPOINT=${S3.endpoint}`,
    'AWS_ENDPOINT_PROTO=http',
    `AWS_ACCESS_KEY_ID=${S3.accessKey}`,
    `AWS_SECRET_ACCESS_KEY=${S3.secretKey}`,
    `AWS_S3_PATH=${PREFIX}`,
    `BACKUP_FILENAME=bare_${volume}_${round}.tar.gz`,
  ];
  const t0 = performance.now();
  const c = await w1.createContainer({ Image: IMAGES.backup, Cmd: ['backup'], Env: env, HostConfig: { Binds: [`${volume}:/backup/${volume}:ro`] } } as any);
  await c.start();
  const { StatusCode } = await c.wait();
  const ms = performance.now() - t0;
  await c.remove();
  if (StatusCode !== 0) throw new Error(`the bare backup image failed with ${StatusCode}`);
  return ms;
}

interface JobTimes {
  total: number;
  downSteps: number;
  downTasks: number;
  steps: Record<string, number>;
  /** how long the archive helper's container ran, from the node's events */
  archiveRun: number;
}

async function backup(server: RunningServer, name: string): Promise<JobTimes> {
  const since = Date.now();
  const r = await server.api('POST', '/jobs', { type: 'backup', service: name, waitRes: true });
  if (r.status !== 200) throw new Error(`backup failed: ${JSON.stringify(r.json)}`);
  const job = r.json;
  const at = (step: string, k: 'startedAt' | 'finishedAt') => Date.parse(job.steps.find((x: any) => x.name === step)[k]);
  const steps = Object.fromEntries(
    job.steps.filter((x: any) => x.state === 'done').map((x: any) => [x.name, Date.parse(x.finishedAt) - Date.parse(x.startedAt)]),
  );
  const tasks = await containerLifetimes(w1, since, (n) => n.startsWith(`${name}.`));
  const [archive] = await containerLifetimes(w1, since, (n) => n.startsWith(`swarm-utils-${instanceOf(server)}-${job.id}-archive-`));
  return {
    archiveRun: archive ? archive.end - archive.start : NaN,
    total: Date.parse(job.finishedAt) - Date.parse(job.createdAt),
    downSteps: at('start', 'finishedAt') - at('stop', 'startedAt'),
    downTasks: tasks.length >= 2 ? tasks[1]!.start - tasks[0]!.end : NaN,
    steps,
  };
}

async function setLabel(name: string, key: string, value: string | null): Promise<void> {
  const svc: any = await manager.getService(name).inspect();
  const labels = { ...svc.Spec.Labels };
  if (value === null) delete labels[key];
  else labels[key] = value;
  await manager.getService(name).update({ ...svc.Spec, version: svc.Version.Index, Labels: labels } as any);
}

/** VmRSS of `node dist/main.js` (as `npm start` runs it, built before) after start-up, having run no job */
async function idleRss(extra: Record<string, string> = {}): Promise<{ rss: number; anon: number; file: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'su-bench-rss-'));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const proc = spawn(process.execPath, ['dist/main.js'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...serverEnv(s3Env(PREFIX, S3.secretKey)), SWARM_UTILS_PORT: String(port), SWARM_UTILS_HOST: '127.0.0.1', SWARM_UTILS_DB_PATH: path.join(dir, 'db'), SWARM_UTILS_ADMIN_TOKEN_LIST: 'bench', ...extra },
    stdio: 'ignore',
  });
  try {
    for (let i = 0; ; i++) {
      if (await fetch(`http://127.0.0.1:${port}/healthz`).then((x) => x.ok, () => false)) break;
      if (i > 100) throw new Error('the server did not start');
      await sleep(200);
    }
    await sleep(5000); // start-up settles (the server releases what it allocated for it after 2 s)
    const status = fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)![1]) / 1024;
    return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function measure(server: RunningServer, mb: number) {
  const name = `bench-${mb}-${id}`;
  const volume = `bench-${mb}-data-${id}`;
  await manager.createService(REGISTRY_AUTH as any, {
    Name: name,
    Labels: { 'swarm-utils.backup.enable': 'true', 'swarm-utils.backup.stop': 'true' },
    TaskTemplate: {
      ContainerSpec: { Image: IMAGES.appV1, Mounts: [{ Type: 'volume', Source: volume, Target: '/data' }], StopGracePeriod: 2_000_000_000 },
      Placement: { Constraints: [`node.hostname==${W1}`] },
      RestartPolicy: { Condition: 'any', Delay: 1_000_000_000 },
    },
    Mode: { Replicated: { Replicas: 1 } },
  } as any);
  try {
    const [task] = await waitRunning(name, 1);
    await execInTask(task, ['sh', '-c', `head -c ${mb * 1024 * 1024} /dev/urandom > /data/random.bin && sync`]);
    const rows = { floor: [] as number[], staged: [] as JobTimes[], inPlace: [] as JobTimes[], bare: [] as number[] };
    for (let i = 0; i < ROUNDS; i++) {
      rows.floor.push(await floor(name, volume));
      rows.staged.push(await backup(server, name));
      rows.bare.push(await bare(volume, i));
      await setLabel(name, 'swarm-utils.backup.stage', 'false');
      rows.inPlace.push(await backup(server, name));
      await setLabel(name, 'swarm-utils.backup.stage', null);
      await deleteS3Prefix(PREFIX); // s3rver keeps every object on the machine's disk
      await waitRunning(name, 1);
    }
    return { mb, ...rows };
  } finally {
    await removeServices(name);
    await sleep(1000);
    await removeVolumes([volume, `${volume}-floor`]);
  }
}

function report(r: Awaited<ReturnType<typeof measure>>): void {
  const floor = median(r.floor);
  const down = median(r.staged.map((x) => x.downSteps));
  const downTasks = median(r.staged.map((x) => x.downTasks));
  const inPlace = median(r.inPlace.map((x) => x.downSteps));
  const total = median(r.staged.map((x) => x.total));
  const bare = median(r.bare);
  const budget = bare + floor + 1000;
  const stepNames = Object.keys(r.staged[0]!.steps);
  console.log(`\n${r.mb} MB of random data on ${W1}, median of ${ROUNDS} round(s):`);
  console.log(`  floor by hand (scale to 0, cp -a on the node, scale back)    ${s(floor)}`);
  console.log(`  downtime, staged backup (stop step start → start step end)   ${s(down)}   ratio to the floor ${(down / floor).toFixed(2)} (goal ≤ 1.20)`);
  console.log(`  downtime, staged backup (old container exit → new start)     ${s(downTasks)}`);
  console.log(`  downtime, staging off (as before)                            ${s(inPlace)}   ratio to the floor ${(inPlace / floor).toFixed(2)}`);
  console.log(`  bare backup image by hand (docker run on the node)           ${s(bare)}`);
  console.log(`  staged backup, total job time                                ${s(total)}   bare + floor + 1 s = ${s(budget)} (goal: total ≤ that; margin ${s(budget - total)})`);
  console.log(`  archive helper container ran ${s(median(r.staged.map((x) => x.archiveRun)))} of the archive-staged step's ${s(median(r.staged.map((x) => x.steps['archive-staged'] ?? NaN)))}`);
  console.log(`  staged backup steps (median ms): ${stepNames.map((n) => `${n} ${median(r.staged.map((x) => x.steps[n] ?? 0)).toFixed(0)}`).join(', ')}`);
}

const server = await startServer(serverEnv(s3Env(PREFIX, S3.secretKey)));
try {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
  // with S3 configured the copy of the state in the bucket is on by default: start-up reads and writes it
  // (README "Losing its manager"), which loads the AWS SDK
  for (const [what, extra] of [
    ['state copy on (the default with S3)', {}],
    ['SWARM_UTILS_STATE_COPY=false', { SWARM_UTILS_STATE_COPY: 'false' }],
  ] as const) {
    const rss = await idleRss(extra);
    console.log(`idle RSS of a started server that ran no job (node dist/main.js), ${what}: VmRSS ${rss.rss.toFixed(1)} MB (anonymous ${rss.anon.toFixed(1)} MB, file-backed ${rss.file.toFixed(1)} MB; goal < 80 MB)`);
  }
  for (const mb of SIZES_MB) report(await measure(server, mb));
} finally {
  await server.stop();
  await removeHelperContainers([instanceOf(server)]);
  await deleteS3Prefix(PREFIX).catch(() => undefined);
}
