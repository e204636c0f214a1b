/** What a person reads: jobs, steps, archives and services as short lines and tables. */

export interface Step {
  name: string;
  state: string;
  startedAt: string | null;
  finishedAt: string | null;
  output: string | null;
  detail?: unknown;
}

export interface Job {
  id: number;
  type: string;
  state: string;
  target: { service?: string; node?: string; all?: boolean };
  params?: Record<string, unknown>;
  parentId?: number | null;
  createdAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  error: { code: string; message: string } | null;
  result?: unknown;
  steps: Step[];
}

export function targetOf(job: Pick<Job, 'target'>): string {
  const t = job.target ?? {};
  if (t.service !== undefined) return t.service;
  if (t.node !== undefined) return `node ${t.node}`;
  return t.all ? 'all' : '?';
}

/** seconds between two ISO times, e.g. "3.2 s" or "2 min 05 s" */
export function duration(from: string | null, to: string | null, now = Date.now()): string {
  if (!from) return '';
  const ms = (to ? Date.parse(to) : now) - Date.parse(from);
  if (!Number.isFinite(ms) || ms < 0) return '';
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
}

export function bytes(n: number | null | undefined): string {
  if (n == null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** "job 12 (backup web)" */
export const jobName = (job: Pick<Job, 'id' | 'type' | 'target'>): string => `job ${job.id} (${job.type} ${targetOf(job)})`;

/** the last line of a followed job: how it ended */
export function endLine(job: Job): string {
  const took = duration(job.startedAt ?? job.createdAt, job.finishedAt);
  const error = job.error ? `: ${job.error.code}: ${job.error.message}` : '';
  return `${jobName(job)} ${job.state}${took ? ` after ${took}` : ''}${error}`;
}

/** a step as it ended (or stands): "done    stop (1.2 s): scaled to 0" */
export function stepLine(s: Step): string {
  const took = s.state === 'done' || s.state === 'failed' ? duration(s.startedAt, s.finishedAt) : '';
  const output = s.output ? `: ${oneLine(s.output)}` : '';
  return `${s.state.padEnd(8)}${s.name}${took ? ` (${took})` : ''}${output}`;
}

export const oneLine = (text: string, max = 160): string => {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};

/** columns padded to the widest cell; the last column is not padded */
export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)].join('\n') + '\n';
}

/** a job with its steps, as `jobs show` prints it */
export function jobDetails(job: Job): string {
  const lines = [
    `${jobName(job)}: ${job.state}`,
    `  created  ${job.createdAt ?? ''}`,
    `  started  ${job.startedAt ?? '-'}`,
    `  finished ${job.finishedAt ?? '-'}`,
  ];
  if (job.parentId) lines.push(`  parent   job ${job.parentId}`);
  if (job.params && Object.keys(job.params).length) lines.push(`  params   ${JSON.stringify(job.params)}`);
  if (job.error) lines.push(`  error    ${job.error.code}: ${job.error.message}`);
  if (job.steps.length) lines.push('  steps:');
  for (const s of job.steps) lines.push(`    ${stepLine(s)}`);
  if (job.result !== null && job.result !== undefined) lines.push(`  result   ${JSON.stringify(job.result)}`);
  return lines.join('\n') + '\n';
}

const short = (iso: string | null): string => (iso ? iso.replace('T', ' ').replace(/\.\d{3}Z$/, 'Z') : '');

export function jobsTable(jobs: Job[]): string {
  return table(
    ['ID', 'TYPE', 'TARGET', 'STATE', 'CREATED', 'TOOK', 'ERROR'],
    jobs.map((j) => [String(j.id), j.type, targetOf(j), j.state, short(j.createdAt), duration(j.startedAt, j.finishedAt), j.error ? j.error.code : '']),
  );
}

export interface Archive {
  key: string;
  node: string;
  volume: string;
  time: string;
  size: number;
  encrypted?: boolean;
  files?: number | null;
  verifiedAt?: string | null;
}

export function backupsTable(backups: Archive[]): string {
  return table(
    ['TIME', 'NODE', 'VOLUME', 'SIZE', 'FILES', 'VERIFIED', 'KEY'],
    backups.map((b) => [short(b.time), b.node, b.volume, bytes(b.size), b.files == null ? '' : String(b.files), short(b.verifiedAt ?? null), b.key]),
  );
}
