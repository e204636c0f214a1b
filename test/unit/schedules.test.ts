import { describe, it, expect, afterEach } from 'vitest';
import { openDb } from '../../src/db/index.js';
import { getJob, listJobs } from '../../src/db/jobs.js';
import { cronRuns } from '../../src/db/cron.js';
import { fire, fireServices, startScheduler } from '../../src/scheduler.js';
import { firesAt, nextRuns, scheduleOf, scheduleReport } from '../../src/schedules.js';
import { offenLabelsOf } from '../../src/offen-labels.js';
import { backupKind } from '../../src/jobs/backup.js';
import { drillKind } from '../../src/jobs/drill.js';
import { sleep } from '../../src/engine/limits.js';
import { fakeDocker, makeDeps, tempDbPath, testConfig } from '../helpers/engine-fixture.js';
import { apiFixture, fakeService } from '../helpers/api-fixture.js';

const S3 = {
  SWARM_UTILS_S3_DOMAIN: 's3.example.com',
  SWARM_UTILS_S3_BUCKET_NAME: 'b',
  SWARM_UTILS_S3_ACCESS_KEY: 'k',
  SWARM_UTILS_S3_SECRET_ACCESS_KEY: 's',
};
const ON = { SWARM_UTILS_IS_CRON_CLEAN: 'true', SWARM_UTILS_IS_CRON_BACKUP: 'true', SWARM_UTILS_IS_CRON_DRILL: 'true', ...S3 };
const enabled = (extra: Record<string, string> = {}) => ({ 'swarm-utils.backup.enable': 'true', ...extra });

const stops: (() => void)[] = [];
afterEach(() => {
  for (const s of stops.splice(0)) s();
});

describe('per-service schedule labels', () => {
  const config = testConfig(ON);

  it('in effect on a backup-enabled service with a valid expression and the cron of its kind on', () => {
    expect(scheduleOf(fakeService('a', enabled({ 'swarm-utils.backup.cron': '*/5 * * * *' })), 'backup', config)).toMatchObject({ active: true, reason: null });
    expect(scheduleOf(fakeService('a', { 'swarm-utils.backup.cron': '*/5 * * * *' }), 'backup', config)).toBeNull();
    expect(scheduleOf(fakeService('a', enabled()), 'backup', config)).toBeNull();
  });

  it('an invalid expression or the cron switched off is reported and leaves the service in the common run', () => {
    const bad = scheduleOf(fakeService('a', enabled({ 'swarm-utils.backup.cron': 'every day' })), 'backup', config)!;
    expect(bad.active).toBe(false);
    expect(bad.reason).toMatch(/swarm-utils\.backup\.cron: not a valid cron expression.*common run/);
    const off = scheduleOf(fakeService('a', enabled({ 'swarm-utils.drill.cron': '0 4 * * *' })), 'drill', testConfig({ ...S3, SWARM_UTILS_IS_CRON_BACKUP: 'true' }))!;
    expect(off).toMatchObject({ active: false, reason: expect.stringMatching(/SWARM_UTILS_IS_CRON_DRILL is false/) });
  });

  it('firesAt and nextRuns read the expression in SWARM_UTILS_CRON_TZ', () => {
    expect(firesAt('0 3 * * *', 'UTC', new Date('2026-01-01T03:00:00.000Z'))).toBe(true);
    expect(firesAt('0 3 * * *', 'UTC', new Date('2026-01-01T03:01:00.000Z'))).toBe(false);
    expect(firesAt('0 3 * * *', 'Europe/Berlin', new Date('2026-01-01T02:00:00.000Z'))).toBe(true);
    expect(firesAt('*/10 * * * * *', 'UTC', new Date('2026-01-01T03:00:20.000Z'))).toBe(true);
    expect(nextRuns('30 2 * * *', 'UTC', 2, new Date('2026-01-01T00:00:00Z')).map((d) => d.toISOString())).toEqual([
      '2026-01-01T02:30:00.000Z',
      '2026-01-02T02:30:00.000Z',
    ]);
  });
});

