/**
 * The command-line client (src/cli, docs/cli.md) against the real app listening on a port (a fake
 * Docker port behind it): arguments, exit codes, --json, where the token comes from, and that the
 * token is never printed nor in a process's arguments. Most runs are in-process (run() with its own
 * streams); the process-list check spawns the real client.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import type { JobKind } from '../../src/engine/types.js';
import type { SubmitCheck } from '../../src/api/jobs-service.js';
import { run, helpTexts } from '../../src/cli/program.js';
import type { Io } from '../../src/cli/io.js';
import { apiFixture, fakeService, type ApiFixture } from '../helpers/api-fixture.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ADMIN = `cli-admin-${randomBytes(12).toString('hex')}`;
const WEB = `cli-web-${randomBytes(12).toString('hex')}`;
const NOTHING = `cli-nothing-${randomBytes(12).toString('hex')}`;
const tmp = mkdtempSync(path.join(tmpdir(), 'swarm-utils-cli-'));

const holds: (() => void)[] = [];
const releaseAll = () => holds.splice(0).forEach((r) => r());
const hold = () => new Promise<void>((r) => holds.push(r));

/** an update whose image says how it ends */
const testUpdate: JobKind & SubmitCheck = {
  type: 'update',
  locks: (t) => [`update_service_${t.name}`],
  steps: (job) => [
    { name: 'prepare', run: async () => ({ output: 'prepared' }) },
    {
      name: 'work',
      run: async () => {
        const image = String(job.params.image ?? '');
        if (image.endsWith(':fail')) throw new AppError('UPDATE_FAILED', 'rollout paused: task exited');
        if (image.endsWith(':slow')) throw new AppError('TIMEOUT', 'the rollout did not converge within 100 ms');
        if (image.endsWith(':hold')) await hold();
        return { output: `rolled out ${image || 'the current tag'}` };
      },
    },
  ],
};

let f: ApiFixture;
let url = '';
/** bodies of every POST the API received */
let posted: { url: string; body: unknown; auth: string | undefined }[] = [];

