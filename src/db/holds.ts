import type { Db } from './index.js';

export type HoldState = 'held' | 'released' | 'operator';

/** a service a job scaled down, until its compensation step gives it back */
export interface ServiceHold {
  jobId: number;
  serviceId: string;
  service: string;
  nodes: string[];
  undoStep: string;
  /** the replica count the compensation gives back, when known */
  replicas: number | null;
  specVersion: number | null;
  state: HoldState;
  attempts: number;
  lastError: string | null;
  createdAt: number;
  updatedAt: number;
}

interface RawHold {
  job_id: number;
  service_id: string;
  service: string;
  nodes: string;
  undo_step: string;
  replicas: number | null;
  spec_version: number | null;
  state: string;
  attempts: number;
  last_error: string | null;
  created_at: number;
  updated_at: number;
}

const fromRaw = (r: RawHold): ServiceHold => ({
  jobId: r.job_id,
  serviceId: r.service_id,
  service: r.service,
  nodes: JSON.parse(r.nodes) as string[],
  undoStep: r.undo_step,
  replicas: r.replicas,
  specVersion: r.spec_version,
  state: r.state as HoldState,
  attempts: r.attempts,
  lastError: r.last_error,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** records (or re-records, on a re-entered step) that `jobId` holds a service down */
export function upsertHold(
  db: Db,
  h: { jobId: number; serviceId: string; service: string; nodes: string[]; undoStep: string; replicas?: number | null },
  now = Date.now(),
): void {
  db.prepare(
    `INSERT INTO service_holds (job_id, service_id, service, nodes, undo_step, replicas, state, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, 'held', ?, ?)
     ON CONFLICT (job_id, service_id) DO UPDATE SET state = 'held', nodes = excluded.nodes, undo_step = excluded.undo_step,
       replicas = excluded.replicas, updated_at = excluded.updated_at`,
  ).run(h.jobId, h.serviceId, h.service, JSON.stringify(h.nodes), h.undoStep, h.replicas ?? null, now, now);
}

export function setHoldVersion(db: Db, jobId: number, serviceId: string, version: number, now = Date.now()): void {
  db.prepare("UPDATE service_holds SET spec_version = ?, updated_at = ? WHERE job_id = ? AND service_id = ? AND state = 'held'").run(
    version,
    now,
    jobId,
    serviceId,
  );
}

export function endHold(db: Db, jobId: number, serviceId: string, state: 'released' | 'operator', note: string | null = null, now = Date.now()): void {
  db.prepare('UPDATE service_holds SET state = ?, last_error = COALESCE(?, last_error), updated_at = ? WHERE job_id = ? AND service_id = ?').run(
    state,
    note,
    now,
    jobId,
    serviceId,
  );
}

export function recordHoldAttempt(db: Db, jobId: number, serviceId: string, error: string | null, now = Date.now()): void {
  db.prepare('UPDATE service_holds SET attempts = attempts + 1, last_error = ?, updated_at = ? WHERE job_id = ? AND service_id = ?').run(
    error,
    now,
    jobId,
    serviceId,
  );
}

export function holdsOf(db: Db, jobId: number): ServiceHold[] {
  return (db.prepare('SELECT * FROM service_holds WHERE job_id = ? ORDER BY created_at').all(jobId) as RawHold[]).map(fromRaw);
}

export function heldBy(db: Db, jobId: number): ServiceHold[] {
  return holdsOf(db, jobId).filter((h) => h.state === 'held');
}

/** jobs of other than `jobId` holding a service down with a task on one of `nodes` */
export function holdsOnNodes(db: Db, nodes: string[], jobId: number): ServiceHold[] {
  if (!nodes.length) return [];
  return (
    db
      .prepare(
        `SELECT * FROM service_holds h WHERE state = 'held' AND job_id != ?
           AND EXISTS (SELECT 1 FROM json_each(h.nodes) WHERE value IN (${nodes.map(() => '?').join(',')}))`,
      )
      .all(jobId, ...nodes) as RawHold[]
  ).map(fromRaw);
}

/** prunes of jobs other than `jobId` running on one of `nodes` */
export function prunesOnNodes(db: Db, nodes: string[], jobId: number): { nodeId: string; jobId: number }[] {
  if (!nodes.length) return [];
  return db
    .prepare(`SELECT node_id AS nodeId, job_id AS jobId FROM node_prunes WHERE job_id != ? AND node_id IN (${nodes.map(() => '?').join(',')})`)
    .all(jobId, ...nodes) as { nodeId: string; jobId: number }[];
}

export function insertPrune(db: Db, nodeId: string, jobId: number, now = Date.now()): void {
  db.prepare('INSERT OR IGNORE INTO node_prunes (node_id, job_id, acquired_at) VALUES (?, ?, ?)').run(nodeId, jobId, now);
}

export function deletePrunesOf(db: Db, jobId: number): void {
  db.prepare('DELETE FROM node_prunes WHERE job_id = ?').run(jobId);
}
