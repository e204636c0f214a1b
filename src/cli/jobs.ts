/** Submitting jobs and reading them back: every verb that starts a job ends here. */
import type { ApiResponse } from './client.js';
import type { Ctx } from './context.js';
import { parseDuration } from './duration.js';
import { EXIT, type ExitCode, exitOfJob } from './exit.js';
import { follow } from './follow.js';
import { type Job, endLine, jobDetails, jobName, jobsTable, oneLine } from './format.js';

export interface WaitOpts {
  wait?: boolean;
  timeout?: string;
}

/** prints the API's JSON as it came, with one newline */
export function printJson(ctx: Ctx, r: ApiResponse): void {
  ctx.out.write(r.text.endsWith('\n') ? r.text : `${r.text}\n`);
}

/** follows a job to its end (or the wait limit) and says how it ended */
export async function waitFor(ctx: Ctx, id: number, w: WaitOpts): Promise<ExitCode> {
  const timeoutMs = w.timeout === undefined ? null : parseDuration(w.timeout);
  const tty = ctx.progress.isTTY === true;
  const f = await follow(ctx.client, id, { out: ctx.progress, tty, pollMs: ctx.pollMs, timeoutMs });
  if (ctx.json) printJson(ctx, f.response);
  if (!f.final) {
    ctx.err.write(`swarm-utils: ${jobName(f.job)} is still ${f.job.state} after ${w.timeout}; it goes on: swarm-utils jobs wait ${f.job.id}\n`);
    return EXIT.timedOut;
  }
  const line = endLine(f.job);
  if (!ctx.json) (f.job.state === 'succeeded' ? ctx.out : ctx.err).write(`${line}\n`);
  else if (f.job.state !== 'succeeded') ctx.err.write(`swarm-utils: ${line}\n`);
  return exitOfJob(f.job);
}

/** POST /jobs, then either the accepted job or, with --wait, the job followed to its end */
export async function submit(ctx: Ctx, body: Record<string, unknown>, w: WaitOpts): Promise<ExitCode> {
  if (w.timeout !== undefined) parseDuration(w.timeout);
  const r = await ctx.client.call('POST', '/jobs', { body });
  const job = r.json as Job;
  if (w.wait) {
    if (ctx.json) ctx.err.write(`${jobName(job)} ${job.state}\n`);
    return waitFor(ctx, job.id, w);
  }
  if (ctx.json) printJson(ctx, r);
  else ctx.out.write(`${jobName(job)} ${job.state}\nfollow it with: swarm-utils jobs wait ${job.id}\n`);
  return EXIT.ok;
}

export async function showJob(ctx: Ctx, id: number): Promise<ExitCode> {
  const r = await ctx.client.call('GET', `/jobs/${id}`);
  if (ctx.json) printJson(ctx, r);
  else ctx.out.write(jobDetails(r.json as Job));
  return EXIT.ok;
}

export async function listJobs(ctx: Ctx, q: string): Promise<ExitCode> {
  const r = await ctx.client.call('GET', `/jobs${q}`);
  if (ctx.json) return (printJson(ctx, r), EXIT.ok);
  const { jobs, next } = r.json as { jobs: Job[]; next: number | null };
  ctx.out.write(jobs.length ? jobsTable(jobs) : 'no jobs\n');
  if (next !== null) ctx.out.write(`more: --before ${next}\n`);
  return EXIT.ok;
}

export async function cancelJob(ctx: Ctx, id: number, w: WaitOpts): Promise<ExitCode> {
  const r = await ctx.client.call('POST', `/jobs/${id}/cancel`);
  const job = r.json as Job;
  if (w.wait) return waitFor(ctx, id, w);
  if (ctx.json) printJson(ctx, r);
  else ctx.out.write(`${jobName(job)} ${job.state === 'canceled' ? 'canceled' : `${job.state}: it stops at its next step and gives back what it holds`}\n`);
  return EXIT.ok;
}

/** each step's output in full, in order: the job's own log */
export async function jobLogs(ctx: Ctx, id: number): Promise<ExitCode> {
  const r = await ctx.client.call('GET', `/jobs/${id}`);
  if (ctx.json) return (printJson(ctx, r), EXIT.ok);
  const job = r.json as Job;
  for (const s of job.steps) {
    ctx.out.write(`== ${s.name} (${s.state})${s.startedAt ? ` ${s.startedAt}` : ''}\n`);
    if (s.output) ctx.out.write(s.output.endsWith('\n') ? s.output : `${s.output}\n`);
  }
  if (job.error) ctx.out.write(`== error ${job.error.code}: ${oneLine(job.error.message, 2000)}\n`);
  return EXIT.ok;
}