beforeEach(async () => {
  posted = [];
  f = await apiFixture({
    services: [fakeService('web', { 'swarm-utils.update.token': WEB }), fakeService('db')],
    kinds: { update: testUpdate },
    env: { SWARM_UTILS_ADMIN_TOKEN_LIST: ADMIN, SWARM_UTILS_LOCK_TIMEOUT: '20000' },
  });
  f.app.addHook('preHandler', async (req) => {
    if (req.method === 'POST') posted.push({ url: req.url, body: req.body, auth: req.headers.authorization });
  });
  await f.app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(f.app.server.address() as net.AddressInfo).port}`;
});
afterEach(async () => {
  releaseAll();
  await f.close();
});
afterAll(() => releaseAll());

interface Ran {
  code: number;
  out: string;
  err: string;
}

function sink(isTTY = false) {
  const s = { text: '', isTTY, write: (t: string) => void (s.text += t) };
  return s;
}

/** runs the client in-process with its own streams; env holds only what the test gives (and the URL) */
async function cli(args: string[], o: { env?: Record<string, string>; tty?: boolean; stdin?: string[] } = {}): Promise<Ran> {
  const stdout = sink(o.tty);
  const stderr = sink(o.tty);
  const stdin = Object.assign(Readable.from(o.stdin ?? []), { isTTY: o.tty === true });
  const io: Io = {
    stdout,
    stderr,
    stdin,
    env: { SWARM_UTILS_URL: url, ...o.env },
    readFile: (p) => readFileSync(p, 'utf8'),
    pollMs: 30,
  };
  const code = await run(args, io);
  return { code, out: stdout.text, err: stderr.text };
}
const admin = { SWARM_UTILS_TOKEN: ADMIN };

async function api(method: string, p: string, body?: unknown): Promise<any> {
  const r = await fetch(url + p, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return r.json();
}

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });

const until = async <T>(probe: () => Promise<T | null | undefined | false>, ms = 10_000): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('arguments', () => {
  it('--help lists every verb and the exit codes, exit 0', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    for (const verb of ['backup', 'restore', 'drill', 'migrate', 'clean', 'update', 'backups', 'jobs', 'status', 'config', 'version']) expect(r.out).toMatch(new RegExp(`^  ${verb} `, 'm'));
    expect(r.out).toContain('3 refused (4xx), 4 unreachable');
  });

  it('usage errors exit 2 and send nothing', async () => {
    const cases = [
      ['explode'],
      ['update'],
      ['restore', 'web', '--yes'],
      ['restore', 'web', '--from', 'k', '--latest', '--yes'],
      ['backup'],
      ['backup', 'web', '--all'],
      ['clean'],
      ['clean', '--node', 'n1', '--all'],
      ['migrate', 'web'],
      ['jobs', 'show', 'abc'],
      ['jobs', 'wait', '0'],
      ['jobs', 'ls', '--state', 'weird'],
      ['update', 'web', '--wait', '--timeout', 'soon'],
      ['--url', 'ftp://x', 'jobs', 'ls'],
      ['--url', `http://user:pw@127.0.0.1:1`, 'jobs', 'ls'],
    ];
    for (const args of cases) {
      const r = await cli(args, { env: admin });
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err, args.join(' ')).not.toBe('');
    }
    expect(posted).toEqual([]);
  });

  it('each verb sends its job body', async () => {
    await cli(['backup', 'web'], { env: admin });
    await cli(['backup', '--all'], { env: admin });
    await cli(['restore', 'web', '--latest', '--node', 'n1', '--volume', 'data', '--no-safety-backup', '--yes'], { env: admin });
    await cli(['restore', 'web', '--from', 'n1_data_2026-01-01T00-00-00Z.tar.gz', '--yes'], { env: admin });
    await cli(['drill', 'web', '--from', 'k1'], { env: admin });
    await cli(['drill', '--all'], { env: admin });
    await cli(['migrate', 'web', '--to', 'n2'], { env: admin });
    await cli(['clean', '--node', 'n1'], { env: admin });
    await cli(['clean', '--service', 'web'], { env: admin });
    await cli(['update', 'web', '--image', 'registry.example.com/app:v2'], { env: admin });
    expect(posted.map((p) => p.body)).toEqual([
      { type: 'backup', service: 'web' },
      { type: 'backup', all: true },
      { type: 'restore', service: 'web', node: 'n1', volume: 'data', safetyBackup: false },
      { type: 'restore', service: 'web', key: 'n1_data_2026-01-01T00-00-00Z.tar.gz' },
      { type: 'drill', service: 'web', key: 'k1' },
      { type: 'drill', all: true },
      { type: 'migrate', service: 'web', to: 'n2' },
      { type: 'clean', node: 'n1' },
      { type: 'clean', service: 'web' },
      { type: 'update', service: 'web', image: 'registry.example.com/app:v2' },
    ]);
    expect(posted.every((p) => p.url === '/jobs' && p.auth === `Bearer ${ADMIN}`)).toBe(true);
  });
});

