import type { z } from 'zod';
import type { Config } from '../config.js';
import type { Db } from '../db/index.js';
import type { JobRow, JobType, TargetKind } from '../db/jobs.js';
import type { Logger } from '../log.js';
import type { DockerPort, NodeInfo, ServiceInfo } from '../swarm/port.js';

/** What steps may use. Narrow it with Pick<> where a function needs less. */
export interface Deps {
  db: Db;
  docker: DockerPort;
  config: Config;
  log: Logger;
  /** this installation's id (see migrations/0002_meta.sql): prefixes helper names */
  instance: string;
  /** the copy of the database in the bucket (README "Losing its manager"); absent without S3 */
  state?: StateGate;
}

/**
 * The copy of the database in the bucket, as the engine sees it (src/state/gate.ts): every action a step
 * takes through the Docker port first waits until the copy holds every change made so far.
 */
export interface StateGate {
  /**
   * Before an action: the copy holds every change made so far. `strict`: a copy that fails fails the
   * action (S3_ERROR); compensation is not strict (it acts all the same). Throws when another instance took over.
   */
  beforeAct(opts: { strict: boolean; signal?: AbortSignal }): Promise<void>;
  /** resolves true once the copy holds every change made so far, false when that took longer than `ms` (it goes on) */
  copied(ms: number): Promise<boolean>;
  /** a Docker call met a manager cut off from the quorum: resolves when the swarm answers again (logged once) */
  waitQuorum(signal?: AbortSignal): Promise<void>;
  /** true while cut off from the quorum: nothing is claimed */
  readonly waiting: boolean;
  /** set when this process restored the bucket's copy at start-up (another manager's instance was lost) */
  readonly takeover: { generation: number; at: string; from: string } | null;
}

/** a step's committed detail: a JSON object */
export type Detail = Record<string, unknown>;

/** A step's name (and former names) with the schema of its committed detail: how other steps read that detail back. */
export interface StepRef<D extends Detail = Detail> {
  name: string;
  /** names this step had in older versions: a job recorded under one of them resumes as this step */
  aliases?: readonly string[];
  /** the committed detail, checked when it is saved and parsed when it is read back (a mismatch fails loudly) */
  detail?: z.ZodType<D>;
}

/** A reference to a step's detail with its schema. */
export const stepRef = <D extends Detail>(name: string, detail: z.ZodType<D>, aliases: readonly string[] = []): StepRef<D> & { detail: z.ZodType<D> } => ({
  name,
  aliases,
  detail,
});

/** What a job holds while it runs (engine/holds.ts): services it scaled down, nodes it prunes. */
export interface Holds {
  /**
   * Before scaling a service down: waits (at most LOCK_TIMEOUT) while a prune runs on one of `nodes` (the
   * node ids of its tasks), then records that this job holds the service down until the compensation step
   * `undo` gives it back (to `replicas`, when known). Committed before the caller acts; calling it again
   * (a re-entered step) is fine.
   */
  holdService(h: { serviceId: string; service: string; nodes: string[]; undo: string; replicas?: number }): Promise<void>;
  /** the spec version after this job's own change of a held service: any other version later means an operator acted */
  setVersion(serviceId: string, version: number): void;
  /** the compensation gave the service back */
  releaseService(serviceId: string): void;
  /** whether this job holds the service down */
  isHeld(serviceId: string): boolean;
  /**
   * Before a prune on a node: waits (at most LOCK_TIMEOUT) while a job holds a service with tasks there scaled
   * down; from then on until this job ends, no job scales down a service with tasks on that node.
   */
  holdNode(nodeId: string, hostname?: string): Promise<void>;
}

export interface StepContext<D extends Detail = Detail> {
  job: JobRow;
  deps: Deps;
  log: Logger;
  /** aborted when the job passes LOCK_MAX_OCCUPATION_TIME (reason: AppError TIMEOUT) or the process stops (a cancel is seen at the next step boundary) */
  signal: AbortSignal;
  /** this step's committed detail, parsed through its schema: empty on a first run, what was saved before a crash on a resumed run */
  detail: Partial<D>;
  /** true when the step had started before (the process died inside it) */
  reentered: boolean;
  /** commits the step's detail at once (checked against its schema): call it before acting with whatever is needed to resume or undo */
  save(detail: D): void;
  /** committed detail of a step of the same job, by name (validated through that step's schema when it has one; `{}` when none) */
  detailOf(step: string): Detail;
  /** committed detail of a step of the same job, parsed through the step's schema; null when it committed nothing */
  detailOf<T extends Detail>(step: StepRef<T> & { detail: z.ZodType<T> }): T | null;
  setResult(result: unknown): void;
  holds: Holds;
}

export interface StepOutcome<D extends Detail = Detail> {
  detail?: D;
  output?: string;
  skipped?: boolean;
}

export interface StepDef<D extends Detail = Detail> extends StepRef<D> {
  /** compensation: runs even when an earlier step failed, the job was canceled, timed out, or its engine failed */
  always?: boolean;
  /**
   * The step reads what the job holds scaled down (e.g. it archives the volume of a stopped service). If the
   * process stops during it and gives the service back, the step's helpers are stopped first and the next
   * process takes the job up again from step `from` (a fresh stop), never reading the volume of a running service.
   */
  whileDown?: { from: string };
  run(ctx: StepContext<D>): Promise<StepOutcome<D> | void>;
}

/** a step written inline with a typed detail: `defineStep({ ...REF, run: async (ctx) => … })` keeps `ctx.detail` typed */
export const defineStep = <D extends Detail>(def: StepDef<D>): StepDef<D> => def;

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
  /** the `all` job's parameters (a cron drill names the backup job whose archives it drills) */
  params?: Record<string, unknown>;
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

/** Type-specific refusals before a job exists (NOT_ENABLED, UNSUPPORTED): checked at submission. */
export interface SubmitCheck {
  precheck?(deps: Deps, target: { service?: ServiceInfo; node?: NodeInfo; params?: Record<string, unknown> }): Promise<void> | void;
}
