import type { Config } from '../config.js';
import type { Db } from '../db/index.js';
import type { JobRow, JobType, TargetKind } from '../db/jobs.js';
import type { Logger } from '../log.js';
import type { DockerPort } from '../swarm/port.js';

/** What steps may use. Narrow it with Pick<> where a function needs less. */
export interface Deps {
  db: Db;
  docker: DockerPort;
  config: Config;
  log: Logger;
  /** this installation's id (see migrations/0002_meta.sql): prefixes helper names */
  instance: string;
}

export interface StepContext {
  job: JobRow;
  deps: Deps;
  log: Logger;
  /** aborted when the job passes LOCK_MAX_OCCUPATION_TIME (reason: AppError TIMEOUT) or the process stops */
  signal: AbortSignal;
  /** this step's committed detail: empty on a first run, what was saved before a crash on a resumed run */
  detail: Record<string, unknown>;
  /** true when the step had started before (the process died inside it) */
  reentered: boolean;
  /** commits the step's detail at once: call it before acting with whatever is needed to resume or undo */
  save(detail: Record<string, unknown>): void;
  /** committed detail of an earlier step of the same job */
  detailOf(stepName: string): Record<string, unknown>;
  setResult(result: unknown): void;
}

export interface StepOutcome {
  detail?: Record<string, unknown>;
  output?: string;
  skipped?: boolean;
}

export interface StepDef {
  name: string;
  /** compensation: runs even when an earlier step failed, the job was canceled or timed out */
  always?: boolean;
  run(ctx: StepContext): Promise<StepOutcome | void>;
}

export interface Target {
  kind: TargetKind;
  /** service name, node id, or null for `all` */
  name: string | null;
  /** what operators read: a node's hostname */
  label?: string;
}

/** The targets a requester may act on, for `all` jobs. */
export interface TargetGrant {
  /** null: everything (admin / cron) */
  tokenHash: string | null;
}

export interface JobKind {
  type: JobType;
  /** lock names a job of this kind on this target holds while it runs */
  locks(target: Target): string[];
  /** ordered steps of a job on one service or node */
  steps(job: JobRow): StepDef[];
  /** `all` jobs: the targets at the moment the job starts */
  allTargets?(deps: Deps, grant: TargetGrant): Promise<Target[]>;
}