describe('exit codes', () => {
  it('a job that succeeds: 0, each step as it ends, then how the job ended', async () => {
    const r = await cli(['update', 'web', '--image', 'registry.example.com/app:v2', '--wait'], { env: admin });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^done +prepare \([\d.]+ s\): prepared$/m);
    expect(r.out).toMatch(/^done +work \([\d.]+ s\): rolled out registry.example.com\/app:v2$/m);
    expect(r.out).toMatch(/job \d+ \(update web\) succeeded after/);
    // no terminal: plain lines, no spinner
    expect(r.out).not.toContain('\r');
  });

  it('without --wait: 0 once the job is accepted, with the way to follow it', async () => {
    const r = await cli(['update', 'web'], { env: admin });
    expect(r.code).toBe(0);
    const id = /jobs wait (\d+)/.exec(r.out)?.[1];
    expect(id).toBeDefined();
    expect((await api('GET', `/jobs/${id}`)).type).toBe('update');
  });

  it('a failed job: 1, with its error code and message', async () => {
    const r = await cli(['update', 'web', '--image', 'registry.example.com/app:fail', '--wait'], { env: admin });
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^failed +work/m);
    expect(r.err).toContain('failed after');
    expect(r.err).toContain('UPDATE_FAILED: rollout paused: task exited');
  });

  it('a job that failed TIMEOUT: 6; --timeout passing first: 6, and the job goes on', async () => {
    const slow = await cli(['update', 'web', '--image', 'registry.example.com/app:slow', '--wait'], { env: admin });
    expect(slow.code).toBe(6);
    expect(slow.err).toContain('TIMEOUT');
    const held = await cli(['update', 'web', '--image', 'registry.example.com/app:hold', '--wait', '--timeout', '300ms'], { env: admin });
    expect(held.code).toBe(6);
    expect(held.err).toMatch(/is still running after 300ms; it goes on: swarm-utils jobs wait (\d+)/);
    const id = /jobs wait (\d+)/.exec(held.err)![1];
    releaseAll();
    const after = await cli(['jobs', 'wait', id!], { env: admin });
    expect(after.code).toBe(0);
  });

  it('a job canceled while the client waits: 5', async () => {
    const first = await api('POST', '/jobs', { type: 'update', service: 'web', image: 'registry.example.com/app:hold' });
    await until(async () => (await api('GET', `/jobs/${first.id}`)).state === 'running');
    // queued behind the first one's lock
    const queued = await api('POST', '/jobs', { type: 'update', service: 'web' });
    const waiting = cli(['jobs', 'wait', String(queued.id)], { env: admin });
    await new Promise((r) => setTimeout(r, 100));
    const c = await cli(['jobs', 'cancel', String(queued.id)], { env: admin });
    expect(c.code).toBe(0);
    expect(c.out).toContain('canceled');
    const r = await waiting;
    expect(r.code).toBe(5);
    expect(r.err).toContain('canceled');
    expect(r.err).toContain('CANCELED');
  });

  it('403: 3, with the API error code and message', async () => {
    const r = await cli(['update', 'web'], { env: { SWARM_UTILS_TOKEN: NOTHING } });
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/^swarm-utils: FORBIDDEN: .+ \(HTTP 403\)$/m);
    const other = await cli(['update', 'db', '--wait'], { env: { SWARM_UTILS_TOKEN: WEB } });
    expect(other.code).toBe(3);
    expect(other.err).toContain('FORBIDDEN');
    const missing = await cli(['jobs', 'show', '99999'], { env: admin });
    expect(missing.code).toBe(3);
    expect(missing.err).toContain('NOT_FOUND');
  });

  it('400: 3, with the field details', async () => {
    const r = await cli(['update', 'web', '--image', 'UPPER/Case:!!'], { env: admin });
    expect(r.code).toBe(3);
    expect(r.err).toContain('VALIDATION');
    expect(r.err).toMatch(/^ {2}image: /m);
  });

  it('unreachable: 4', async () => {
    const port = await freePort();
    const r = await cli(['jobs', 'ls'], { env: { ...admin, SWARM_UTILS_URL: `http://127.0.0.1:${port}` } });
    expect(r.code).toBe(4);
    expect(r.err).toContain(`cannot reach swarm-utils at http://127.0.0.1:${port} (ECONNREFUSED)`);
  });
});

describe('--json', () => {
  it("prints the API's JSON unchanged: a submission, a followed job, a list, an error", async () => {
    const sub = await cli(['--json', 'update', 'web'], { env: admin });
    expect(sub.code).toBe(0);
    const job = JSON.parse(sub.out);
    expect(job).toMatchObject({ type: 'update', target: { service: 'web' }, state: expect.any(String) });

    const waited = await cli(['update', 'web', '--image', 'registry.example.com/app:v3', '--wait', '--json'], { env: admin });
    expect(waited.code).toBe(0);
    const end = JSON.parse(waited.out);
    expect(end).toMatchObject({ state: 'succeeded', steps: [{ name: 'prepare', state: 'done' }, { name: 'work', state: 'done' }] });
    // the body as GET /jobs/:id answers it, byte for byte
    const raw = await (await fetch(`${url}/jobs/${end.id}`, { headers: { authorization: `Bearer ${ADMIN}` } })).text();
    expect(waited.out).toBe(`${raw}\n`);
    // progress went to stderr
    expect(waited.err).toMatch(/^done +work/m);

    const list = await cli(['jobs', 'ls', '--type', 'update', '--limit', '1', '--json'], { env: admin });
    const page = JSON.parse(list.out);
    expect(page.jobs).toHaveLength(1);
    expect(page.jobs[0].id).toBe(end.id);
    expect(page.next).toEqual(expect.any(Number));

    const refused = await cli(['--json', 'update', 'db'], { env: { SWARM_UTILS_TOKEN: NOTHING } });
    expect(refused.code).toBe(3);
    expect(JSON.parse(refused.out)).toMatchObject({ error: { code: 'FORBIDDEN' }, requestId: expect.any(String) });
  });

  it('jobs show, jobs logs and status read the same job', async () => {
    const r = await cli(['update', 'web', '--image', 'registry.example.com/app:v4', '--wait', '--json'], { env: admin });
    const id = String(JSON.parse(r.out).id);
    const show = await cli(['jobs', 'show', id], { env: admin });
    expect(show.out).toContain(`job ${id} (update web): succeeded`);
    expect(show.out).toMatch(/^ {4}done +work/m);
    const logs = await cli(['jobs', 'logs', id], { env: admin });
    expect(logs.out).toContain('== work (done)');
    expect(logs.out).toContain('rolled out registry.example.com/app:v4');
    const table = await cli(['jobs', 'ls'], { env: admin });
    expect(table.out).toMatch(new RegExp(`^${id} +update +web +succeeded`, 'm'));
  });
});

