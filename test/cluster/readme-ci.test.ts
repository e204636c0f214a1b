/**
 * The documentation's CI snippets, run as written: each block marked `<!-- tested: NAME -->` is taken out
 * of README.md, CONTRIBUTING.md or docs/*.md (the CI snippets are in docs/api.md), its YAML parsed, and its script run the way its CI system runs it (GitHub Actions:
 * `bash --noprofile --norc -eo pipefail`; GitLab CI on alpine: BusyBox `sh`) with only the variables
 * the job defines, against a swarm-utils server on the test swarm that updates a real service. The
 * waiting jobs also run through a proxy that answers polls with its own 504, as a proxy cutting a
 * long request would: they must still report the job's outcome and never submit it twice.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { IMAGES, REGISTRY, REGISTRY_AUTH, run, type RunResult } from '../helpers/testbed.js';
import { startServer, type RunningServer } from '../helpers/server.js';
import { createAppService, execInTask, inspect, removeServices, runningTasks, serverEnv, uid, waitRunning } from '../helpers/cluster.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const id = uid();
const SERVICE = `ci-web-${id}`;
const TOKEN = `ci-token-${id}`;
const MISSING = `${REGISTRY}/test/app:missing-${id}`;
const tmp = mkdtempSync(path.join(tmpdir(), 'swarm-utils-readme-ci-'));

interface Snippet {
  name: string;
  lang: string;
  text: string;
}

/** every documentation page: README.md, CONTRIBUTING.md and docs/*.md */
function pages(): string[] {
  const docs = readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => path.join('docs', f));
  return ['README.md', 'CONTRIBUTING.md', ...docs].filter((f) => existsSync(path.join(ROOT, f)));
}

/** the marked blocks of every page; a name marked twice is an error */
function snippets(): Map<string, Snippet> {
  const out = new Map<string, Snippet>();
  for (const page of pages()) for (const m of readFileSync(path.join(ROOT, page), 'utf8').matchAll(/<!-- tested: ([a-z-]+)[^>]*-->\n```(\w+)\n([\s\S]*?)\n```/g)) {
    expect(out.has(m[1]!), `${m[1]} is marked twice`).toBe(false);
    out.set(m[1]!, { name: m[1]!, lang: m[2]!, text: m[3]! });
  }
  return out;
}

interface CiScript {
  /** what runs the script, as the CI system would */
  shell: string[];
  script: string;
  /** the variables the job itself defines (the test supplies values for the ones it needs) */
  defines: string[];
}

function githubScript(s: Snippet): CiScript {
  const doc = parse(s.text);
  // a whole workflow, or a list of steps to add to one
  const job = doc?.jobs ? (Object.values(doc.jobs)[0] as any) : { steps: doc };
  const steps = (job.steps as any[]).filter((st) => typeof st.run === 'string');
  expect(steps, `${s.name}: one step with a script`).toHaveLength(1);
  expect(steps[0].shell).toBe('bash');
  return { shell: ['bash', '--noprofile', '--norc', '-eo', 'pipefail'], script: steps[0].run, defines: Object.keys({ ...job.env, ...steps[0].env }) };
}

function gitlabScript(s: Snippet): CiScript {
  const doc = parse(s.text);
  const job = Object.values(doc)[0] as any;
  expect(job.image).toMatch(/^alpine:/);
  expect(job.script, `${s.name}: one script item`).toHaveLength(1);
  return { shell: ['busybox', 'sh'], script: job.script[0], defines: Object.keys(job.variables ?? {}) };
}

let s: RunningServer;

async function runScript(ci: CiScript, env: Record<string, string>): Promise<RunResult> {
  const dir = mkdtempSync(path.join(tmp, 'job-'));
  const file = path.join(dir, 'script.sh');
  writeFileSync(file, ci.script);
  const [cmd, ...args] = ci.shell;
  return run(cmd!, [...args, file], { cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, timeoutMs: 240_000 });
}

