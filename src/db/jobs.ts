import type { Db } from './index.js';
import { scrubWal } from './meta.js';

export const JOB_TYPES = ['clean', 'backup', 'update', 'restore', 'drill', 'migrate'] as const;
export type JobType = (typeof JOB_TYPES)[number];
export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';
export type TargetKind = 'service' | 'node' | 'all';
export type JobSource = 'api' | 'cron' | 'parent';
export const FINAL_STATES: readonly JobState[] = ['succeeded', 'failed', 'canceled'];

export interface JobRow {
  id: number;
  type: JobType;
  state: JobState;
  targetKind: TargetKind;
  /** service name, or node id (a hostname in rows written before node ids) */
  target: string | null;
  /** what an operator reads for the target: the node's hostname (null for services and `all`) */
  targetLabel: string | null;
  params: Record<string, unknown>;
  secrets: Record<string, unknown> | null;
  source: JobSource;
  parentId: number | null;
  dependsOn: number | null;
  locks: string[];
  requester: string | null;
  requesterHash: string | null;
  requesterAdmin: boolean;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  errorCode: string | null;
  errorMessage: string | null;
  result: unknown;
  owner: string | null;
  cancelRequested: boolean;
  /** when the job's last notification was delivered (migrations/0005_notifications.sql) */
  notifiedAt: number | null;
  /** a finished job whose compensation could not finish: pending (retried), done, or left to the operator */
  compensation: Compensation | null;
}

export type Compensation = 'pending' | 'done' | 'operator';

export interface NewJob {
  type: JobType;
  targetKind: TargetKind;
  target: string | null;
  targetLabel?: string | null;
  params?: Record<string, unknown>;
  secrets?: Record<string, unknown> | null;
  source: JobSource;
  parentId?: number | null;
  dependsOn?: number | null;
  locks: string[];
  requester?: string | null;
  requesterHash?: string | null;
  requesterAdmin?: boolean;
}

interface RawJob {
  id: number;
  type: string;
  state: string;
  target_kind: string;
  target: string | null;
  target_label: string | null;
  params: string;
  secrets: string | null;
  source: string;
  parent_id: number | null;
  depends_on: number | null;
  locks: string;
  requester: string | null;
  requester_hash: string | null;
  requester_admin: number;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  error_code: string | null;
  error_message: string | null;
  result: string | null;
  owner: string | null;
  cancel_requested: number;
  notified_at?: number | null;
  compensation: string | null;
}

const parse = <T>(s: string | null, fallback: T): T => (s == null ? fallback : (JSON.parse(s) as T));

function fromRaw(r: RawJob): JobRow {
  return {
    id: r.id,
    type: r.type as JobType,
    state: r.state as JobState,
    targetKind: r.target_kind as TargetKind,
    target: r.target,
    targetLabel: r.target_label,
    params: parse(r.params, {}),
    secrets: parse(r.secrets, null),
    source: r.source as JobSource,
    parentId: r.parent_id,
    dependsOn: r.depends_on,
    locks: parse(r.locks, []),
    requester: r.requester,
    requesterHash: r.requester_hash,
    requesterAdmin: r.requester_admin === 1,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    errorCode: r.error_code,
    errorMessage: r.error_message,
    result: parse(r.result, null),
    owner: r.owner,
    cancelRequested: r.cancel_requested === 1,
    notifiedAt: r.notified_at ?? null,
    compensation: (r.compensation as Compensation | null) ?? null,
  };
}

