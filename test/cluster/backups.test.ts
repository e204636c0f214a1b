// The archives on the real test swarm and s3rver: retention after a real backup (what it deletes, what it
// never deletes, a kill -9 in the middle of its deletions), GET /backups with admin and label tokens, the
// last-verified metric, and the console's archives of a service in a real browser.
import path from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import Database from 'better-sqlite3';
import parsePrometheus from 'parse-prometheus-text-format';
import { DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import type { Browser } from 'playwright-core';
import { S3 } from '../helpers/testbed.js';
import { ADMIN_TOKEN, startServer, waitJob, type RunningServer } from '../helpers/server.js';
import { createAppService, execInTask, manager, removeServices, runningTasks, serverEnv, uid } from '../helpers/cluster.js';
import { instanceOf, removeHelperContainers, removeVolumes, s3Client, s3Env } from '../helpers/leftovers.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { ARTIFACTS, launchBrowser } from '../helpers/browser.js';
import { drillJob } from '../helpers/drill-rows.js';

// page.evaluate callbacks run in the browser; the project compiles without lib "dom"
declare const document: any;

const id = uid();
const PREFIX = `bl-${id}`;
const W1 = 'su-worker-1';
const W2 = 'su-worker-2';
const RET = `bl-ret-${id}`;
const OTHER = `bl-other-${id}`;
const RESTORED = `bl-rst-${id}`;
// stack-like names: the volume holds underscores, the node a dash
const VOL = { ret: `bl${id}_ret`, other: `bl${id}_other`, restored: `bl${id}_rst` };
/** backup token of RET, restore token of RESTORED */
const TOKEN = `bl-token-${id}`;
const OTHER_TOKEN = `bl-other-token-${id}`;

let proxy: Proxy;
let s: RunningServer;
let browser: Browser | undefined;
const instances = new Set<string>();

const DAY = 86_400_000;
const stampAgo = (ms: number) => new Date(Date.now() - ms).toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/:/g, '-');
const key = (name: string) => `${PREFIX}/${name}`;
const env = () => serverEnv({ ...s3Env(PREFIX, S3.secretKey), SWARM_UTILS_S3_DOMAIN: proxy.address });
const api = (method: string, url: string, token = ADMIN_TOKEN) => s.api(method, url, undefined, token);

async function put(name: string, body = `archive ${name}`): Promise<string> {
  await s3Client.send(new PutObjectCommand({ Bucket: S3.bucket, Key: key(name), Body: body }));
  return key(name);
}

/** every object under the test's prefix, nested ones too */
async function bucketKeys(): Promise<string[]> {
  const out = await s3Client.send(new ListObjectsV2Command({ Bucket: S3.bucket, Prefix: `${PREFIX}/` }));
  return (out.Contents ?? []).map((o) => o.Key!).sort();
}

async function setLabel(service: string, label: string, value: string): Promise<void> {
  const svc = await manager.getService(service).inspect();
  await manager.getService(service).update({ version: svc.Version.Index, ...svc.Spec, Labels: { ...svc.Spec.Labels, [label]: value } });
}

