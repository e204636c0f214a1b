// The web console in a real headless browser (Debian's chromium + playwright-core), against the
// real server on the test swarm: sign-in, backups started and watched from the page, services and
// their last backups, label tokens, errors, sign-out on a refused token, phone width and dark mode.
import path from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { S3 } from '../helpers/testbed.js';
import { deleteS3Prefix, instanceOf, removeHelperContainers, removeVolumes } from '../helpers/leftovers.js';
import { ADMIN_TOKEN, startServer, waitJob, type RunningServer } from '../helpers/server.js';
import { createAppService, removeServices, serverEnv, uid } from '../helpers/cluster.js';
import { ARTIFACTS, launchBrowser } from '../helpers/browser.js';

// page.evaluate callbacks run in the browser; the project compiles without lib "dom", so its globals are declared loosely here
declare const document: any, window: any, sessionStorage: any, localStorage: any, getComputedStyle: any;
type HTMLInputElement = any;

const id = uid();
const PREFIX = `con-${id}`;
const APP = `con-app-${id}`;
const OTHER = `con-other-${id}`;
const SLOW = `con-slow-${id}`;
const VOL = { app: `con-app-data-${id}`, other: `con-other-data-${id}`, slow: `con-slow-data-${id}` };
const LABEL_TOKEN = `con-label-token-${id}`;
const OTHER_TOKEN = `con-other-token-${id}`;
const TOKEN_KEY = 'swarm-utils.token';

const ENV = serverEnv({
  SWARM_UTILS_S3_DOMAIN: S3.endpoint,
  SWARM_UTILS_S3_HTTPS: 'false',
  SWARM_UTILS_S3_BUCKET_NAME: S3.bucket,
  SWARM_UTILS_S3_ACCESS_KEY: S3.accessKey,
  SWARM_UTILS_S3_SECRET_ACCESS_KEY: S3.secretKey,
  SWARM_UTILS_S3_PATH: PREFIX,
});

let s: RunningServer;
let browser: Browser;
const contexts: BrowserContext[] = [];

const data = (name: string) => [{ Type: 'volume' as const, Source: name, Target: '/data' }];

beforeAll(async () => {
  [s, browser] = await Promise.all([startServer(ENV), launchBrowser()]);
  await Promise.all([
    createAppService(APP, {
      mounts: data(VOL.app),
      labels: {
        'swarm-utils.backup.enable': 'true',
        // a dump that takes a moment, so the page sees the job running before it succeeds
        'swarm-utils.backup.exec': 'sleep 2; date > /data/dump.txt',
        'swarm-utils.backup.token': LABEL_TOKEN,
      },
    }),
    createAppService(OTHER, { mounts: data(VOL.other), labels: { 'swarm-utils.backup.enable': 'true', 'swarm-utils.update.token': OTHER_TOKEN } }),
    createAppService(SLOW, { mounts: data(VOL.slow), labels: { 'swarm-utils.backup.enable': 'true', 'swarm-utils.backup.exec': 'sleep 8' } }),
  ]);
});

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
  const instance = s ? instanceOf(s) : null;
  await s?.stop();
  await removeServices(APP, OTHER, SLOW);
  if (instance) await removeHelperContainers([instance]);
  await removeVolumes(Object.values(VOL));
  await deleteS3Prefix(PREFIX);
});