describe('the token', () => {
  const tokenFile = (name: string, content: string) => {
    const p = path.join(tmp, name);
    writeFileSync(p, content);
    return p;
  };

  it('from SWARM_UTILS_TOKEN, --token-file, --token (with a warning), the admin token file, in that order of precedence', async () => {
    const ok = (r: Ran) => expect(r.code, r.err).toBe(0);
    ok(await cli(['jobs', 'ls'], { env: admin }));
    // the file's trailing newline is not part of the token
    ok(await cli(['--token-file', tokenFile('admin', `${ADMIN}\n`), 'jobs', 'ls']));
    // --token-file wins over SWARM_UTILS_TOKEN
    ok(await cli(['jobs', 'ls', '--token-file', tokenFile('admin2', ADMIN)], { env: { SWARM_UTILS_TOKEN: NOTHING } }));
    expect((await cli(['jobs', 'ls', '--token-file', tokenFile('nothing', NOTHING)], { env: admin })).code).toBe(3);
    const flag = await cli(['--token', ADMIN, 'jobs', 'ls']);
    ok(flag);
    expect(flag.err).toContain('warning: --token leaves the token in the shell history');
    // inside the container: the admin token list the service reads, its first token
    ok(await cli(['jobs', 'ls'], { env: { SWARM_UTILS_ADMIN_TOKEN_LIST_FILE: tokenFile('list', ` ${ADMIN} ,other\n`) } }));
    ok(await cli(['jobs', 'ls'], { env: { SWARM_UTILS_ADMIN_TOKEN_LIST: `${ADMIN},other` } }));
    // SWARM_UTILS_TOKEN wins over the admin list
    expect((await cli(['jobs', 'ls'], { env: { SWARM_UTILS_TOKEN: NOTHING, SWARM_UTILS_ADMIN_TOKEN_LIST: ADMIN } })).code).toBe(3);
  });

  it('none, an empty or a missing file: 2 before any request', async () => {
    const none = await cli(['update', 'web']);
    expect(none.code).toBe(2);
    expect(none.err).toContain('no token: set SWARM_UTILS_TOKEN');
    expect((await cli(['--token-file', tokenFile('empty', '\n'), 'update', 'web'])).code).toBe(2);
    const missing = await cli(['--token-file', path.join(tmp, 'absent'), 'update', 'web']);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('ENOENT');
    expect(posted).toEqual([]);
    // version needs no token
    expect((await cli(['version'])).code).toBe(0);
  });

  it('is never printed: not in output, errors or --json, whatever the outcome', async () => {
    const runs: Ran[] = [];
    const file = tokenFile('t', ADMIN);
    const wrongFile = tokenFile('w', NOTHING);
    for (const env of [admin, { SWARM_UTILS_TOKEN: NOTHING }]) {
      for (const json of [[], ['--json']]) {
        runs.push(await cli([...json, 'update', 'web', '--wait'], { env }));
        runs.push(await cli([...json, 'update', 'web', '--image', 'registry.example.com/app:fail', '--wait'], { env }));
        runs.push(await cli([...json, 'update', 'web', '--image', 'bad image'], { env }));
        runs.push(await cli([...json, 'jobs', 'ls'], { env }));
        runs.push(await cli([...json, 'status', 'web'], { env }));
        runs.push(await cli([...json, 'version'], { env }));
      }
    }
    runs.push(await cli(['--token-file', file, 'jobs', 'show', '424242']));
    runs.push(await cli(['--token-file', wrongFile, 'jobs', 'ls']));
    runs.push(await cli(['--token', ADMIN, '--json', 'jobs', 'ls']));
    runs.push(await cli(['jobs', 'ls'], { env: { ...admin, SWARM_UTILS_URL: `http://127.0.0.1:${await freePort()}` } }));
    expect(runs.some((r) => r.code === 0) && runs.some((r) => r.code === 1) && runs.some((r) => r.code === 3) && runs.some((r) => r.code === 4)).toBe(true);
    for (const r of runs) {
      for (const secret of [ADMIN, NOTHING]) {
        expect(r.out).not.toContain(secret);
        expect(r.err).not.toContain(secret);
      }
    }
  });

  it("is not in the arguments of the client's process (ps), from the environment or from a file", async () => {
    const first = await api('POST', '/jobs', { type: 'update', service: 'web', image: 'registry.example.com/app:hold' });
    const file = tokenFile('ps', `${ADMIN}\n`);
    // --token is warned about (the shell history keeps it), and taken out of the process list once the client runs
    for (const how of [{ env: admin, args: [] as string[] }, { env: {}, args: ['--token-file', file] }, { env: {}, args: ['--token', ADMIN] }]) {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), ...how.args, 'jobs', 'wait', String(first.id)], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SWARM_UTILS_URL: url, ...how.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d) => (out += String(d)));
      child.stderr.on('data', (d) => (out += String(d)));
      // following: the job is being asked for
      await until(async () => out.includes('following job'), 20_000);
      const pids = [child.pid!, ...descendants(child.pid!)];
      const argv = pids.map((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' '));
      expect(argv[0]).toContain('jobs wait');
      for (const a of argv) expect(a).not.toContain(ADMIN);
      // what `ps` shows for every process of this machine
      const ps = await new Promise<string>((resolve) => {
        const p = spawn('ps', ['-eo', 'args'], { stdio: ['ignore', 'pipe', 'ignore'] });
        let text = '';
        p.stdout.on('data', (d) => (text += String(d)));
        p.on('close', () => resolve(text));
      });
      expect(ps).toContain('jobs wait');
      expect(ps).not.toContain(ADMIN);
      child.kill();
      await new Promise((r) => child.once('exit', r));
      expect(out).not.toContain(ADMIN);
      if (how.args[0] === '--token') expect(out).toContain('warning: --token');
    }
  });
});

