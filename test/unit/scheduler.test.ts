import { describe, it, expect, afterEach } from 'vitest';
import { openDb } from '../../src/db/index.js';
import { getJob } from '../../src/db/jobs.js';
import { cronRuns } from '../../src/db/cron.js';
import { fire } from '../../src/scheduler.js';
import { Worker } from '../../src/engine/worker.js';
import { sleep } from '../../src/engine/limits.js';
import type { JobKind } from '../../src/engine/types.js';
import { fakeDocker, makeDeps, tempDbPath, testConfig } from '../helpers/engine-fixture.js';

const S3 = {
  SWARM_UTILS_S3_DOMAIN: 's3.example.com',
  SWARM_UTILS_S3_BUCKET_NAME: 'b',
  SWARM_UTILS_S3_ACCESS_KEY: 'k',
  SWARM_UTILS_S3_SECRET_ACCESS_KEY: 's',
};
const workers: Worker[] = [];
afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop(100);
});

describe('cron run', () => {
  it('one run per slot: clean all, then backup all depending on it; the same slot never fires twice', () => {
    const deps = makeDeps(openDb(tempDbPath()), fakeDocker(), testConfig({ SWARM_UTILS_IS_CRON_CLEAN: 'true', SWARM_UTILS_IS_CRON_BACKUP: 'true', ...S3 }));
    const first = fire(deps, '2026-01-01T03:00:00.000Z')!;
    const clean = getJob(deps.db, first.clean!)!;
    const backup = getJob(deps.db, first.backup!)!;
    expect([clean.type, clean.targetKind, clean.source]).toEqual(['clean', 'all', 'cron']);
    expect([backup.type, backup.targetKind, backup.dependsOn]).toEqual(['backup', 'all', clean.id]);
    expect(fire(deps, '2026-01-01T03:00:00.000Z')).toBeNull();
    expect(cronRuns(deps.db)).toHaveLength(1);
  });

  it('a firing while the previous run is going is skipped and recorded', () => {
    const deps = makeDeps(openDb(tempDbPath()), fakeDocker(), testConfig({ SWARM_UTILS_IS_CRON_CLEAN: 'true' }));
    expect(fire(deps, '2026-01-01T03:00:00.000Z')?.clean).toBeTruthy();
    expect(fire(deps, '2026-01-02T03:00:00.000Z')).toBeNull();
    const runs = cronRuns(deps.db);
    expect(runs.find((r) => r.slot.startsWith('2026-01-02'))?.skipped).toMatch(/previous run still going/);
  });

  it('the backup all of a run starts only after its clean all ended', async () => {
    const order: string[] = [];
    const kind = (type: 'clean' | 'backup'): JobKind => ({
      type,
      locks: (t) => [`${type}_service_${t.name}`],
      steps: () => [{ name: 'work', run: async () => { order.push(`${type} start`); await sleep(100); order.push(`${type} end`); } }],
      allTargets: async () => [{ kind: 'service', name: 'a' }],
    });
    const deps = makeDeps(openDb(tempDbPath()), fakeDocker(), testConfig({ SWARM_UTILS_IS_CRON_CLEAN: 'true', SWARM_UTILS_IS_CRON_BACKUP: 'true', ...S3 }));
    const worker = new Worker(deps, { clean: kind('clean'), backup: kind('backup') }, { concurrency: 4, lockTimeoutMs: 10_000, retentionDays: 30 });
    workers.push(worker);
    await worker.start();
    const ids = fire(deps, '2026-01-01T03:00:00.000Z')!;
    worker.wake();
    expect((await worker.waitFor(ids.backup!, 5000))!.state).toBe('succeeded');
    expect(order).toEqual(['clean start', 'clean end', 'backup start', 'backup end']);
  });
});