/** a fresh tab (its own sessionStorage); page errors fail the test */
async function open(opts: { width?: number; height?: number; dark?: boolean } = {}): Promise<{ page: Page; errors: string[] }> {
  const ctx = await browser.newContext({ viewport: { width: opts.width ?? 1100, height: opts.height ?? 800 }, colorScheme: opts.dark ? 'dark' : 'light' });
  contexts.push(ctx);
  const page = await ctx.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${s.url}/`);
  return { page, errors };
}

/** signs in with the keyboard only: the token field has the focus, Enter submits */
async function signIn(page: Page, token: string): Promise<void> {
  await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe('token');
  await page.keyboard.type(token);
  await page.keyboard.press('Enter');
}

const stateOf = (page: Page) => page.locator('.job .facts .badge').first().textContent();
const volumeRow = (page: Page, service: string, volume: string) => page.locator(`article[data-service="${service}"] tr[data-volume="${volume}"]`);
const lastBackupAt = (page: Page, service: string, volume: string) => volumeRow(page, service, volume).locator('time').getAttribute('datetime');

describe('web console in a real browser', () => {
  it('a wrong token stays at the prompt with the API message, and is not kept', async () => {
    const { page, errors } = await open();
    await signIn(page, `wrong-${id}`);
    await expect.poll(() => page.locator('#signin-error').textContent()).toContain('The token was refused');
    expect(await page.locator('#signin-error').textContent()).toContain('grants nothing');
    expect(await page.getByRole('heading', { name: 'Sign in' }).isVisible()).toBe(true);
    expect(await page.locator('#nav').isVisible()).toBe(false);
    expect(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY)).toBeNull();
    expect(errors).toEqual([]);
  });

  it('admin: starts a backup from the page, watches it reach succeeded with its steps, sees the last backup time change', async () => {
    // an earlier backup, so the page has a last backup time to change
    const first = await s.api('POST', '/jobs', { type: 'backup', service: APP, waitRes: true });
    expect(first.status, JSON.stringify(first.json)).toBe(200);

    const { page, errors } = await open();
    await signIn(page, ADMIN_TOKEN);
    await page.getByRole('heading', { name: 'Jobs', level: 1, exact: true }).waitFor();
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Jobs');
    expect(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY)).toBe(ADMIN_TOKEN);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);

    await page.getByRole('link', { name: 'Services', exact: true }).click();
    await page.getByRole('link', { name: APP, exact: true }).click();
    await page.getByRole('heading', { name: APP, level: 1, exact: true }).waitFor();
    await expect.poll(() => lastBackupAt(page, APP, VOL.app)).toBe(new Date(first.json.finishedAt).toISOString());
    const before = (await lastBackupAt(page, APP, VOL.app))!;
    // admin labels are shown, token values redacted
    expect(await page.locator(`article[data-service="${APP}"] table.labels`).textContent()).toContain('[redacted]');
    expect(await page.content()).not.toContain(LABEL_TOKEN);

    await page.getByRole('button', { name: new RegExp(`^Back up service ${APP}`) }).click();
    const dialog = page.getByRole('dialog', { name: `Back up service ${APP}` });
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Start' }).click();
    await page.waitForURL(/#\/jobs\/\d+$/);
    const jobId = Number(page.url().split('/').pop());
    expect(jobId).toBeGreaterThan(first.json.id);
    await page.getByRole('heading', { name: `Job #${jobId}: backup of service ${APP}` }).waitFor();

    // the page updates itself: every state it shows, until succeeded (no reload)
    const seen: string[] = [];
    const end = Date.now() + 180_000;
    for (;;) {
      const state = (await stateOf(page))?.trim() ?? '';
      if (seen.at(-1) !== state) seen.push(state);
      if (['succeeded', 'failed', 'canceled'].includes(state) || Date.now() > end) break;
      await page.waitForTimeout(200);
    }
    expect(seen.at(-1), `states seen: ${seen.join(' → ')}\n${await page.locator('main').textContent()}`).toBe('succeeded');
    expect(seen).toContain('running');
    const steps = await page.locator('ol.steps > li').evaluateAll((lis) => lis.map((li) => [li.getAttribute('data-step'), li.getAttribute('data-state')]));
    expect(steps).toEqual([
      ['resolve', 'done'],
      ['exec', 'done'],
      ['prepare', 'skipped'],
      ['stop', 'skipped'],
      ['stage', 'skipped'],
      ['archive', 'done'],
      ['start', 'skipped'],
      ['archive-staged', 'skipped'],
      ['verify', 'done'],
      ['retention', 'skipped'],
      ['unstage', 'skipped'],
    ]);
    // each step's output and times are on the page
    expect(await page.locator('li[data-step="verify"] pre.output').textContent()).toContain(`${PREFIX}/`);
    expect(await page.locator('li[data-step="archive"] time').count()).toBe(1);
    await page.screenshot({ path: path.join(ARTIFACTS, 'job.png'), fullPage: true });

    // the service's volume now shows this job's backup, later than the one before
    await page.getByRole('link', { name: `service ${APP}`, exact: true }).first().click();
    await page.getByRole('heading', { name: APP, level: 1, exact: true }).waitFor();
    await expect.poll(() => lastBackupAt(page, APP, VOL.app)).not.toBe(before);
    const after = (await lastBackupAt(page, APP, VOL.app))!;
    expect(Date.parse(after)).toBeGreaterThan(Date.parse(before));
    expect(await volumeRow(page, APP, VOL.app).getByRole('link', { name: `#${jobId}` }).count()).toBe(1);
    const job = (await s.api('GET', `/jobs/${jobId}`)).json;
    expect(after).toBe(job.finishedAt);
    await page.screenshot({ path: path.join(ARTIFACTS, 'service.png'), fullPage: true });

    // the jobs view, newest first, filtered from the form
    await page.getByRole('link', { name: 'Jobs', exact: true }).click();
    await page.locator(`tr[data-job="${jobId}"]`).waitFor();
    await page.getByLabel('Service', { exact: true }).fill(APP);
    await page.getByLabel('Type', { exact: true }).selectOption('backup');
    await expect.poll(() => page.url()).toContain(`#/jobs?type=backup&service=${APP}`);
    await expect.poll(() => page.locator('tr[data-job]').evaluateAll((rows) => rows.map((r) => Number(r.getAttribute('data-job'))))).toEqual([jobId, first.json.id]);
    await page.screenshot({ path: path.join(ARTIFACTS, 'jobs.png'), fullPage: true });
    expect(errors).toEqual([]);
  });

  it('live list and cancel: a job started elsewhere appears in the open jobs view; canceled from its page, it ends canceled', async () => {
    const { page, errors } = await open();
    await signIn(page, ADMIN_TOKEN);
    await page.getByRole('heading', { name: 'Jobs', level: 1, exact: true }).waitFor();
    const submitted = await s.api('POST', '/jobs', { type: 'backup', service: SLOW });
    expect(submitted.status).toBe(202);
    const row = page.locator(`tr[data-job="${submitted.json.id}"]`);
    await row.waitFor({ timeout: 10_000 });
    await row.getByRole('link', { name: `#${submitted.json.id}`, exact: true }).click();
    await expect.poll(() => stateOf(page), { timeout: 30_000 }).toBe('running');
    await page.getByRole('button', { name: 'Cancel job' }).click();
    await expect.poll(() => stateOf(page), { timeout: 60_000 }).toBe('canceled');
    expect(await page.locator('.errorbox').textContent()).toContain('CANCELED');
    expect(await page.getByRole('button', { name: 'Cancel job' }).count()).toBe(0);
    const job = await waitJob(s, submitted.json.id);
    expect(job.state).toBe('canceled');
    expect(errors).toEqual([]);
  });

  it("errors are the API's message in the dialog; nothing is created", async () => {
    const { page, errors } = await open();
    await signIn(page, ADMIN_TOKEN);
    await page.goto(`${s.url}/#/services/${APP}`);
    await page.getByRole('button', { name: new RegExp(`^Update service ${APP}`) }).click();
    const dialog = page.getByRole('dialog', { name: `Update service ${APP}` });
    await dialog.getByLabel('Image').fill('Not An Image!!');
    await dialog.getByRole('button', { name: 'Start' }).click();
    const alert = dialog.getByRole('alert');
    await expect.poll(() => alert.textContent()).toContain('(VALIDATION)');
    expect(await alert.textContent()).toContain('must be an image reference');
    expect(await alert.textContent()).not.toMatch(/\bat .*\.(js|ts):\d+/);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    expect((await s.api('GET', `/jobs?type=update&service=${APP}`)).json.jobs).toEqual([]);
    expect(await page.locator('#nav').isVisible()).toBe(true);
    expect(errors).toEqual([]);
  });

  it('a label token sees only its own service and only the action it holds; another job is a message, not a sign-out', async () => {
    const { page, errors } = await open();
    await signIn(page, LABEL_TOKEN);
    await page.getByRole('heading', { name: 'Jobs', level: 1, exact: true }).waitFor();
    await page.getByRole('link', { name: 'Services', exact: true }).click();
    await page.locator(`article[data-service="${APP}"]`).waitFor();
    expect(await page.locator('article[data-service]').evaluateAll((a) => a.map((x) => x.getAttribute('data-service')))).toEqual([APP]);
    const card = page.locator(`article[data-service="${APP}"]`);
    expect(await card.locator('button[data-action]').evaluateAll((b) => b.map((x) => x.getAttribute('data-action')))).toEqual(['backup']);
    expect(await page.getByRole('button', { name: /^(Update|Clean|Restore)/ }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Clean node…' }).count()).toBe(0);
    expect(await volumeRow(page, APP, VOL.app).locator('time').count()).toBe(1);
    // the jobs it lists are its service's only
    await page.getByRole('link', { name: 'Jobs', exact: true }).click();
    await page.locator('tr[data-job]').first().waitFor();
    const targets = await page.locator('tr[data-job] td[data-label="Target"]').allTextContents();
    expect(new Set(targets)).toEqual(new Set([`service ${APP}`]));
    // a job of a service it may not see: the API's message, still signed in
    const slowJob = (await s.api('GET', `/jobs?service=${SLOW}`)).json.jobs[0];
    await page.goto(`${s.url}/#/jobs/${slowJob.id}`);
    await expect.poll(() => page.locator('#alert').textContent()).toContain(`job ${slowJob.id}`);
    expect(await page.locator('#nav').isVisible()).toBe(true);
    expect(errors).toEqual([]);
  });

  it('a token refused in the middle of a session sends back to the prompt', async () => {
    const { page } = await open();
    await signIn(page, ADMIN_TOKEN);
    await page.getByRole('heading', { name: 'Jobs', level: 1, exact: true }).waitFor();
    await page.getByRole('link', { name: 'Services', exact: true }).click();
    await page.locator(`article[data-service="${APP}"]`).waitFor();
    // as if the token had been removed from SWARM_UTILS_ADMIN_TOKEN_LIST: the next refresh is refused
    await page.evaluate((k) => sessionStorage.setItem(k, 'revoked-token'), TOKEN_KEY);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor({ timeout: 10_000 });
    expect(await page.locator('#signin-error').textContent()).toContain('The token was refused');
    expect(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY)).toBeNull();
  });

  it('readable on a phone in dark mode; every field has a label', async () => {
    const { page } = await open({ width: 390, height: 844, dark: true });
    await signIn(page, ADMIN_TOKEN);
    await page.getByRole('heading', { name: 'Jobs', level: 1, exact: true }).waitFor();
    await expect.poll(() => page.locator('.live-note').textContent()).toContain('newest first');
    const unlabelled = () =>
      page.evaluate(() =>
        [...document.querySelectorAll('input, select')].filter((e) => !(e as HTMLInputElement).labels?.length).map((e) => e.outerHTML),
      );
    expect(await unlabelled()).toEqual([]);
    const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(await overflow()).toBeLessThanOrEqual(0);
    await page.goto(`${s.url}/#/services/${APP}`);
    await volumeRow(page, APP, VOL.app).waitFor();
    expect(await unlabelled()).toEqual([]);
    expect(await overflow()).toBeLessThanOrEqual(0);
    const luminance = (rgb: string) => {
      const [r, g, b] = rgb.match(/\d+/g)!.map(Number) as [number, number, number];
      return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
    };
    expect(luminance(await page.evaluate(() => getComputedStyle(document.body).backgroundColor))).toBeLessThan(0.2);
    await page.screenshot({ path: path.join(ARTIFACTS, 'service-phone-dark.png'), fullPage: true });
    await page.emulateMedia({ colorScheme: 'light' });
    expect(luminance(await page.evaluate(() => getComputedStyle(document.body).backgroundColor))).toBeGreaterThan(0.8);
  });

  it('the server killed and started again: the page says it does not answer, then carries on with the same token', async () => {
    const { page, errors } = await open();
    await signIn(page, ADMIN_TOKEN);
    await page.locator('tr[data-job]').first().waitFor();
    const jobs = await page.locator('tr[data-job]').count();
    await s.kill9();
    await expect.poll(() => page.locator('#alert').textContent(), { timeout: 10_000 }).toContain('did not answer');
    expect(await page.locator('#nav').isVisible()).toBe(true);
    const before = s.output();
    s = await startServer(ENV, { dbPath: s.dbPath, port: s.port });
    await expect.poll(() => page.locator('#alert').isVisible(), { timeout: 15_000 }).toBe(false);
    expect(await page.locator('tr[data-job]').count()).toBe(jobs);
    expect(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY)).toBe(ADMIN_TOKEN);
    expect(errors).toEqual([]);
    // the tokens the page sent never reached the server's log
    for (const log of [before, s.output()]) {
      expect(log).not.toContain(ADMIN_TOKEN);
      expect(log).not.toContain(LABEL_TOKEN);
    }
  });
});
