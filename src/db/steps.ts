import type { Db } from './index.js';

export type StepState = 'pending' | 'running' | 'done' | 'failed' | 'skipped';

export interface StepRow {
  jobId: number;
  idx: number;
  name: string;
  state: StepState;
  always: boolean;
  startedAt: number | null;
  finishedAt: number | null;
  detail: Record<string, unknown>;
  output: string | null;
}

interface RawStep {
  job_id: number;
  idx: number;
  name: string;
  state: string;
  always: number;
  started_at: number | null;
  finished_at: number | null;
  detail: string;
  output: string | null;
}

const fromRaw = (r: RawStep): StepRow => ({
  jobId: r.job_id,
  idx: r.idx,
  name: r.name,
  state: r.state as StepState,
  always: r.always === 1,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  detail: JSON.parse(r.detail) as Record<string, unknown>,
  output: r.output,
});

/** output kept per step: the tail, so the end of a long command's output (its error) survives */
export const MAX_OUTPUT = 8 * 1024;
const clip = (s: string | null | undefined): string | null =>
  s == null ? null : s.length > MAX_OUTPUT ? '…' + s.slice(s.length - MAX_OUTPUT) : s;

export function insertSteps(db: Db, jobId: number, steps: { name: string; always?: boolean }[]): void {
  const stmt = db.prepare("INSERT OR IGNORE INTO steps (job_id, idx, name, state, always) VALUES (?, ?, ?, 'pending', ?)");
  steps.forEach((s, i) => stmt.run(jobId, i, s.name, s.always ? 1 : 0));
}

export function stepsOf(db: Db, jobId: number): StepRow[] {
  return (db.prepare('SELECT * FROM steps WHERE job_id = ? ORDER BY idx').all(jobId) as RawStep[]).map(fromRaw);
}

export function stepsOfMany(db: Db, jobIds: number[]): Map<number, StepRow[]> {
  const out = new Map<number, StepRow[]>(jobIds.map((id) => [id, []]));
  if (!jobIds.length) return out;
  const rows = db
    .prepare(`SELECT * FROM steps WHERE job_id IN (${jobIds.map(() => '?').join(',')}) ORDER BY job_id, idx`)
    .all(...jobIds) as RawStep[];
  for (const r of rows) out.get(r.job_id)?.push(fromRaw(r));
  return out;
}

export function startStep(db: Db, jobId: number, idx: number, now = Date.now()): void {
  db.prepare("UPDATE steps SET state = 'running', started_at = COALESCE(started_at, ?) WHERE job_id = ? AND idx = ?").run(now, jobId, idx);
}

/** commits a step's detail before the step acts: what a resumed step needs to be idempotent, or to undo */
export function saveStepDetail(db: Db, jobId: number, idx: number, detail: Record<string, unknown>): void {
  db.prepare('UPDATE steps SET detail = ? WHERE job_id = ? AND idx = ?').run(JSON.stringify(detail), jobId, idx);
}

export function endStep(
  db: Db,
  jobId: number,
  idx: number,
  state: 'done' | 'failed' | 'skipped',
  output?: string | null,
  now = Date.now(),
): void {
  db.prepare('UPDATE steps SET state = ?, finished_at = ?, output = COALESCE(?, output) WHERE job_id = ? AND idx = ?').run(
    state,
    now,
    clip(output),
    jobId,
    idx,
  );
}

/** appends a step the job's recorded plan lacks (a compensation step added by a newer version) */
export function appendStep(db: Db, jobId: number, name: string, always: boolean): StepRow {
  const idx = ((db.prepare('SELECT MAX(idx) FROM steps WHERE job_id = ?').pluck().get(jobId) as number | null) ?? -1) + 1;
  db.prepare("INSERT INTO steps (job_id, idx, name, state, always) VALUES (?, ?, ?, 'pending', ?)").run(jobId, idx, name, always ? 1 : 0);
  return stepsOf(db, jobId).find((s) => s.idx === idx)!;
}

/** a step to run again (by the next process): pending, its committed detail kept */
export function resetStep(db: Db, jobId: number, idx: number, output: string | null): void {
  db.prepare("UPDATE steps SET state = 'pending', started_at = NULL, finished_at = NULL, output = ? WHERE job_id = ? AND idx = ?").run(
    clip(output),
    jobId,
    idx,
  );
}