describe('per-service cron firing', () => {
  const services = [
    fakeService('hourly', enabled({ 'swarm-utils.backup.cron': '0 * * * *' })),
    fakeService('nightly', enabled({ 'swarm-utils.backup.cron': '0 3 * * *', 'swarm-utils.drill.cron': '0 5 * * 0' })),
    fakeService('common', enabled()),
  ];

  it('each service fires in its own slot, once; a backup at the time of the common run waits for its clean; a drill follows', () => {
    const deps = makeDeps(openDb(tempDbPath()), fakeDocker(), testConfig(ON));
    const at3 = new Date('2026-01-01T03:00:00.000Z');
    const common = fire(deps, at3.toISOString())!;
    const fired = fireServices(deps, at3, services);
    expect(fired.map((f) => `${f.kind} ${f.service}`)).toEqual(['backup hourly', 'backup nightly']);
    for (const f of fired) {
      const job = getJob(deps.db, f.jobId)!;
      expect([job.type, job.targetKind, job.target, job.source, job.dependsOn]).toEqual(['backup', 'service', f.service, 'cron', common.clean]);
      expect(job.locks).toEqual(backupKind.locks({ kind: 'service', name: f.service }));
    }
    // hourly has no drill schedule: a drill of what its backup made follows it; nightly is drilled on its own
    const drills = listJobs(deps.db, { type: 'drill', limit: 10 }).filter((j) => j.dependsOn === fired[0]!.jobId);
    expect(drills).toHaveLength(1);
    expect(drills[0]!.params).toEqual({ fromJob: fired[0]!.jobId });
    expect(listJobs(deps.db, { type: 'drill', limit: 10 }).filter((j) => j.dependsOn === fired[1]!.jobId)).toHaveLength(0);
    // a restart (or a second instance) firing the same time again adds nothing
    expect(fireServices(deps, at3, services)).toEqual([]);
    expect(fire(deps, at3.toISOString())).toBeNull();
    // the next hour: only hourly, and it was still queued: skipped and recorded
    const at4 = new Date('2026-01-01T04:00:00.000Z');
    expect(fireServices(deps, at4, services)).toEqual([]);
    expect(cronRuns(deps.db).find((r) => r.slot === '2026-01-01T04:00:00.000Z backup hourly')?.skipped).toMatch(/previous run still going/);
    // the common run's busy check does not look at the services' own jobs
    deps.db.prepare("UPDATE jobs SET state = 'succeeded', finished_at = 1 WHERE json_extract(params, '$.common') = 1").run();
    expect(fire(deps, '2026-01-02T03:00:00.000Z')).not.toBeNull();
    // a Sunday at 05:00: nightly's drill schedule
    const sunday = new Date('2026-01-04T05:00:00.000Z');
    const drill = fireServices(deps, sunday, services);
    expect(drill.map((f) => `${f.kind} ${f.service}`)).toEqual(['drill nightly']);
    expect(getJob(deps.db, drill[0]!.jobId)).toMatchObject({ type: 'drill', targetKind: 'service', target: 'nightly', dependsOn: null });
  });

  it("the common run's backup all and drill all leave out the services on their own schedule; an API backup all does not", async () => {
    const docker = fakeDocker({ listServices: async () => services });
    const deps = makeDeps(openDb(tempDbPath()), docker, testConfig(ON));
    const names = (ts: { name: string | null }[]) => ts.map((t) => t.name);
    expect(names(await backupKind.allTargets!(deps, { tokenHash: null, params: { common: true } }))).toEqual(['common']);
    expect(names(await backupKind.allTargets!(deps, { tokenHash: null, params: {} }))).toEqual(['hourly', 'nightly', 'common']);
    const parent = fire(deps, '2026-01-01T03:00:00.000Z')!;
    for (const name of ['nightly', 'common']) {
      deps.db
        .prepare("INSERT INTO jobs (type, state, target_kind, target, params, source, parent_id, locks, created_at) VALUES ('backup', 'succeeded', 'service', ?, '{}', 'parent', ?, '[]', 1)")
        .run(name, parent.backup);
    }
    expect(names(await drillKind.allTargets!(deps, { tokenHash: null, params: { fromJob: parent.backup!, common: true } }))).toEqual(['common']);
  });

  it('the scheduler fires each expression in use at its time, and reads labels again', async () => {
    let list = [fakeService('fast', enabled({ 'swarm-utils.backup.cron': '* * * * * *' }))];
    const docker = fakeDocker({ listServices: async () => list });
    const deps = makeDeps(openDb(tempDbPath()), docker, testConfig({ ...S3, SWARM_UTILS_IS_CRON_BACKUP: 'true', SWARM_UTILS_CRON_EXPR: '0 3 1 1 *' }));
    const s = startScheduler(deps, { wake: () => undefined }, { refreshMs: 60_000 });
    stops.push(s.stop);
    await s.refresh();
    await sleep(2500);
    const fast = listJobs(deps.db, { type: 'backup', limit: 10 });
    // one job: the next seconds were skipped while it is queued (no worker runs it), each slot recorded once
    expect(fast).toHaveLength(1);
    expect(fast[0]).toMatchObject({ targetKind: 'service', target: 'fast', source: 'cron' });
    const slots = cronRuns(deps.db).map((r) => r.slot);
    expect(slots.length).toBeGreaterThanOrEqual(2);
    expect(new Set(slots).size).toBe(slots.length);
    expect(slots.every((x) => x.endsWith(' backup fast'))).toBe(true);
    // the label removed: its expression is dropped at the next refresh, nothing fires any more
    list = [fakeService('fast', enabled())];
    await s.refresh();
    const before = cronRuns(deps.db).length;
    await sleep(1500);
    expect(cronRuns(deps.db).length).toBe(before);
  });
});

