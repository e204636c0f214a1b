// The retention step of a backup against a real S3 protocol (a local s3rver) and a real SQLite file,
// with a fake Docker port: what it deletes, what it never deletes, its result, and a resumed step.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { getJob, insertJob, type JobRow } from '../../src/db/jobs.js';
import type { Db } from '../../src/db/index.js';
import type { StepContext } from '../../src/engine/types.js';
import { retention } from '../../src/jobs/backup/retention.js';
import { isAppError } from '../../src/errors.js';
import { fakeService } from '../helpers/api-fixture.js';
import { captureLog, fakeDocker, makeDeps, noHolds, openDb, tempDbPath, testConfig } from '../helpers/engine-fixture.js';
import { LOCAL_BUCKET, startLocalS3, type LocalS3 } from '../helpers/s3-local.js';

const DAY = 86_400_000;
/** a stamp `days` ago, at whole seconds */
const stampAgo = (days: number) => new Date(Math.floor((Date.now() - days * DAY) / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/:/g, '-');

let s3: LocalS3;
let prefix = '';
let n = 0;
beforeAll(async () => {
  s3 = await startLocalS3();
});
afterAll(async () => {
  await s3?.close();
});
beforeEach(() => {
  prefix = `ret${++n}`;
});

const key = (name: string) => `${prefix}/${name}`;
async function listed(): Promise<string[]> {
  const r = await s3.client.send(new ListObjectsV2Command({ Bucket: LOCAL_BUCKET, Prefix: `${prefix}/` }));
  return (r.Contents ?? []).map((o) => o.Key!).sort();
}

function setup(labels: Record<string, string>, env: Record<string, string> = {}) {
  const now = stampAgo(0);
  const resolved = {
    serviceId: 'svc1',
    service: 'web',
    stop: false,
    tasks: [],
    volumes: ['web_data'],
    stamp: now,
    pairs: [
      { index: 0, nodeId: 'n1', node: 'w1', volume: 'web_data', filename: `w1_web_data_${now}.tar.gz`, key: key(`w1_web_data_${now}.tar.gz`) },
      { index: 1, nodeId: 'n2', node: 'w2', volume: 'web_data', filename: `w2_web_data_${now}.tar.gz`, key: key(`w2_web_data_${now}.tar.gz`) },
    ],
  };
  const db: Db = openDb(tempDbPath());
  const job = insertJob(db, { type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: [] });
  db.prepare('UPDATE jobs SET result = ? WHERE id = ?').run(JSON.stringify({ archives: [{ node: 'w1', volume: 'web_data', key: resolved.pairs[0]!.key, size: 1 }] }), job.id);
  const docker = fakeDocker({
    getService: async () => fakeService('web', labels, { id: 'svc1' }),
    listNodes: async () => [],
  });
  const details: Record<string, Record<string, unknown>> = { resolve: resolved };
  const saves: unknown[] = [];
  const log = captureLog();
  const ctx = (): StepContext =>
    ({
      job: getJob(db, job.id) as JobRow,
      deps: makeDeps(db, docker, testConfig({ ...s3.env(prefix), ...env }), log.logger),
      log: log.logger,
      signal: new AbortController().signal,
      detail: details.retention ?? {},
      reentered: details.retention !== undefined,
      save: (d: Record<string, unknown>) => {
        saves.push(structuredClone(d));
        details.retention = d;
      },
      detailOf: ((step: string | { name: string }) => (typeof step === 'string' ? (details[step] ?? {}) : (details[step.name] ?? null))) as StepContext['detailOf'],
      setResult: () => undefined,
      holds: noHolds,
    }) as StepContext;
  return { db, job, ctx, details, saves, resolved, result: () => getJob(db, job.id)!.result as Record<string, unknown> };
}

describe('backup step: retention', () => {
  it('deletes the archives of each archived node and volume older than the retention; keeps the newest, the job’s own, other volumes and nodes, and foreign objects', async () => {
    const t = setup({ 'swarm-utils.backup.retention-days': '7' });
    const [own1, own2] = t.resolved.pairs.map((p) => p.key);
    const old = [key(`w1_web_data_${stampAgo(30)}.tar.gz`), key(`w1_web_data_${stampAgo(8)}.tar.gz.gpg`), key(`w2_web_data_${stampAgo(10)}.tar.gz`)];
    const kept = [
      own1!,
      own2!,
      key(`w1_web_data_${stampAgo(3)}.tar.gz`),
      // another volume whose name starts like this one, another node, another service's volume
      key(`w1_web_data_old_${stampAgo(30)}.tar.gz`),
      key(`w3_web_data_${stampAgo(30)}.tar.gz`),
      key(`w1_db_${stampAgo(30)}.tar.gz`),
      // not ours, though under the same prefix and starting like ours
      key('w1_web_data_notes.txt'),
      key(`w1_web_data_${stampAgo(30)}.tar.gz.bak`),
      key(`old/w1_web_data_${stampAgo(30)}.tar.gz`),
    ];
    for (const k of [...old, ...kept]) await s3.put(k);

    const out = await retention(t.ctx() as never);
    expect(await listed()).toEqual([...kept].sort());
    const deleted = (t.result().deleted as { key: string }[]).map((d) => d.key);
    expect(deleted.sort()).toEqual([...old].sort());
    expect(t.result().retentionDays).toBe(7);
    // the verify step's archives are still in the result
    expect(t.result().archives).toHaveLength(1);
    expect(t.result().deleted).toContainEqual({ node: 'w2', volume: 'web_data', key: old[2], size: 1, time: expect.any(String) });
    expect(out && 'output' in out ? out.output : '').toContain('3 archive(s) older than');
    // committed once, before deleting
    expect(t.saves).toHaveLength(1);
    expect((t.saves[0] as { expired: unknown[] }).expired).toHaveLength(3);
  });

  it('never the newest archive of a node and volume, even when all are past a very short retention', async () => {
    const t = setup({ 'swarm-utils.backup.retention-days': '0.00001' });
    // the job's own archive is not in the bucket here: the newest remaining one must stay anyway
    const older = key(`w1_web_data_${stampAgo(2)}.tar.gz`);
    const newest = key(`w1_web_data_${stampAgo(1)}.tar.gz`);
    await s3.put(older);
    await s3.put(newest);
    await retention(t.ctx() as never);
    expect(await listed()).toEqual([newest]);
  });

  it('a resumed step deletes the list it committed (what was deleted before the crash included) and lists it whole', async () => {
    const t = setup({}, { SWARM_UTILS_BACKUP_RETENTION_DAYS: '7' });
    const gone = key(`w1_web_data_${stampAgo(20)}.tar.gz`);
    const left = key(`w1_web_data_${stampAgo(21)}.tar.gz`);
    // appeared after the plan was committed: not this run's business
    const later = key(`w1_web_data_${stampAgo(22)}.tar.gz`);
    await s3.put(left);
    await s3.put(later);
    t.details.retention = {
      days: 7,
      cutoff: new Date(Date.now() - 7 * DAY).toISOString(),
      expired: [
        { node: 'w1', volume: 'web_data', key: gone, size: 1, time: '2026-01-01T00:00:00.000Z' },
        { node: 'w1', volume: 'web_data', key: left, size: 1, time: '2026-01-01T00:00:00.000Z' },
      ],
    };
    await retention(t.ctx() as never);
    expect(await listed()).toEqual([later]);
    expect((t.result().deleted as { key: string }[]).map((d) => d.key)).toEqual([gone, left]);
    expect(t.saves).toHaveLength(0);
  });

  it('skipped without a retention, and with the label at 0 (which overrides the configuration)', async () => {
    const none = setup({});
    await s3.put(key(`w1_web_data_${stampAgo(400)}.tar.gz`));
    expect(await retention(none.ctx() as never)).toMatchObject({ skipped: true, output: expect.stringContaining('every archive is kept') });
    const off = setup({ 'swarm-utils.backup.retention-days': '0' }, { SWARM_UTILS_BACKUP_RETENTION_DAYS: '1' });
    expect(await retention(off.ctx() as never)).toMatchObject({ skipped: true, output: expect.stringContaining('retention-days=0') });
    expect(await listed()).toHaveLength(1);
    expect(off.result().deleted).toBeUndefined();
  });

  it('a malformed label fails VALIDATION and deletes nothing', async () => {
    const t = setup({ 'swarm-utils.backup.retention-days': '7 days' }, { SWARM_UTILS_BACKUP_RETENTION_DAYS: '1' });
    await s3.put(key(`w1_web_data_${stampAgo(400)}.tar.gz`));
    const e = await retention(t.ctx() as never).catch((err: unknown) => err);
    expect(isAppError(e) && e.code).toBe('VALIDATION');
    expect(await listed()).toHaveLength(1);
  });

  it('S3 unreachable: S3_ERROR naming the endpoint, never the secret; nothing committed', async () => {
    const t = setup({ 'swarm-utils.backup.retention-days': '1' });
    const c = t.ctx();
    c.deps = { ...c.deps, config: testConfig({ ...s3.env(prefix), SWARM_UTILS_S3_DOMAIN: '127.0.0.1:1', SWARM_UTILS_S3_SECRET_ACCESS_KEY: 'never-shown-secret' }) };
    const e = await retention(c as never).catch((err: unknown) => err);
    expect(isAppError(e) && e.code).toBe('S3_ERROR');
    expect((e as Error).message).toContain('127.0.0.1:1');
    expect((e as Error).message).not.toContain('never-shown-secret');
    expect(t.saves).toHaveLength(0);
  });
});
