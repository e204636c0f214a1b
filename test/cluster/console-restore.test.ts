// The console's drills and restores in a real headless browser (Debian's chromium + playwright-core),
// against the real server on the test swarm: a chosen archive and a volume's newest drilled from the page,
// a truncated archive failing its drill, a restore confirmed by typing the service name, the API's error in
// the restore dialog, drill all, and what label tokens without the right do not see.
import path from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { S3 } from '../helpers/testbed.js';
import { ADMIN_TOKEN, startServer, type RunningServer } from '../helpers/server.js';
import { createAppService, execInTask, hostnameOf, removeServices, runningTasks, serverEnv, uid, waitRunning } from '../helpers/cluster.js';
import { deleteS3Prefix, instanceOf, removeHelperContainers, removeVolumes, s3Client } from '../helpers/leftovers.js';
import { ARTIFACTS, launchBrowser } from '../helpers/browser.js';

// page.evaluate callbacks run in the browser; the project compiles without lib "dom"
declare const document: any;

const id = uid();
const PREFIX = `cr-${id}`;
const W1 = 'su-worker-1';
const W2 = 'su-worker-2';
const APP = `cr-app-${id}`;
const VOL = `cr-data-${id}`;
/** one task on each worker, each with its own volume of the same name */
const MULTI = `cr-multi-${id}`;
const MVOL = `cr-mdata-${id}`;
const BACKUP_TOKEN = `cr-backup-token-${id}`;
const RESTORE_TOKEN = `cr-restore-token-${id}`;
const FINAL = ['succeeded', 'failed', 'canceled'];

const ENV = serverEnv({
  SWARM_UTILS_S3_DOMAIN: S3.endpoint,
  SWARM_UTILS_S3_HTTPS: 'false',
  SWARM_UTILS_S3_BUCKET_NAME: S3.bucket,
  SWARM_UTILS_S3_ACCESS_KEY: S3.accessKey,
  SWARM_UTILS_S3_SECRET_ACCESS_KEY: S3.secretKey,
  SWARM_UTILS_S3_PATH: PREFIX,
});

interface Archive {
  key: string;
  node: string;
  volume: string;
  time: string;
  size: number;
  files?: number;
  bytes?: number;
}

let s: RunningServer;
let browser: Browser;
const contexts: BrowserContext[] = [];
/** the older (v1) and the newer (v2) archive of the volume, as GET /backups lists them */
let older: Archive;
let newer: Archive;
/** a truncated copy of `older` under an older name (its drill fails) */
const TRUNCATED = `${PREFIX}/${W1}_${VOL}_2001-01-01T00-00-00Z.tar.gz`;

const sh = async (script: string): Promise<string> => execInTask((await runningTasks(APP))[0], ['sh', '-c', script]);
/** runs `script` in the task of MULTI on `node` */
async function shOn(node: string, script: string): Promise<string> {
  for (const t of await runningTasks(MULTI)) if ((await hostnameOf(t.NodeID)) === node) return execInTask(t, ['sh', '-c', script]);
  throw new Error(`${MULTI} runs no task on ${node}`);
}
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function backup(service = APP): Promise<Archive> {
  const r = await s.api('POST', '/jobs', { type: 'backup', service, waitRes: true });
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  const key = r.json.result.archives[0].key;
  const listed = (await s.api('GET', `/backups?service=${service}`)).json.backups.find((b: Archive) => b.key === key);
  expect(listed, key).toBeTruthy();
  return listed;
}