async function until<T>(what: string, ms: number, fn: () => Promise<T | null>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function backup(service: string): Promise<any> {
  const r = await s.api('POST', '/jobs', { type: 'backup', service, waitRes: true });
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  return r.json;
}

const vol = (name: string) => [{ Type: 'volume' as const, Source: name, Target: '/data' }];

beforeAll(async () => {
  // helpers on the workers upload through it too: it listens on the bridge address
  proxy = await startProxy({ listen: { host: '10.77.0.1', port: 0 }, target: { host: '10.77.0.1', port: 9000 } });
  s = await startServer(env());
  instances.add(instanceOf(s));
  await Promise.all([
    createAppService(RET, {
      constraints: [`node.hostname==${W1}`],
      mounts: vol(VOL.ret),
      labels: { 'swarm-utils.backup.enable': 'true', 'swarm-utils.backup.token': TOKEN, 'swarm-utils.backup.retention-days': '1' },
    }),
    createAppService(OTHER, {
      constraints: [`node.hostname==${W2}`],
      mounts: vol(VOL.other),
      labels: { 'swarm-utils.backup.enable': 'true', 'swarm-utils.backup.token': OTHER_TOKEN },
    }),
    createAppService(RESTORED, { constraints: [`node.hostname==${W2}`], mounts: vol(VOL.restored), labels: { 'swarm-utils.restore.token': TOKEN } }),
  ]);
  const [task] = await runningTasks(RET);
  await execInTask(task, ['sh', '-c', 'mkdir -p /data/a/b && echo one > /data/a/b/one.txt && head -c 5000 /dev/urandom > /data/blob']);
});

afterAll(async () => {
  proxy?.resume();
  await browser?.close();
  if (s && s.proc.exitCode === null && s.proc.signalCode === null) await s.stop();
  await proxy?.close();
  await removeServices(RET, OTHER, RESTORED);
  await removeHelperContainers(instances);
  await removeVolumes(Object.values(VOL));
  const keys = await bucketKeys().catch(() => []);
  if (keys.length) await s3Client.send(new DeleteObjectsCommand({ Bucket: S3.bucket, Delete: { Objects: keys.map((Key) => ({ Key })) } }));
});

describe('retention and the archives listing on the real swarm', () => {
  /** the objects the retention must never touch, under the same prefix */
  let untouched: string[] = [];
  let newest = '';

  it('retention with a short period: older archives of that node and volume are deleted, the newest stays; another volume’s and node’s archives and foreign objects are untouched', async () => {
    const old = [await put(`${W1}_${VOL.ret}_2020-01-01T00-00-00Z.tar.gz`), await put(`${W1}_${VOL.ret}_2020-06-01T00-00-00Z.tar.gz.gpg`)];
    const recent = await put(`${W1}_${VOL.ret}_${stampAgo(2 * 3600_000)}.tar.gz`);
    untouched = [
      // another volume whose name starts like this one's, the same volume name on another node, another service's volume
      await put(`${W1}_${VOL.ret}_old_2020-01-01T00-00-00Z.tar.gz`),
      await put(`${W2}_${VOL.ret}_2020-01-01T00-00-00Z.tar.gz`),
      await put(`${W2}_${VOL.restored}_2021-01-01T00-00-00Z.tar.gz`),
      // not ours, though under the same prefix and starting like ours
      await put(`${W1}_${VOL.ret}_notes.txt`),
      await put(`${W1}_${VOL.ret}_2020-01-01T00-00-00Z.tar.gz.bak`),
      await put(`archive/${W1}_${VOL.ret}_2020-01-01T00-00-00Z.tar.gz`),
    ];

    const first = await backup(RET);
    expect(first.steps.map((x: any) => [x.name, x.state])).toEqual([
      ['resolve', 'done'],
      ['exec', 'skipped'],
      ['prepare', 'skipped'],
      ['stop', 'skipped'],
      ['stage', 'skipped'],
      ['archive', 'done'],
      ['start', 'skipped'],
      ['archive-staged', 'skipped'],
      ['verify', 'done'],
      ['retention', 'done'],
      ['unstage', 'skipped'],
    ]);
    const [made] = first.result.archives;
    expect(first.result.retentionDays).toBe(1);
    expect(first.result.deleted.map((d: any) => d.key).sort()).toEqual([...old].sort());
    expect(first.result.deleted[0]).toMatchObject({ node: W1, volume: VOL.ret, size: expect.any(Number), time: expect.stringMatching(/^2020-/) });
    expect(await bucketKeys()).toEqual([made.key, recent, ...untouched].sort());

    // a retention shorter than the backup itself took: every archive of that node and volume is past it, the newest stays
    await setLabel(RET, 'swarm-utils.backup.retention-days', '0.00001');
    // names have a resolution of one second: a backup in the same second would take the first one's name
    await new Promise((r) => setTimeout(r, 1100));
    const second = await backup(RET);
    expect(second.result.archives[0].key).not.toBe(made.key);
    newest = second.result.archives[0].key;
    expect(second.result.deleted.map((d: any) => d.key).sort()).toEqual([made.key, recent].sort());
    expect(await bucketKeys()).toEqual([newest, ...untouched].sort());
    expect(second.steps.find((x: any) => x.name === 'retention').output).toContain('2 archive(s) older than');
  });

  it('kill -9 during the retention’s deletions: the restarted process deletes what it had listed and the result lists it all; the new archive stays', async () => {
    await setLabel(RET, 'swarm-utils.backup.retention-days', '1');
    await new Promise((r) => setTimeout(r, 1100));
    const old = [await put(`${W1}_${VOL.ret}_2019-01-01T00-00-00Z.tar.gz`), await put(`${W1}_${VOL.ret}_2019-02-01T00-00-00Z.tar.gz`)];
    // the first deletion is held at the S3 proxy: the list to delete is committed, nothing is deleted yet
    proxy.pauseOn(/^DELETE \/swarm-utils-test\//);
    const submitted = await s.api('POST', '/jobs', { type: 'backup', service: RET });
    expect(submitted.status).toBe(202);
    const jobId = submitted.json.id;
    await until('the retention holding its first deletion', 120_000, async () => {
      const j = (await api('GET', `/jobs/${jobId}`)).json;
      expect(j.state).not.toBe('failed');
      return proxy.paused && j.steps.find((x: any) => x.name === 'retention')?.state === 'running' ? j : null;
    });
    await s.kill9();
    // appeared after the list was committed: not this job's to delete
    const later = await put(`${W1}_${VOL.ret}_2019-03-01T00-00-00Z.tar.gz`);
    proxy.resume();
    s = await startServer(env(), { dbPath: s.dbPath, port: s.port });
    const done = await waitJob(s, jobId);
    expect(done.state, JSON.stringify(done)).toBe('succeeded');
    expect(done.result.deleted.map((d: any) => d.key).sort()).toEqual([...old].sort());
    const keys = await bucketKeys();
    for (const k of old) expect(keys).not.toContain(k);
    expect(keys).toContain(later);
    expect(keys).toContain(done.result.archives[0].key);
    expect(keys).toContain(newest);
    for (const k of untouched) expect(keys).toContain(k);
    newest = done.result.archives[0].key;
  });

  it('GET /backups: admin sees every archive newest first, without foreign objects; a label token only the volumes of services it may back up or restore', async () => {
    const other = await backup(OTHER);
    const all = (await api('GET', '/backups?limit=1000')).json;
    const keys = all.backups.map((b: any) => b.key);
    for (const k of [newest, other.result.archives[0].key, key(`${W2}_${VOL.restored}_2021-01-01T00-00-00Z.tar.gz`), key(`${W1}_${VOL.ret}_old_2020-01-01T00-00-00Z.tar.gz`)]) expect(keys).toContain(k);
    for (const k of keys) expect(k).toMatch(new RegExp(`^${PREFIX}/[^/]+_\\d{4}-\\d{2}-\\d{2}T\\d{2}-\\d{2}-\\d{2}Z\\.tar\\.gz(\\.gpg|\\.age)?$`));
    const times = all.backups.map((b: any) => Date.parse(b.time));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    const mine = all.backups.find((b: any) => b.key === newest);
    const head = (await s3Client.send(new ListObjectsV2Command({ Bucket: S3.bucket, Prefix: newest }))).Contents![0]!;
    expect(mine).toMatchObject({ node: W1, volume: VOL.ret, size: head.Size, encrypted: false });

    // backup token of RET and restore token of RESTORED: those two volumes, on every node
    const labelled = (await api('GET', '/backups?limit=1000', TOKEN)).json.backups;
    expect(new Set(labelled.map((b: any) => b.volume))).toEqual(new Set([VOL.ret, VOL.restored]));
    expect(labelled.map((b: any) => b.key)).toContain(key(`${W2}_${VOL.ret}_2020-01-01T00-00-00Z.tar.gz`));
    const otherOnly = (await api('GET', '/backups', OTHER_TOKEN)).json.backups;
    expect(otherOnly.map((b: any) => b.key)).toEqual([other.result.archives[0].key]);
    // a service it may not read, or that does not exist: the same 403
    for (const svc of [OTHER, `nope-${id}`]) {
      const r = await api('GET', `/backups?service=${svc}`, TOKEN);
      expect(r.status).toBe(403);
      expect(r.json.error.code).toBe('FORBIDDEN');
    }
    expect((await api('GET', `/backups?service=nope-${id}`)).status).toBe(404);
    expect((await api('GET', '/backups?limit=0', TOKEN)).json.error.code).toBe('VALIDATION');

    // service= with node= and paging
    const page1 = (await api('GET', `/backups?service=${RET}&node=${W1}&limit=1`, TOKEN)).json;
    expect(page1.backups.map((b: any) => b.key)).toEqual([newest]);
    const page2 = (await api('GET', `/backups?service=${RET}&node=${W1}&limit=1&before=${encodeURIComponent(page1.next)}`, TOKEN)).json;
    expect(page2.backups).toHaveLength(1);
    expect(Date.parse(page2.backups[0].time)).toBeLessThan(Date.parse(page1.backups[0].time));
  });

  it('a successful drill recorded for an archive shows as verifiedAt in GET /backups and in the last-verified metric', async () => {
    const finishedAt = Date.now() - 1000;
    // the drill job type records its result this way (README "Restore drills"); written to the server's database as it would
    const db = new Database(s.dbPath);
    try {
      db.pragma('busy_timeout = 5000');
      drillJob(db, { service: RET, state: 'succeeded', finishedAt, result: { key: newest, files: 2, bytes: 5004, ok: true } });
    } finally {
      db.close();
    }
    const listed = (await api('GET', `/backups?service=${RET}&node=${W1}&limit=1`, TOKEN)).json.backups[0];
    expect(listed).toMatchObject({ key: newest, verifiedAt: new Date(finishedAt).toISOString(), lastDrill: { ok: true, at: new Date(finishedAt).toISOString() } });
    const r = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const family = parsePrometheus(await r.text()).find((f) => f.name === 'swarm_utils_backup_last_verified_timestamp_seconds');
    const series = Object.fromEntries(family!.metrics.map((m) => [`${m.labels!.service}/${m.labels!.volume}/${m.labels!.node}`, Number(m.value)]));
    expect(series[`${RET}/${VOL.ret}/${W1}`]).toBe(finishedAt / 1000);
    expect(series[`${OTHER}/${VOL.other}/${W2}`]).toBe(0);
  });

  it('console: the service view lists its archives per volume (time, node, size) and the last drill, for a label token', async () => {
    browser = await launchBrowser();
    const ctx = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    try {
      const page = await ctx.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${s.url}/`);
      await page.locator('#token').fill(TOKEN);
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name: 'Jobs', level: 1, exact: true }).waitFor();
      await page.goto(`${s.url}/#/services/${RET}`);
      await page.getByRole('heading', { name: 'Archives', level: 2 }).waitFor();
      const table = page.locator(`table.archives[data-volume="${VOL.ret}"]`);
      await table.waitFor();
      const expected = (await api('GET', `/backups?service=${RET}&limit=200`, TOKEN)).json.backups;
      const rows = await table.locator('tbody tr').evaluateAll((trs) =>
        trs.map((tr) => ({
          key: tr.getAttribute('data-key'),
          node: tr.getAttribute('data-node'),
          time: tr.querySelector('.archive-time time')?.getAttribute('datetime'),
          bytes: Number(tr.querySelector('.archive-size')?.getAttribute('data-bytes')),
          drill: tr.querySelector('.archive-drill')?.textContent,
        })),
      );
      expect(rows).toEqual(expected.map((b: any) => ({ key: b.key, node: b.node, time: b.time, bytes: b.size, drill: expect.any(String) })));
      expect(rows[0]!.key).toBe(newest);
      expect(rows[0]!.drill).toContain('passed');
      expect(rows.at(-1)!.drill).toBe('never');
      // the volumes table: the last drill of the volume on its node
      const drillCell = page.locator(`article[data-service="${RET}"] tr[data-volume="${VOL.ret}"][data-node="${W1}"] td.last-drill`);
      await expect.poll(() => drillCell.textContent()).toContain('passed');
      // nothing of another service's volumes
      expect(await page.locator(`table.archives[data-volume="${VOL.other}"]`).count()).toBe(0);
      expect(await page.evaluate(() => document.body.textContent)).not.toContain(VOL.other);
      await page.screenshot({ path: path.join(ARTIFACTS, 'archives.png'), fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });
});
