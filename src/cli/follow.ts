/**
 * `--wait` and `jobs wait`: follows a job by polling GET /jobs/:id and prints each step as it starts
 * and ends. On a terminal one status line spins under the steps; otherwise plain lines only.
 * A job outlives a restart of swarm-utils, so an unreachable server is asked again for a while.
 */
import type { Client, ApiResponse } from './client.js';
import { CliError, EXIT } from './exit.js';
import { type Job, type Step, duration, jobName, stepLine } from './format.js';
import type { Out } from './io.js';

const FINAL = new Set(['succeeded', 'failed', 'canceled']);
const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/** how long the server may stay unreachable (a restart, a stack update) while a job is followed */
const UNREACHABLE_GRACE_MS = 90_000;

export interface Followed {
  job: Job;
  /** the last answer, for --json */
  response: ApiResponse;
  /** false: the wait limit passed first */
  final: boolean;
}

/** one spinning status line below permanent lines, on a terminal */
class Progress {
  private status = '';
  private frame = 0;
  private timer: NodeJS.Timeout | null = null;
  constructor(
    private readonly out: Out,
    private readonly tty: boolean,
  ) {
    if (tty) {
      this.timer = setInterval(() => this.draw(), 100);
      this.timer.unref();
    }
  }
  line(text: string): void {
    if (this.tty) this.out.write('\r\x1b[2K');
    this.out.write(`${text}\n`);
    this.draw();
  }
  setStatus(text: string): void {
    this.status = text;
    this.draw();
  }
  private draw(): void {
    if (!this.tty || !this.status) return;
    this.frame = (this.frame + 1) % FRAMES.length;
    this.out.write(`\r\x1b[2K${FRAMES[this.frame]} ${this.status}`);
  }
  end(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.tty && this.status) this.out.write('\r\x1b[2K');
    this.status = '';
  }
}

const isFinalStep = (s: Step) => s.state === 'done' || s.state === 'failed' || s.state === 'skipped';

/** the lines that a change from `before` to `now` of the steps prints */
function stepEvents(before: Map<string, string>, steps: Step[]): string[] {
  const lines: string[] = [];
  for (const s of steps) {
    const was = before.get(s.name) ?? 'pending';
    if (was === s.state) continue;
    if (s.state === 'running') lines.push(`running ${s.name}`);
    else if (isFinalStep(s)) lines.push(stepLine(s));
    before.set(s.name, s.state);
  }
  return lines;
}

function statusOf(job: Job): string {
  const running = job.steps.find((s) => s.state === 'running');
  if (job.state === 'queued') return `${jobName(job)} queued (waiting for its locks or a free worker) ${duration(job.createdAt, null)}`;
  if (running) return `${jobName(job)} ${running.name} ${duration(running.startedAt, null)}`;
  return `${jobName(job)} ${job.state} ${duration(job.startedAt, null)}`;
}

export async function follow(
  client: Client,
  id: number,
  opts: { out: Out; tty: boolean; pollMs: number; timeoutMs: number | null },
): Promise<Followed> {
  const progress = new Progress(opts.out, opts.tty);
  const seen = new Map<string, string>();
  const deadline = opts.timeoutMs === null ? Infinity : Date.now() + opts.timeoutMs;
  let lastReached = Date.now();
  let warned = false;
  let announced = false;
  try {
    for (;;) {
      let response: ApiResponse;
      try {
        response = await client.call('GET', `/jobs/${id}`);
        lastReached = Date.now();
        if (warned) progress.line('swarm-utils answers again');
        warned = false;
      } catch (err) {
        const retry = err instanceof CliError && err.code === EXIT.unreachable && Date.now() - lastReached < UNREACHABLE_GRACE_MS && Date.now() < deadline;
        if (!retry) throw err;
        if (!warned) progress.line(`${err.message}: asking again (the job goes on in swarm-utils)`);
        warned = true;
        await sleep(Math.max(opts.pollMs, 1000));
        continue;
      }
      const job = response.json as Job;
      if (!announced) progress.line(`following ${jobName(job)}`);
      announced = true;
      for (const line of stepEvents(seen, job.steps ?? [])) progress.line(line);
      if (FINAL.has(job.state)) return { job, response, final: true };
      if (Date.now() >= deadline) return { job, response, final: false };
      progress.setStatus(statusOf(job));
      await sleep(Math.min(opts.pollMs, Math.max(0, deadline - Date.now())));
    }
  } finally {
    progress.end();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