/** the job variables the snippets read; SWARM_UTILS_URL and SWARM_UTILS_TOKEN come from the CI's settings */
const jobEnv = (image: string, over: Record<string, string> = {}) => ({ SWARM_UTILS_URL: s.url, SWARM_UTILS_TOKEN: TOKEN, SERVICE, IMAGE: image, ...over });

const updateJobs = async (): Promise<any[]> => (await s.api('GET', `/jobs?type=update&service=${SERVICE}&limit=100`)).json.jobs;

/** the image to roll out next: the one the service does not run */
async function nextImage(): Promise<string> {
  const current: string = (await inspect(SERVICE)).Spec.TaskTemplate.ContainerSpec.Image;
  return current.startsWith(`${IMAGES.appV2}@`) ? IMAGES.appV1 : IMAGES.appV2;
}

async function versionRunning(): Promise<string> {
  await waitRunning(SERVICE, 1);
  const [task] = await runningTasks(SERVICE);
  return (await execInTask(task, ['cat', '/version'])).trim();
}

/** a proxy in front of the server that answers the first `cut` polls of a job with its own 504 */
async function cuttingProxy(cut: number) {
  let cutSoFar = 0;
  const seen: string[] = [];
  const target = new URL(s.url);
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.method === 'GET' && req.url?.startsWith('/jobs/') && cutSoFar < cut) {
      cutSoFar++;
      res.writeHead(504, { 'content-type': 'text/html' });
      res.end('<html><body><h1>504 Gateway Time-out</h1></body></html>');
      return;
    }
    const up = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => res.writeHead(502).end('bad gateway'));
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    cut: () => cutSoFar,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

beforeAll(async () => {
  s = await startServer(serverEnv());
  await createAppService(SERVICE, { image: IMAGES.appV1, labels: { 'swarm-utils.update.token': TOKEN } });
});

afterAll(async () => {
  await s?.stop();
  await removeServices(SERVICE);
  rmSync(tmp, { recursive: true, force: true });
});

const WAITING = { 'github-wait': githubScript, 'gitlab-wait': gitlabScript } as const;
const ASYNC = { 'github-async': githubScript, 'gitlab-async': gitlabScript } as const;

