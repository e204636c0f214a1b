// Per-service schedules on the real test swarm (docs/configuration.md "Per-service schedules"): two
// services with their own swarm-utils.backup.cron are backed up in their own slots, by real backups into
// the real S3 server; a kill -9 and a restart on the same database never fire a slot twice.
import { describe, it, expect, afterAll } from 'vitest';
import Database from 'better-sqlite3';
import { S3 } from '../helpers/testbed.js';
import { deleteS3Prefix, instanceOf, removeHelperContainers, removeVolumes, s3Env } from '../helpers/leftovers.js';
import { startServer, waitJob, type RunningServer } from '../helpers/server.js';
import { createAppService, removeServices, serverEnv, uid } from '../helpers/cluster.js';

const id = uid();
const PREFIX = `sch-${id}`;
const A = `sch-a-${id}`;
const B = `sch-b-${id}`;
const EXPR = { [A]: '0,20,40 * * * * *', [B]: '15,45 * * * * *' };
const SECONDS = { [A]: [0, 20, 40], [B]: [15, 45] };
const instances = new Set<string>();
const servers: RunningServer[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function server(dbPath?: string): Promise<RunningServer> {
  const s = await startServer(
    serverEnv({
      ...s3Env(PREFIX, S3.secretKey),
      SWARM_UTILS_IS_CRON_BACKUP: 'true',
      // the common run: far away, so only the services' own schedules fire in this test
      SWARM_UTILS_CRON_EXPR: '0 3 1 1 *',
    }),
    dbPath ? { dbPath } : {},
  );
  servers.push(s);
  instances.add(instanceOf(s));
  return s;
}

afterAll(async () => {
  for (const s of servers) if (s.proc.exitCode === null && s.proc.signalCode === null) await s.stop().catch(() => undefined);
  await removeServices(A, B);
  await removeHelperContainers(instances);
  await removeVolumes([`${A}-data`, `${B}-data`]);
  await deleteS3Prefix(PREFIX).catch(() => undefined);
});

interface Slot {
  slot: string;
  backupJobId: number | null;
  skipped: string | null;
}

describe('per-service schedules on the real swarm', () => {
  it('two services fire in their own slots with real backups; /status shows each next run; a kill -9 and restart never double a slot', async () => {
    for (const name of [A, B]) {
      await createAppService(name, {
        constraints: ['node.hostname==su-worker-1'],
        mounts: [{ Type: 'volume', Source: `${name}-data`, Target: '/data' }],
        labels: { 'swarm-utils.backup.enable': 'true', 'swarm-utils.backup.cron': EXPR[name]! },
      });
    }
    let s = await server();
    const status = (await s.api('GET', '/status')).json;
    const own = status.schedules.services.filter((x: any) => x.service === A || x.service === B);
    expect(own.map((x: any) => [x.service, x.kind, x.expr, x.active])).toEqual([
      [A, 'backup', EXPR[A], true],
      [B, 'backup', EXPR[B], true],
    ]);
    for (const x of own) expect(SECONDS[x.service]).toContain(new Date(x.next).getUTCSeconds());
    expect(status.schedules.common).toMatchObject({ expr: '0 3 1 1 *', backup: true });

    // a firing of each, then a kill -9 right after A's next firing, and a restart on the same database
    const cronBackups = async (srv: RunningServer, name: string) =>
      (await srv.api('GET', `/jobs?type=backup&service=${name}&limit=100`)).json.jobs.filter((j: any) => j.source === 'cron');
    const end = Date.now() + 75_000;
    while (Date.now() < end && ((await cronBackups(s, A)).length < 1 || (await cronBackups(s, B)).length < 1)) await sleep(500);
    const first = { a: await cronBackups(s, A), b: await cronBackups(s, B) };
    expect(first.a.length, s.output().slice(-3000)).toBeGreaterThanOrEqual(1);
    expect(first.b.length, s.output().slice(-3000)).toBeGreaterThanOrEqual(1);
    for (const j of [...first.a, ...first.b]) await waitJob(s, j.id, 120_000);
    // just past one of A's slots: the restart comes within the same slot it may have fired
    while (new Date().getUTCSeconds() % 20 !== 0) await sleep(100);
    await sleep(300);
    await s.kill9();
    s = await server(s.dbPath);
    await sleep(25_000);
    for (const name of [A, B]) for (const j of await cronBackups(s, name)) await waitJob(s, j.id, 120_000);
    const jobs = { [A]: await cronBackups(s, A), [B]: await cronBackups(s, B) };
    await s.stop();

    const db = new Database(s.dbPath, { readonly: true });
    const slots = db.prepare("SELECT slot, backup_job_id AS backupJobId, skipped FROM cron_runs WHERE slot LIKE '% backup %'").all() as Slot[];
    db.close();
    for (const name of [A, B]) {
      const mine = slots.filter((x) => x.slot.endsWith(` backup ${name}`));
      const times = mine.map((x) => x.slot.split(' ')[0]!);
      // every slot once, each at a second of its own expression
      expect(new Set(times).size, JSON.stringify(mine)).toBe(times.length);
      for (const t of times) expect(SECONDS[name], t).toContain(new Date(t).getUTCSeconds());
      // one job per slot that was not skipped, and every cron job of the service belongs to one slot
      const fired = mine.filter((x) => x.backupJobId !== null).map((x) => x.backupJobId);
      expect(new Set(fired).size).toBe(fired.length);
      expect(jobs[name]!.map((j: any) => j.id).sort()).toEqual([...fired].sort());
      expect(jobs[name]!.every((j: any) => j.target.service === name)).toBe(true);
      // real backups: at least the first of each succeeded (later ones may be cut by the kill -9 and fail cleanly)
      expect(jobs[name]!.some((j: any) => j.state === 'succeeded'), JSON.stringify(jobs[name])).toBe(true);
    }
  });
});