beforeAll(async () => {
  [s, browser] = await Promise.all([startServer(ENV), launchBrowser()]);
  await createAppService(MULTI, {
    replicas: 2,
    onWorkers: true,
    mounts: [{ Type: 'volume', Source: MVOL, Target: '/data' }],
    labels: { 'swarm-utils.backup.enable': 'true', 'swarm-utils.restore.token': RESTORE_TOKEN },
  });
  await createAppService(APP, {
    constraints: [`node.hostname==${W1}`],
    mounts: [{ Type: 'volume', Source: VOL, Target: '/data' }],
    labels: {
      'swarm-utils.backup.enable': 'true',
      // stopped and staged: the archive's file count is recorded, and a drill compares with it
      'swarm-utils.backup.stop': 'true',
      'swarm-utils.backup.token': BACKUP_TOKEN,
      'swarm-utils.restore.token': RESTORE_TOKEN,
    },
  });
  await sh('cd /data && echo v1 > state.txt && mkdir -p d && head -c 20000 /dev/urandom > d/blob.bin');
  older = await backup();
  // archive names have second resolution
  await pause(1100);
  await waitRunning(APP, 1);
  await sh('cd /data && echo v2 > state.txt && echo two > two.txt');
  newer = await backup();
  await pause(1100);
  await waitRunning(APP, 1);
  await sh('cd /data && echo v3 > state.txt && echo three > three.txt');
}, 240_000);

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
  const instance = s ? instanceOf(s) : null;
  await s?.stop();
  await removeServices(APP, MULTI);
  if (instance) await removeHelperContainers([instance]);
  await removeVolumes([VOL, MVOL]);
  await deleteS3Prefix(PREFIX);
}, 120_000);

/** a fresh tab (its own sessionStorage), signed in with `token`; page errors fail the test */
async function signedIn(token: string): Promise<{ page: Page; errors: string[] }> {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  contexts.push(ctx);
  const page = await ctx.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${s.url}/`);
  await page.locator('#token').fill(token);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Jobs', level: 1, exact: true }).waitFor();
  return { page, errors };
}

async function serviceView(page: Page): Promise<void> {
  await page.goto(`${s.url}/#/services/${APP}`);
  await page.getByRole('heading', { name: APP, level: 1, exact: true }).waitFor();
  await page.locator(`table.archives[data-volume="${VOL}"] tbody tr`).first().waitFor();
}

const archiveRow = (page: Page, key: string) => page.locator(`table.archives tr[data-key="${key}"]`);
const volumeDrill = (page: Page) => page.locator(`article[data-service="${APP}"] tr[data-volume="${VOL}"][data-node="${W1}"] td.last-drill`);
const stateOf = (page: Page) => page.locator('.job .facts .badge').first().textContent();