export function insertJob(db: Db, j: NewJob, now = Date.now()): JobRow {
  const info = db
    .prepare(
      `INSERT INTO jobs (type, state, target_kind, target, target_label, params, secrets, source, parent_id, depends_on, locks,
         requester, requester_hash, requester_admin, created_at)
       VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(
      j.type,
      j.targetKind,
      j.target,
      j.targetLabel ?? null,
      JSON.stringify(j.params ?? {}),
      j.secrets ? JSON.stringify(j.secrets) : null,
      j.source,
      j.parentId ?? null,
      j.dependsOn ?? null,
      JSON.stringify(j.locks),
      j.requester ?? null,
      j.requesterHash ?? null,
      j.requesterAdmin ? 1 : 0,
      now,
    );
  return getJob(db, Number(info.lastInsertRowid))!;
}

export function getJob(db: Db, id: number): JobRow | null {
  const r = db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as RawJob | undefined;
  return r ? fromRaw(r) : null;
}

export function jobsInState(db: Db, state: JobState): JobRow[] {
  return (db.prepare('SELECT * FROM jobs WHERE state = ? ORDER BY id').all(state) as RawJob[]).map(fromRaw);
}

export function childrenOf(db: Db, parentId: number): JobRow[] {
  return (db.prepare('SELECT * FROM jobs WHERE parent_id = ? ORDER BY id').all(parentId) as RawJob[]).map(fromRaw);
}

/** what a non-admin may see, worked out once per request (see api/jobs-service.ts) */
export interface Visibility {
  /** `<type>/<service name>` pairs the token may act on */
  services: string[];
  /** node ids (and hostnames, for rows written before node ids) the token may clean */
  nodes: string[];
  /** keyed hash of the token: the `all` jobs it asked for */
  requesterHash: string;
}

export interface JobFilter {
  type?: string;
  state?: string;
  service?: string;
  /** a node id or a hostname */
  node?: string;
  before?: number;
  limit: number;
  visibleTo?: Visibility;
}

/** newest first; `before` is an id cursor */
export function listJobs(db: Db, f: JobFilter): JobRow[] {
  const where: string[] = [];
  const args: unknown[] = [];
  if (f.type) (where.push('type = ?'), args.push(f.type));
  if (f.state) (where.push('state = ?'), args.push(f.state));
  if (f.service) (where.push("target_kind = 'service' AND target = ?"), args.push(f.service));
  if (f.node) (where.push("target_kind = 'node' AND (target = ? OR target_label = ?)"), args.push(f.node, f.node));
  if (f.before) (where.push('id < ?'), args.push(f.before));
  if (f.visibleTo) {
    const v = f.visibleTo;
    where.push(`((target_kind = 'service' AND type || '/' || target IN (SELECT value FROM json_each(?)))
      OR (target_kind = 'node' AND target IN (SELECT value FROM json_each(?)))
      OR (target_kind = 'all' AND requester_hash = ?))`);
    args.push(JSON.stringify(v.services), JSON.stringify(v.nodes), v.requesterHash);
  }
  const sql = `SELECT * FROM jobs ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id DESC LIMIT ?`;
  return (db.prepare(sql).all(...args, f.limit) as RawJob[]).map(fromRaw);
}

export function markRunning(db: Db, id: number, owner: string, now = Date.now()): void {
  db.prepare("UPDATE jobs SET state = 'running', started_at = COALESCE(started_at, ?), owner = ? WHERE id = ?").run(now, owner, id);
}

/** the first failure of a job is kept; later ones (in compensation) do not overwrite it */
export function recordJobError(db: Db, id: number, code: string, message: string): void {
  db.prepare('UPDATE jobs SET error_code = ?, error_message = ? WHERE id = ? AND error_code IS NULL').run(code, message, id);
}

export function setJobResult(db: Db, id: number, result: unknown): void {
  db.prepare('UPDATE jobs SET result = ? WHERE id = ?').run(JSON.stringify(result), id);
}

/**
 * Ends a job in one transaction: its node prunes end and its locks are released, unless it still holds a
 * service scaled down (its compensation could not finish): then it keeps its locks, so no other job acts on
 * that service, and its compensation is `pending` until the worker's retry gives the service back.
 * Returns true when the compensation is pending.
 */
export function finishJob(db: Db, id: number, state: JobState, now = Date.now()): boolean {
  const hadSecrets = db.prepare('SELECT secrets IS NOT NULL FROM jobs WHERE id = ?').pluck().get(id) === 1;
  const pending = db.transaction(() => {
    db.prepare('UPDATE jobs SET state = ?, finished_at = ?, secrets = NULL, owner = NULL WHERE id = ?').run(state, now, id);
    db.prepare('DELETE FROM node_prunes WHERE job_id = ?').run(id);
    const held = db.prepare("SELECT COUNT(*) FROM service_holds WHERE job_id = ? AND state = 'held'").pluck().get(id) as number;
    if (held > 0) {
      db.prepare("UPDATE jobs SET compensation = 'pending' WHERE id = ?").run(id);
      return true;
    }
    db.prepare('DELETE FROM locks WHERE job_id = ?').run(id);
    return false;
  })();
  // the erased credentials must not stay readable in the write-ahead log
  if (hadSecrets) scrubWal(db);
  return pending;
}

/** the pending compensation of a finished job ended (`done`, or left to the operator): its locks are released */
export function endCompensation(db: Db, id: number, outcome: 'done' | 'operator'): void {
  db.transaction(() => {
    db.prepare('UPDATE jobs SET compensation = ? WHERE id = ?').run(outcome, id);
    db.prepare('DELETE FROM locks WHERE job_id = ?').run(id);
  })();
}

/** finished jobs whose compensation is still to be retried */
export function jobsWithPendingCompensation(db: Db): JobRow[] {
  return (db.prepare("SELECT * FROM jobs WHERE compensation = 'pending' ORDER BY id").all() as RawJob[]).map(fromRaw);
}

/** merges `fields` into the job's result object (a non-object result is kept under `value`) */
export function mergeJobResult(db: Db, id: number, fields: Record<string, unknown>): void {
  db.transaction(() => {
    const raw = db.prepare('SELECT result FROM jobs WHERE id = ?').pluck().get(id) as string | null | undefined;
    const current = raw == null ? null : (JSON.parse(raw) as unknown);
    const base = current === null ? {} : typeof current === 'object' && !Array.isArray(current) ? current : { value: current };
    db.prepare('UPDATE jobs SET result = ? WHERE id = ?').run(JSON.stringify({ ...base, ...fields }), id);
  })();
}

export function requestCancel(db: Db, id: number): void {
  db.prepare('UPDATE jobs SET cancel_requested = 1 WHERE id = ?').run(id);
}

export function isCancelRequested(db: Db, id: number): boolean {
  return db.prepare('SELECT cancel_requested FROM jobs WHERE id = ?').pluck().get(id) === 1;
}

/**
 * Deletes finished top-level jobs (children and steps go with them) older than `cutoff`, except those whose
 * compensation is still pending, and the cron runs of that age whose jobs are gone with them.
 */
export function deleteFinishedBefore(db: Db, cutoff: number): { jobs: number; cronRuns: number } {
  return db.transaction(() => {
    const jobs = db
      .prepare(
        `DELETE FROM jobs WHERE parent_id IS NULL AND state IN ('succeeded', 'failed', 'canceled') AND finished_at < ?
           AND (compensation IS NULL OR compensation != 'pending')`,
      )
      .run(cutoff).changes;
    const cronRuns = db
      .prepare(
        `DELETE FROM cron_runs WHERE created_at < ?
           AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id IN (cron_runs.clean_job_id, cron_runs.backup_job_id))`,
      )
      .run(cutoff).changes;
    return { jobs, cronRuns };
  })();
}