describe("the documentation's CI snippets, run as written", () => {
  it('marks every CI snippet, and each is valid YAML defining the variables it reads', () => {
    const all = snippets();
    expect([...all.keys()].sort()).toEqual(['github-async', 'github-wait', 'gitlab-async', 'gitlab-wait', 'shell-examples']);
    for (const [name, parseScript] of Object.entries({ ...WAITING, ...ASYNC })) {
      const ci = parseScript(all.get(name)!);
      // the GitHub fire-and-forget snippet is a step for the workflow job above it, whose env it reads
      const defines = name === 'github-async' ? [...ci.defines, ...githubScript(all.get('github-wait')!).defines] : ci.defines;
      for (const v of ['SERVICE', 'IMAGE']) expect(defines, `${name} defines ${v}`).toContain(v);
      expect(ci.script).toMatch(/set -(?:[a-z]*o|o) pipefail/);
      expect(ci.script).toContain('--fail-with-body');
      expect(ci.script).toContain('jq -n --arg');
    }
  });

  for (const [name, parseScript] of Object.entries(WAITING)) {
    it(`${name}: rolls out, waits for the rollout and exits 0; one job`, async () => {
      const ci = parseScript(snippets().get(name)!);
      const image = await nextImage();
      const before = (await updateJobs()).length;
      const r = await runScript(ci, jobEnv(image));
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain('"succeeded"');
      const jobs = await updateJobs();
      expect(jobs.length).toBe(before + 1);
      expect(jobs[0].state).toBe('succeeded');
      expect(await versionRunning()).toBe(image === IMAGES.appV2 ? 'v2' : 'v1');
      expect(r.stdout + r.stderr).not.toContain(TOKEN);
    });

    it(`${name}: through a proxy that answers polls with its own 504, still one job and the right outcome`, async () => {
      const ci = parseScript(snippets().get(name)!);
      const proxy = await cuttingProxy(2);
      try {
        const image = await nextImage();
        const before = (await updateJobs()).length;
        const r = await runScript(ci, jobEnv(image, { SWARM_UTILS_URL: proxy.url }));
        expect(r.code, r.stdout + r.stderr).toBe(0);
        expect(proxy.cut()).toBe(2);
        expect(proxy.seen.filter((x) => x.startsWith('POST ')).length).toBe(1);
        expect((await updateJobs()).length).toBe(before + 1);
        expect(await versionRunning()).toBe(image === IMAGES.appV2 ? 'v2' : 'v1');
      } finally {
        await proxy.close();
      }
    });

    it(`${name}: a failed update fails the CI job with the job's error`, async () => {
      const ci = parseScript(snippets().get(name)!);
      const before = (await updateJobs()).length;
      const r = await runScript(ci, jobEnv(MISSING));
      expect(r.code, r.stdout + r.stderr).not.toBe(0);
      expect(r.stderr).toContain('REGISTRY_ERROR');
      const jobs = await updateJobs();
      expect(jobs.length).toBe(before + 1);
      expect(jobs[0].state).toBe('failed');
    });
  }

  for (const [name, parseScript] of Object.entries(ASYNC)) {
    it(`${name}: submits one update and exits 0 at once; the job then succeeds`, async () => {
      const ci = parseScript(snippets().get(name)!);
      const image = await nextImage();
      const before = (await updateJobs()).length;
      const r = await runScript(ci, jobEnv(image));
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const printed = JSON.parse(r.stdout);
      expect(printed).toMatchObject({ id: expect.any(Number), state: 'queued', error: null });
      const jobs = await updateJobs();
      expect(jobs.length).toBe(before + 1);
      const end = Date.now() + 120_000;
      let job = jobs[0];
      while (!['succeeded', 'failed', 'canceled'].includes(job.state)) {
        if (Date.now() > end) throw new Error(`job ${job.id} did not end`);
        await new Promise((res) => setTimeout(res, 500));
        job = (await s.api('GET', `/jobs/${printed.id}`)).json;
      }
      expect(job.state).toBe('succeeded');
    });
  }

  it('every snippet fails on a refused submission (a token the service does not list): exit non-zero, no job, the error printed', async () => {
    const all = snippets();
    for (const [name, parseScript] of Object.entries({ ...WAITING, ...ASYNC })) {
      const before = (await updateJobs()).length;
      const r = await runScript(parseScript(all.get(name)!), jobEnv(IMAGES.appV2, { SWARM_UTILS_TOKEN: `not-${TOKEN}` }));
      expect(r.code, `${name}: ${r.stdout}${r.stderr}`).not.toBe(0);
      expect(r.stdout + r.stderr, name).toContain('FORBIDDEN');
      expect((await updateJobs()).length, name).toBe(before);
    }
  });

  it('the shell examples of "From a shell" run as written (the "follow a job" filter included)', async () => {
    // --norc: Node's stdio pipes are sockets, which bash would take for a remote shell and read ~/.bashrc
    const r = await run('bash', ['--noprofile', '--norc', '-c', snippets().get('shell-examples')!.text], {
      cwd: tmp,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ...jobEnv(await nextImage()),
        REGISTRY_URL: `https://${REGISTRY}`,
        REGISTRY_USER: REGISTRY_AUTH.username,
        REGISTRY_PASSWORD: REGISTRY_AUTH.password,
      },
      timeoutMs: 240_000,
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    // update with waitRes, same tag again, JSON form: each printed its state
    expect(r.stdout.match(/succeeded/g)?.length).toBeGreaterThanOrEqual(3);
    // the last command's output: the followed job with its steps
    const followed = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{\n  "state"')));
    expect(followed.state).toMatch(/queued|running|succeeded/);
    expect(followed.steps.map((x: any) => x.name)).toEqual(['exec-pre', 'resolve-image', 'update-service', 'wait-rollout', 'exec-post']);
    expect(r.stdout).not.toContain(REGISTRY_AUTH.password);
  });
});
