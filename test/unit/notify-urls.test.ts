import { describe, it, expect, afterEach } from 'vitest';
import { SMTPServer } from 'smtp-server';
import type { AddressInfo } from 'node:net';
import { openDb, type Db } from '../../src/db/index.js';
import { finishJob, insertJob, markRunning, recordJobError, type JobState } from '../../src/db/jobs.js';
import { createNotifier, type Notifier, type NotifierOptions } from '../../src/notify/notifier.js';
import { targetId } from '../../src/notify/services.js';
import { loadConfig } from '../../src/config.js';
import { sleep } from '../../src/engine/limits.js';
import { captureLog, makeDeps, fakeDocker, tempDbPath, testConfig } from '../helpers/engine-fixture.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';

const open: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.stop();
});

async function receiver(): Promise<Receiver> {
  const r = await startReceiver();
  open.push({ stop: () => r.close() });
  return r;
}

/** a fetch that records the real service URL and forwards the same request to the local receiver */
function forwardTo(r: Receiver, seen: string[]): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const u = new URL(String(input));
    seen.push(u.href);
    return fetch(`${r.url}${u.pathname}${u.search}`, init);
  }) as typeof fetch;
}

const FAST: NotifierOptions = { backoffMs: () => 50, sweepEveryMs: 100, requestTimeoutMs: 2000 };

function setup(urls: string, opts: NotifierOptions = {}, db: Db = openDb(tempDbPath())) {
  const log = captureLog();
  const deps = makeDeps(db, fakeDocker(), testConfig({ SWARM_UTILS_NOTIFY_URLS: urls }), log.logger);
  const notifier: Notifier = createNotifier(deps, { ...FAST, ...opts });
  open.push({ stop: () => notifier.stop() });
  return { db, notifier, log };
}

function failedJob(db: Db, state: JobState = 'failed'): number {
  const job = insertJob(db, { type: 'backup', targetKind: 'service', target: 'db', source: 'api', parentId: null, locks: [] });
  markRunning(db, job.id, 'boot');
  recordJobError(db, job.id, 'S3_ERROR' as never, 'upload failed');
  finishJob(db, job.id, state);
  return job.id;
}

async function one(urls: string, r: Receiver, seen?: string[]) {
  const { db, notifier } = setup(urls, seen ? { fetch: forwardTo(r, seen) } : {});
  notifier.start();
  failedJob(db);
  notifier.wake();
  const [got] = await r.waitFor(1, 5000);
  return got!;
}