describe('GET /status: schedules and offen labels', () => {
  it('shows the next run of the common run and of each service, and the offen labels with what to use', async () => {
    const f = await apiFixture({
      kinds: {},
      env: { ...ON, SWARM_UTILS_CRON_EXPR: '0 3 * * *' },
      services: [
        fakeService('db', enabled({ 'swarm-utils.backup.cron': '0 */6 * * *', 'docker-volume-backup.stop-during-backup': 'true' }), {
          spec: { TaskTemplate: { ContainerSpec: { Labels: { 'docker-volume-backup.archive-pre': 'pg_dumpall --password=hunter2-secret > /dump.sql' } } } },
        }),
        fakeService('web', { 'swarm-utils.backup.cron': 'nope', 'swarm-utils.backup.enable': 'true', 'swarm-utils.backup.stop': 'true', 'docker-volume-backup.stop-during-backup': 'true' }),
      ],
    });
    try {
      const res = await f.app.inject({ url: '/status', headers: { authorization: 'Bearer admin-token' } });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.schedules.common).toMatchObject({ expr: '0 3 * * *', tz: 'UTC', backup: true, clean: true, drill: true });
      expect(Date.parse(body.schedules.common.next)).toBeGreaterThan(Date.now());
      const [db, web] = body.schedules.services;
      expect(db).toMatchObject({ service: 'db', kind: 'backup', expr: '0 */6 * * *', active: true });
      expect(new Date(db.next).getUTCHours() % 6).toBe(0);
      expect(web).toMatchObject({ service: 'web', active: false, next: null, reason: expect.stringMatching(/not a valid cron/) });
      expect(body.offenLabels).toEqual([
        expect.objectContaining({ service: 'db', on: 'container', label: 'docker-volume-backup.archive-pre', use: 'swarm-utils.backup.exec', migrated: false }),
        expect.objectContaining({ service: 'db', on: 'service', label: 'docker-volume-backup.stop-during-backup', value: 'true', migrated: false }),
        expect.objectContaining({ service: 'web', label: 'docker-volume-backup.stop-during-backup', use: 'swarm-utils.backup.enable=true, swarm-utils.backup.stop=true', migrated: true }),
      ]);
      // a command is not echoed: it may hold a password
      expect(res.body).not.toContain('hunter2');
    } finally {
      await f.close();
    }
  });

  it('every offen label gets an answer, an unknown one too', () => {
    const found = offenLabelsOf([fakeService('x', { 'docker-volume-backup.prune-post': 'x', 'docker-volume-backup.whatever': 'y', 'other.label': 'z' })]);
    expect(found.map((l) => [l.label, l.use, l.note])).toEqual([
      ['docker-volume-backup.prune-post', null, expect.stringMatching(/no equivalent/)],
      ['docker-volume-backup.whatever', null, expect.stringMatching(/not a label of offen/)],
    ]);
    expect(scheduleReport([], testConfig({})).common.next).toBeNull();
  });
});