/** the job view the page went to after a Start: its id, once it ended (the page polls by itself) */
async function jobEnds(page: Page, heading: string): Promise<{ id: number; state: string; seen: string[] }> {
  await page.waitForURL(/#\/jobs\/\d+$/);
  const jobId = Number(page.url().split('/').pop());
  await page.getByRole('heading', { name: `Job #${jobId}: ${heading}` }).waitFor();
  const seen: string[] = [];
  const end = Date.now() + 180_000;
  for (;;) {
    const state = (await stateOf(page))?.trim() ?? '';
    if (seen.at(-1) !== state) seen.push(state);
    if (FINAL.includes(state) || Date.now() > end) return { id: jobId, state, seen };
    await page.waitForTimeout(250);
  }
}

describe('drills and restores from the console, in a real browser', () => {
  it('a label token that may back up but not restore sees the archives but no drill or restore button, and no drill all', async () => {
    const { page, errors } = await signedIn(BACKUP_TOKEN);
    await serviceView(page);
    expect(await page.locator('table.archives tbody tr').count()).toBe(2);
    expect(await page.locator('[data-action="restore"], [data-action="drill"], [data-action="drill-volume"]').count()).toBe(0);
    expect(await page.getByRole('button', { name: /^(Restore|Drill)/ }).count()).toBe(0);
    expect(await page.locator('table.archives th', { hasText: 'Actions' }).count()).toBe(0);
    expect(await page.locator(`article[data-service="${APP}"] button[data-action]`).evaluateAll((b) => b.map((x) => x.getAttribute('data-action')))).toEqual(['backup']);
    await page.getByRole('link', { name: 'Services', exact: true }).click();
    await page.locator(`article[data-service="${APP}"]`).waitFor();
    expect(await page.getByRole('button', { name: 'Back up all services…' }).count()).toBe(1);
    expect(await page.getByRole('button', { name: /^(Drill|Restore)/ }).count()).toBe(0);
    expect(errors).toEqual([]);
  });

  it('admin drills a chosen archive, then the newest of the volume, from the page; each last drill changes', async () => {
    const { page, errors } = await signedIn(ADMIN_TOKEN);
    await serviceView(page);
    expect(await volumeDrill(page).textContent()).toBe('never');
    expect(await archiveRow(page, older.key).locator('.archive-drill').textContent()).toBe('never');

    // a chosen archive: the dialog names it
    await archiveRow(page, older.key).getByRole('button', { name: /^Drill/ }).click();
    const dialog = page.getByRole('dialog', { name: `Drill an archive of service ${APP}` });
    await dialog.waitFor();
    const facts = dialog.locator('.archive-facts');
    expect(await facts.textContent()).toContain(older.key);
    expect(await facts.textContent()).toContain(W1);
    expect(await facts.locator('time').getAttribute('datetime')).toBe(older.time);
    expect(await facts.locator('[data-bytes]').getAttribute('data-bytes')).toBe(String(older.size));
    await dialog.getByRole('button', { name: 'Start' }).click();
    const first = await jobEnds(page, `drill of service ${APP}`);
    expect(first.state, `states seen: ${first.seen.join(' → ')}\n${await page.locator('main').textContent()}`).toBe('succeeded');
    const job = (await s.api('GET', `/jobs/${first.id}`)).json;
    expect(job.params).toEqual({ volume: VOL, key: older.key });
    // v1: state.txt ("v1\n") and d/blob.bin (20000 bytes)
    expect(job.result).toMatchObject({ key: older.key, ok: true, files: 2, bytes: 20_003 });
    // compared with the counts recorded when the archive was staged, when it was
    expect(job.result.expected).toEqual(older.files === undefined ? undefined : { files: 2, bytes: 20_003 });
    // the result, read for a person: the archive, what it held, what was recorded, passed
    const row = page.locator(`table.drills tr[data-key="${older.key}"]`);
    expect(await row.getAttribute('data-ok')).toBe('true');
    expect(await row.locator('.drill-count').textContent()).toBe('2 files, 19.5 KiB');
    expect(await row.locator('.drill-outcome').textContent()).toContain('passed');
    expect(await page.locator('ol.steps > li').evaluateAll((lis) => lis.map((li) => [li.getAttribute('data-step'), li.getAttribute('data-state')]))).toEqual([
      ['resolve', 'done'],
      ['unpack', 'done'],
      ['cleanup', 'done'],
      ['check', 'done'],
    ]);
    await page.screenshot({ path: path.join(ARTIFACTS, 'drill-job.png'), fullPage: true });

    // back on the service: the volume's last drill and the archive's are this job, passed
    await page.getByRole('link', { name: `service ${APP}`, exact: true }).first().click();
    await page.getByRole('heading', { name: APP, level: 1, exact: true }).waitFor();
    await expect.poll(() => volumeDrill(page).textContent()).toContain(`#${first.id}`);
    expect(await volumeDrill(page).textContent()).toContain('passed');
    await expect.poll(() => archiveRow(page, older.key).locator('.archive-drill').textContent()).toContain(`#${first.id}`);
    expect(await archiveRow(page, newer.key).locator('.archive-drill').textContent()).toBe('never');

    // the newest archive of the volume: no key in the request, the API picks it
    await page.getByRole('button', { name: new RegExp(`^Drill the newest archive\\s+of volume ${VOL}`) }).click();
    const newest = page.getByRole('dialog', { name: `Drill the newest archive of volume ${VOL}` });
    await newest.getByRole('button', { name: 'Start' }).click();
    const second = await jobEnds(page, `drill of service ${APP}`);
    expect(second.state).toBe('succeeded');
    const job2 = (await s.api('GET', `/jobs/${second.id}`)).json;
    expect(job2.params).toEqual({ volume: VOL });
    expect(job2.result).toMatchObject({ key: newer.key, ok: true });
    await page.getByRole('link', { name: `service ${APP}`, exact: true }).first().click();
    await expect.poll(() => volumeDrill(page).textContent()).toContain(`#${second.id}`);
    await expect.poll(() => archiveRow(page, newer.key).locator('.archive-drill').textContent()).toContain(`#${second.id}`);
    expect(await archiveRow(page, newer.key).locator('.archive-drill').textContent()).toContain('passed');
    expect(errors).toEqual([]);
  });

  it("a truncated archive drilled from the page fails DRILL_FAILED with the API's message; its last drill says failed", async () => {
    const full = Buffer.from(await (await s3Client.send(new GetObjectCommand({ Bucket: S3.bucket, Key: older.key }))).Body!.transformToByteArray());
    await s3Client.send(new PutObjectCommand({ Bucket: S3.bucket, Key: TRUNCATED, Body: full.subarray(0, Math.floor(full.length / 2)) }));
    const { page, errors } = await signedIn(ADMIN_TOKEN);
    await serviceView(page);
    await archiveRow(page, TRUNCATED).getByRole('button', { name: /^Drill/ }).click();
    await page.getByRole('dialog', { name: `Drill an archive of service ${APP}` }).getByRole('button', { name: 'Start' }).click();
    const ended = await jobEnds(page, `drill of service ${APP}`);
    expect(ended.state).toBe('failed');
    const job = (await s.api('GET', `/jobs/${ended.id}`)).json;
    expect(job.error.code).toBe('DRILL_FAILED');
    const box = await page.locator('.errorbox').textContent();
    expect(box).toContain('DRILL_FAILED');
    expect(box).toContain(job.error.message);
    const row = page.locator(`table.drills tr[data-key="${TRUNCATED}"]`);
    expect(await row.getAttribute('data-ok')).toBe('false');
    expect(await row.locator('.drill-outcome').textContent()).toContain('failed');
    // the cleanup step ran: no scratch volume left behind by the failed drill
    expect(await page.locator('li[data-step="cleanup"]').getAttribute('data-state')).toBe('done');
    await page.getByRole('link', { name: `service ${APP}`, exact: true }).first().click();
    await expect.poll(() => archiveRow(page, TRUNCATED).locator('.archive-drill').textContent()).toContain('failed');
    await expect.poll(() => volumeDrill(page).textContent()).toContain(`#${ended.id}`);
    expect(await volumeDrill(page).textContent()).toContain('failed');
    expect(errors).toEqual([]);
  });

  it("the API's error stays in the restore dialog (the archive left the bucket after the dialog opened); nothing is created", async () => {
    const { page, errors } = await signedIn(RESTORE_TOKEN);
    await serviceView(page);
    await archiveRow(page, TRUNCATED).getByRole('button', { name: /^Restore/ }).click();
    const dialog = page.getByRole('dialog', { name: `Restore service ${APP}` });
    await dialog.locator('#restore-archive').waitFor();
    expect(await dialog.locator('#restore-archive').inputValue()).toBe(TRUNCATED);
    await dialog.getByLabel('Type the service name to confirm').fill(APP);
    await s3Client.send(new DeleteObjectCommand({ Bucket: S3.bucket, Key: TRUNCATED }));
    await dialog.getByRole('button', { name: 'Restore', exact: true }).click();
    const alert = dialog.getByRole('alert');
    await expect.poll(() => alert.textContent()).toContain('(NOT_FOUND)');
    expect(await alert.textContent()).toContain(`no object ${TRUNCATED}`);
    expect(await alert.textContent()).not.toMatch(/\bat .*\.(js|ts):\d+/);
    expect(await dialog.isVisible()).toBe(true);
    expect(page.url()).toContain(`#/services/${APP}`);
    expect((await s.api('GET', `/jobs?type=restore&service=${APP}`)).json.jobs).toEqual([]);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    expect(await page.locator('#nav').isVisible()).toBe(true);
    expect(errors).toEqual([]);
  });

  it('a restore token restores from the page: the dialog names the archive, Restore stays disabled until the service name is typed, the job succeeds', async () => {
    const { page, errors } = await signedIn(RESTORE_TOKEN);
    // its actions: restore and drill, on the service and drill all; no backup
    await page.getByRole('link', { name: 'Services', exact: true }).click();
    const card = page.locator(`article[data-service="${APP}"]`);
    await card.waitFor();
    expect(await card.locator('button[data-action]').evaluateAll((b) => b.map((x) => x.getAttribute('data-action')))).toEqual(['restore', 'drill']);
    expect(await page.getByRole('button', { name: 'Drill all services…' }).count()).toBe(1);
    expect(await page.getByRole('button', { name: /^Back up/ }).count()).toBe(0);
    // the service's Restore…: the newest archive of the node it runs on is chosen at first
    await card.getByRole('button', { name: new RegExp(`^Restore\\s+service ${APP}`) }).click();
    let dialog = page.getByRole('dialog', { name: `Restore service ${APP}` });
    await dialog.locator('#restore-archive').waitFor();
    expect(await dialog.locator('#restore-archive').inputValue()).toBe(newer.key);
    await dialog.getByRole('button', { name: 'Cancel' }).click();

    // an archive of the list: the older one (v1)
    await serviceView(page);
    await archiveRow(page, older.key).getByRole('button', { name: /^Restore/ }).click();
    dialog = page.getByRole('dialog', { name: `Restore service ${APP}` });
    await dialog.locator('#restore-archive').waitFor();
    expect(await dialog.locator('#restore-archive').inputValue()).toBe(older.key);
    const facts = dialog.locator('.archive-facts');
    expect(await facts.textContent()).toContain(older.key);
    expect(await facts.textContent()).toContain(W1);
    expect(await facts.locator('time').getAttribute('datetime')).toBe(older.time);
    expect(await facts.locator('[data-bytes]').getAttribute('data-bytes')).toBe(String(older.size));
    expect(await dialog.locator('.where').textContent()).toContain(`volume ${VOL} on node ${W1}`);
    expect(await dialog.getByLabel('Back up the current content first (safety backup)').isChecked()).toBe(true);
    // every field of the dialog has a label
    expect(await page.evaluate(() => [...document.querySelectorAll('dialog input, dialog select')].filter((e: any) => !e.labels?.length).map((e: any) => e.outerHTML))).toEqual([]);

    const submit = dialog.getByRole('button', { name: 'Restore', exact: true });
    const confirm = dialog.getByLabel('Type the service name to confirm');
    expect(await submit.isDisabled()).toBe(true);
    await confirm.pressSequentially(APP.slice(0, -1));
    expect(await submit.isDisabled()).toBe(true);
    // Enter with a name that does not match submits nothing
    await confirm.press('Enter');
    await confirm.fill(APP.toUpperCase());
    expect(await submit.isDisabled()).toBe(true);
    await confirm.fill(`${APP} `);
    expect(await submit.isDisabled()).toBe(true);
    await page.waitForTimeout(500);
    expect((await s.api('GET', `/jobs?type=restore&service=${APP}`)).json.jobs).toEqual([]);
    await confirm.fill('');
    await confirm.pressSequentially(APP);
    expect(await submit.isEnabled()).toBe(true);
    await page.screenshot({ path: path.join(ARTIFACTS, 'restore-dialog.png'), fullPage: false });

    await submit.click();
    const ended = await jobEnds(page, `restore of service ${APP}`);
    expect(ended.state, `states seen: ${ended.seen.join(' → ')}\n${await page.locator('main').textContent()}`).toBe('succeeded');
    expect(ended.seen).toContain('running');
    const job = (await s.api('GET', `/jobs/${ended.id}`)).json;
    expect(job.params).toEqual({ volume: VOL, key: older.key, safetyBackup: true });
    const steps = await page.locator('ol.steps > li').evaluateAll((lis) => Object.fromEntries(lis.map((li) => [li.getAttribute('data-step'), li.getAttribute('data-state')])));
    expect(steps).toMatchObject({ 'safety-backup': 'done', download: 'done', swap: 'done', start: 'done', verify: 'done' });
    // the result, read for a person: the archive, the volume and node, the safety backup
    const result = page.locator('.restore-result');
    expect(await result.textContent()).toContain(older.key);
    expect(await result.textContent()).toContain(`${VOL} on node ${W1}`);
    expect(await result.locator('.safety-key').textContent()).toBe(job.result.safetyBackup.key);
    expect(job.result.safetyBackup.key).not.toBe(older.key);
    await page.screenshot({ path: path.join(ARTIFACTS, 'restore-job.png'), fullPage: true });

    // the volume holds v1 again, and the service runs
    await waitRunning(APP, 1);
    expect((await sh('cat /data/state.txt')).trim()).toBe('v1');
    expect(await sh('ls -A /data')).not.toMatch(/two\.txt|three\.txt/);
    expect(errors).toEqual([]);
  }, 240_000);

  it('a service on two nodes: the restore dialog asks which node, and the job restores that node’s volume only', async () => {
    await shOn(W1, 'echo w1-v1 > /data/state.txt');
    await shOn(W2, 'echo w2-v1 > /data/state.txt');
    const made = (await s.api('POST', '/jobs', { type: 'backup', service: MULTI, waitRes: true })).json;
    expect(made.state, JSON.stringify(made)).toBe('succeeded');
    const fromW2 = made.result.archives.find((a: Archive) => a.node === W2).key;
    await waitRunning(MULTI, 2);
    await shOn(W1, 'echo w1-v2 > /data/state.txt');
    await shOn(W2, 'echo w2-v2 > /data/state.txt');

    const { page, errors } = await signedIn(RESTORE_TOKEN);
    await page.goto(`${s.url}/#/services/${MULTI}`);
    await archiveRow(page, fromW2).getByRole('button', { name: /^Restore/ }).click();
    const dialog = page.getByRole('dialog', { name: `Restore service ${MULTI}` });
    const node = dialog.getByLabel('Node whose volume is restored');
    await node.waitFor();
    expect(await node.locator('option').evaluateAll((o) => o.map((x) => x.getAttribute('value')))).toEqual(['', W1, W2]);
    expect(await dialog.locator('.where').textContent()).toContain('on the node chosen below');
    await dialog.getByLabel('Type the service name to confirm').fill(MULTI);
    // no node chosen: the dialog says so, nothing is sent
    await dialog.getByRole('button', { name: 'Restore', exact: true }).click();
    await expect.poll(() => dialog.getByRole('alert').textContent()).toContain('Choose the node');
    expect((await s.api('GET', `/jobs?type=restore&service=${MULTI}`)).json.jobs).toEqual([]);
    await node.selectOption(W2);
    expect(await dialog.locator('.where').textContent()).toContain(`volume ${MVOL} on node ${W2}`);
    await dialog.getByLabel('Back up the current content first (safety backup)').uncheck();
    await dialog.getByRole('button', { name: 'Restore', exact: true }).click();
    const ended = await jobEnds(page, `restore of service ${MULTI}`);
    expect(ended.state, (await page.locator('main').textContent()) ?? '').toBe('succeeded');
    const job = (await s.api('GET', `/jobs/${ended.id}`)).json;
    expect(job.params).toEqual({ volume: MVOL, key: fromW2, node: W2, safetyBackup: false });
    expect(job.steps.find((x: any) => x.name === 'safety-backup').state).toBe('skipped');
    expect(await page.locator('.restore-result').textContent()).toContain('none (not asked for)');
    await waitRunning(MULTI, 2);
    expect((await shOn(W2, 'cat /data/state.txt')).trim()).toBe('w2-v1');
    expect((await shOn(W1, 'cat /data/state.txt')).trim()).toBe('w1-v2');
    expect(errors).toEqual([]);
  }, 240_000);

  it('a restore token starts drill all from the page: one child per service it may restore, each listed with its outcome', async () => {
    const { page, errors } = await signedIn(RESTORE_TOKEN);
    await page.getByRole('link', { name: 'Services', exact: true }).click();
    await page.getByRole('button', { name: 'Drill all services…' }).click();
    await page.getByRole('dialog', { name: 'Drill all services' }).getByRole('button', { name: 'Start' }).click();
    const ended = await jobEnds(page, 'drill of all');
    expect(ended.state).toBe('succeeded');
    const job = (await s.api('GET', `/jobs/${ended.id}`)).json;
    // the services whose restore token it is, and no other
    expect(job.result.children.map((c: any) => [c.target.service, c.state]).sort()).toEqual([
      [APP, 'succeeded'],
      [MULTI, 'succeeded'],
    ]);
    const child = job.result.children.find((c: any) => c.target.service === APP).id;
    expect(await page.locator('ul.children li').count()).toBe(2);
    const item = page.locator('ul.children li', { hasText: `service ${APP} ` });
    expect(await item.textContent()).toContain('succeeded');
    await item.getByRole('link', { name: `#${child}` }).click();
    await page.getByRole('heading', { name: `Job #${child}: drill of service ${APP}` }).waitFor();
    await expect.poll(() => page.locator('table.drills tr[data-ok="true"]').count()).toBe(1);
    expect(errors).toEqual([]);
  }, 240_000);

  it('a token refused while the restore dialog is open: nothing is created, and the page returns to the prompt', async () => {
    const { page, errors } = await signedIn(RESTORE_TOKEN);
    await serviceView(page);
    await archiveRow(page, newer.key).getByRole('button', { name: /^Restore/ }).click();
    const dialog = page.getByRole('dialog', { name: `Restore service ${APP}` });
    await dialog.getByLabel('Type the service name to confirm').fill(APP);
    const before = (await s.api('GET', `/jobs?type=restore`)).json.jobs.length;
    // as if the token had been taken out of the service's labels
    await page.evaluate((k) => (globalThis as any).sessionStorage.setItem(k, 'revoked-token'), 'swarm-utils.token');
    await dialog.getByRole('button', { name: 'Restore', exact: true }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor({ timeout: 10_000 });
    expect(await page.locator('#signin-error').textContent()).toContain('The token was refused');
    expect(await page.locator('dialog[open]').count()).toBe(0);
    expect((await s.api('GET', `/jobs?type=restore`)).json.jobs.length).toBe(before);
    expect(errors).toEqual([]);
  });

  it('screenshots: the jobs view with drills and restores, and the service view with its archives', async () => {
    const { page, errors } = await signedIn(ADMIN_TOKEN);
    await page.locator('tr[data-job]').first().waitFor();
    const types = await page.locator('tr[data-job] td[data-label="Type"]').allTextContents();
    expect(types.some((t) => t.startsWith('restore'))).toBe(true);
    expect(types.some((t) => t.startsWith('drill'))).toBe(true);
    // the type filter knows the new types
    await page.getByLabel('Type', { exact: true }).selectOption('restore');
    await expect.poll(() => page.locator('tr[data-job] td[data-label="Type"]').allTextContents()).toEqual([`restore ${MVOL}`, `restore ${VOL}`]);
    await page.getByLabel('Type', { exact: true }).selectOption('');
    await expect.poll(() => page.locator('tr[data-job]').count()).toBeGreaterThan(1);
    await page.screenshot({ path: path.join(ARTIFACTS, 'jobs-restore.png'), fullPage: true });
    await serviceView(page);
    await page.screenshot({ path: path.join(ARTIFACTS, 'service-archives.png'), fullPage: true });
    expect(errors).toEqual([]);
  });
});