/** the pids of a process's children, grandchildren… (from /proc) */
function descendants(pid: number): number[] {
  const children = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' ')[1] === String(pid);
      } catch {
        return false;
      }
    })
    .map(Number);
  return children.flatMap((c) => [c, ...descendants(c)]);
}

describe('restore asks first', () => {
  it('without a terminal and without --yes: refused (2), nothing sent', async () => {
    const r = await cli(['restore', 'web', '--latest'], { env: admin });
    expect(r.code).toBe(2);
    expect(r.err).toContain('--yes');
    expect(posted).toEqual([]);
  });

  it('on a terminal: the service name typed goes on, anything else does not', async () => {
    const wrong = await cli(['restore', 'web', '--latest'], { env: admin, tty: true, stdin: ['db\n'] });
    expect(wrong.code).toBe(2);
    expect(wrong.err).toContain('Type the service name (web)');
    expect(wrong.err).toContain('not confirmed');
    expect(posted).toEqual([]);
    const ok = await cli(['restore', 'web', '--latest'], { env: admin, tty: true, stdin: ['web\n'] });
    // the fixture has no restore job type: the API refuses it, after the confirmation
    expect(posted.map((p) => p.body)).toEqual([{ type: 'restore', service: 'web' }]);
    expect(ok.code).toBe(3);
    expect(ok.err).toContain('UNSUPPORTED');
  });
});

describe('on a terminal', () => {
  it('--wait draws one spinning status line under the step lines', async () => {
    const r = await cli(['update', 'web', '--image', 'registry.example.com/app:hold', '--wait', '--timeout', '400ms'], { env: admin, tty: true });
    expect(r.code).toBe(6);
    expect(r.out).toContain('\r\x1b[2K');
    expect(r.out).toMatch(/job \d+ \(update web\) work \d/);
  });
});