describe('SWARM_UTILS_NOTIFY_URLS schemes', () => {
  it('slack webhook (old and new form)', async () => {
    const r = await receiver();
    const seen: string[] = [];
    const got = await one('slack://bot@AAA/BBB/CCC', r, seen);
    expect(seen[0]).toBe('https://hooks.slack.com/services/AAA/BBB/CCC');
    expect(got.method).toBe('POST');
    expect(got.headers['content-type']).toBe('application/json');
    expect(got.json.text).toMatch(/backup of service db failed/);
    const r2 = await receiver();
    const seen2: string[] = [];
    await one('slack://hook:AAA-BBB-CCC@webhook', r2, seen2);
    expect(seen2[0]).toBe('https://hooks.slack.com/services/AAA/BBB/CCC');
  });

  it('slack bot API', async () => {
    const r = await receiver();
    const seen: string[] = [];
    const got = await one('slack://xoxb:123-456-abc@C0123', r, seen);
    expect(seen[0]).toBe('https://slack.com/api/chat.postMessage');
    expect(got.headers.authorization).toBe('Bearer xoxb-123-456-abc');
    expect(got.json).toMatchObject({ channel: 'C0123' });
  });

  it('discord', async () => {
    const r = await receiver();
    const seen: string[] = [];
    const got = await one('discord://tok3n@12345', r, seen);
    expect(seen[0]).toBe('https://discord.com/api/webhooks/12345/tok3n');
    expect(got.json.content).toMatch(/failed/);
  });

  it('telegram: once per chat', async () => {
    const r = await receiver();
    const seen: string[] = [];
    const { db, notifier } = setup('telegram://110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw@telegram?chats=@chan,42', { fetch: forwardTo(r, seen) });
    notifier.start();
    failedJob(db);
    const got = await r.waitFor(2, 5000);
    expect(seen).toEqual(Array(2).fill('https://api.telegram.org/bot110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage'));
    expect(got.map((g) => g.json.chat_id)).toEqual(['@chan', '42']);
  });

  it('teams', async () => {
    const r = await receiver();
    const seen: string[] = [];
    const got = await one('teams://grp@tnt/alt/own?host=org.webhook.office.com', r, seen);
    expect(seen[0]).toBe('https://org.webhook.office.com/webhookb2/grp@tnt/IncomingWebhook/alt/own');
    expect(got.json).toMatchObject({ '@type': 'MessageCard', '@context': 'https://schema.org/extensions' });
  });

  it('ntfy over http with basic auth and headers', async () => {
    const r = await receiver();
    const got = await one(`ntfy://u:p@127.0.0.1:${r.port}/backups?scheme=http&priority=4&tags=warning`, r);
    expect(got.path).toBe('/backups');
    expect(got.headers.authorization).toBe(`Basic ${Buffer.from('u:p').toString('base64')}`);
    expect(got.headers.priority).toBe('4');
    expect(got.headers.tags).toBe('warning');
    expect(got.text).toMatch(/failed/);
  });

  it('gotify', async () => {
    const r = await receiver();
    const got = await one(`gotify://127.0.0.1:${r.port}/sub/AppToken1?disabletls=yes&priority=5`, r);
    expect(got.path).toBe('/sub/message');
    expect(got.headers['x-gotify-key']).toBe('AppToken1');
    expect(got.json).toMatchObject({ priority: 5 });
    expect(got.json.message).toMatch(/failed/);
  });

  it('generic+http with template=json and a header', async () => {
    const r = await receiver();
    const got = await one(`generic+http://127.0.0.1:${r.port}/in?template=json&@X-Key=v1&keep=1`, r);
    expect(got.path).toBe('/in?keep=1');
    expect(got.headers['x-key']).toBe('v1');
    expect(Object.keys(got.json).sort()).toEqual(['message', 'title']);
  });

  it('plain http in the list: the JSON webhook', async () => {
    const r = await receiver();
    const got = await one(`${r.url}/hook`, r);
    expect(got.json).toMatchObject({ event: 'failed' });
  });

  it('smtp with auth against a real SMTP server', async () => {
    const mails: { from: string; to: string[]; data: string }[] = [];
    const server = new SMTPServer({
      authOptional: false,
      disabledCommands: ['STARTTLS'],
      onAuth(auth, _s, cb) {
        if (auth.username === 'me' && auth.password === 'pw') cb(null, { user: 'me' });
        else cb(new Error('bad auth'));
      },
      onData(stream, session, cb) {
        let data = '';
        stream.on('data', (c: Buffer) => (data += c.toString()));
        stream.on('end', () => {
          mails.push({ from: (session.envelope.mailFrom as { address: string }).address, to: session.envelope.rcptTo.map((t) => t.address), data });
          cb();
        });
      },
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
    open.push({ stop: () => new Promise<void>((res) => server.close(() => res())) });
    const port = (server.server.address() as AddressInfo).port;
    const { db, notifier } = setup(`smtp://me:pw@127.0.0.1:${port}/?from=a@example.com&to=b@example.com,c@example.com&subject=Backup&encryption=none`);
    notifier.start();
    failedJob(db);
    const end = Date.now() + 5000;
    while (!mails.length && Date.now() < end) await sleep(20);
    expect(mails).toHaveLength(1);
    expect(mails[0]!.from).toBe('a@example.com');
    expect(mails[0]!.to).toEqual(['b@example.com', 'c@example.com']);
    expect(mails[0]!.data).toMatch(/Subject: Backup/);
    expect(mails[0]!.data).toMatch(/backup of service db failed/);
  });
});

describe('SWARM_UTILS_NOTIFY_URLS delivery', () => {
  it('each URL its own target: a receiver down then up gets it once, the other once, not again; a restart sends pending only', async () => {
    const a = await receiver();
    const b = await receiver();
    await b.down();
    const dbPath = tempDbPath();
    const urls = `generic+http://127.0.0.1:${a.port}/a,generic+http://127.0.0.1:${b.port}/b`;
    const first = setup(urls, {}, openDb(dbPath));
    first.notifier.start();
    failedJob(first.db);
    await a.waitFor(1, 5000);
    await sleep(300);
    await first.notifier.stop();
    // restart on the same file: a is delivered, b pending
    const second = setup(urls, {}, openDb(dbPath));
    await b.up();
    second.notifier.start();
    await b.waitFor(1, 5000);
    await sleep(400);
    expect(a.received).toHaveLength(1);
    expect(b.received).toHaveLength(1);
    const rows = second.db.prepare('SELECT target, delivered_at FROM notifications ORDER BY target').all() as { target: string; delivered_at: number | null }[];
    expect(rows.map((r) => r.target).sort()).toEqual([targetId(`generic+http://127.0.0.1:${a.port}/a`), targetId(`generic+http://127.0.0.1:${b.port}/b`)].sort());
    expect(rows.every((r) => r.delivered_at !== null)).toBe(true);
    expect(JSON.stringify(rows)).not.toContain('127.0.0.1');
  });

  it('a bad URL is a config error naming its position and scheme, not its token', () => {
    const r = loadConfig({ SWARM_UTILS_ADMIN_TOKEN_LIST: 'x'.repeat(32), SWARM_UTILS_NOTIFY_URLS: 'discord://tok@1,pushover://SECRETTOKEN99@user' } as never);
    expect(r.ok).toBe(false);
    const text = JSON.stringify(r);
    expect(text).toContain('URL 2');
    expect(text).toContain('pushover');
    expect(text).not.toContain('SECRETTOKEN99');
  });
});