describe('status, backups, version, config check', () => {
  it('status of a service and of every service', async () => {
    const one = await cli(['status', 'web'], { env: admin });
    expect(one.code, one.err).toBe(0);
    expect(one.out).toContain('service  web (replicated)');
    expect(one.out).not.toContain(WEB);
    const all = await cli(['status'], { env: { SWARM_UTILS_TOKEN: WEB } });
    expect(all.code, all.err).toBe(0);
    expect(all.out).toMatch(/^web +/m);
    expect(all.out).not.toMatch(/^db +/m);
  });

  it('backups ls without S3: the API says why, exit 3', async () => {
    const r = await cli(['backups', 'ls', '--service', 'web'], { env: admin });
    expect([0, 3]).toContain(r.code);
    if (r.code === 3) expect(r.err).toMatch(/^swarm-utils: [A-Z_]+: /m);
  });

  it('version: the client and the server', async () => {
    const r = await cli(['version'], { env: admin });
    expect(r.code).toBe(0);
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(r.out).toContain(`client ${pkg.version}`);
    expect(r.out).toMatch(/^server .+ at http:\/\/127\.0\.0\.1:\d+$/m);
    const down = await cli(['version'], { env: { SWARM_UTILS_URL: `http://127.0.0.1:${await freePort()}` } });
    expect(down.code).toBe(0);
    expect(down.out).toContain('cannot reach swarm-utils');
  });

  it('config check validates the way start-up does: 0 when valid, 2 with every problem; no secret shown', async () => {
    const good = await cli(['config', 'check'], { env: { SWARM_UTILS_ADMIN_TOKEN_LIST: ADMIN, SWARM_UTILS_PORT: '9_090' } });
    expect(good.code, good.err).toBe(0);
    expect(good.out).toContain('configuration is valid');
    expect(good.out).toContain('listen        0.0.0.0:9090');
    expect(good.out).toContain('admin tokens  1');
    const secret = `s3-secret-${randomBytes(6).toString('hex')}`;
    const bad = await cli(['config', 'check'], {
      env: { SWARM_UTILS_ADMIN_TOKEN_LIST: ADMIN, SWARM_UTILS_PORT: 'eighty', SWARM_UTILS_S3_SECRET_ACCESS_KEY: secret, SWARM_UTILS_CRON_EXPR: 'never', SWARM_UTILS_TYPO: '1' },
    });
    expect(bad.code).toBe(2);
    for (const name of ['SWARM_UTILS_PORT', 'SWARM_UTILS_CRON_EXPR', 'SWARM_UTILS_TYPO', 'SWARM_UTILS_S3_DOMAIN']) expect(bad.err).toContain(name);
    for (const text of [bad.out, bad.err, good.out, good.err]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(ADMIN);
    }
    // the client's own variables are no typo (SWARM_UTILS_URL is set by cli() too)
    expect(bad.err).not.toContain('SWARM_UTILS_URL');
    expect((await cli(['config', 'check'], { env: admin })).code).toBe(0);
  });
});

describe('docs/cli.md', () => {
  it("holds the help of swarm-utils and of every verb as --help prints it", async () => {
    const doc = readFileSync(path.join(ROOT, 'docs/cli.md'), 'utf8');
    const blocks = new Map([...doc.matchAll(/^```text\n\$ (swarm-utils[a-z -]*?) --help\n([\s\S]*?)```$/gm)].map((m) => [m[1]!, m[2]!]));
    const texts = await helpTexts({ stdout: sink(), stderr: sink(), stdin: Readable.from([]), env: {}, readFile: () => '' });
    const missing = [...texts.keys()].filter((k) => !blocks.has(k));
    expect(missing, 'commands without their --help block in docs/cli.md').toEqual([]);
    for (const [cmd, help] of texts) {
      expect(blocks.get(cmd), `docs/cli.md: the block of "${cmd} --help" differs from the real output (run: npx tsx src/cli/docs.ts)`).toBe(help);
      // the real --help prints the same text
      const r = await cli([...cmd.split(' ').slice(1), '--help']);
      expect(r.out).toBe(help);
    }
  });
});
