import { AppError } from '../errors.js';
import { getJob, insertJob, listJobs } from '../db/jobs.js';
import { stepsOf, stepsOfMany } from '../db/steps.js';
import { cancelTree } from '../engine/cancel.js';
import type { Deps, JobKind, SubmitCheck, Target } from '../engine/types.js';
import type { Worker } from '../engine/worker.js';
import { registryAuthFor } from '../jobs/image.js';
import type { NodeInfo, ServiceInfo } from '../swarm/port.js';
import { type Authorizer, type Caller, canSeeJob, visibilityOf } from './auth.js';
import { type JobView, presentJob } from './present.js';
import type { ListQuery, SubmitBody } from './schemas.js';

export interface JobsService {
  submit(caller: Caller, body: SubmitBody): Promise<JobView>;
  get(caller: Caller, id: number): Promise<JobView>;
  list(caller: Caller, q: ListQuery): Promise<{ jobs: JobView[]; next: number | null }>;
  cancel(caller: Caller, id: number): Promise<JobView>;
  /** waits for the end of a job, at most `ms`, or until the process starts to stop */
  wait(id: number, ms: number): Promise<JobView>;
  view(id: number): JobView;
  /** true once the process stops: submissions are refused (SHUTTING_DOWN), waits end at once */
  stopping(): boolean;
}

/** lives beside JobKind (engine/types.ts); re-exported for the API's own imports */
export type { SubmitCheck };

/** how long a submission waits for the copy of the state to hold its job */
const SUBMIT_COPY_MS = 3_000;

/** the job's parameters as recorded (README "HTTP API": POST /jobs bodies by type) */
export function paramsOf(b: SubmitBody): Record<string, unknown> {
  const p: Record<string, unknown> = {};
  if (b.image !== undefined) p.image = b.image;
  if (b.type === 'restore' && b.node !== undefined) p.node = b.node;
  if (b.volume !== undefined) p.volume = b.volume;
  if (b.key !== undefined) p.key = b.key;
  if (b.safetyBackup !== undefined) p.safetyBackup = b.safetyBackup;
  if (b.to !== undefined) p.to = b.to;
  return p;
}

export function createJobsService(
  deps: Deps,
  worker: Pick<Worker, 'wake' | 'waitFor' | 'stopping'>,
  auth: Authorizer,
  kinds: Record<string, JobKind & SubmitCheck>,
): JobsService {
  const { db, docker } = deps;
  const view = (id: number) => {
    const job = getJob(db, id);
    if (!job) throw new AppError('NOT_FOUND', `job ${id} does not exist`);
    return presentJob(job, stepsOf(db, id));
  };
  /** 403 for a non-admin whatever the reason, so a token cannot probe which services exist */
  const denied = (caller: Caller, what: string, exists: boolean) =>
    !exists && caller.admin ? new AppError('NOT_FOUND', `${what} does not exist`) : new AppError('FORBIDDEN', `this token may not act on ${what}`);

  async function resolveTarget(caller: Caller, b: SubmitBody, kind: JobKind & SubmitCheck): Promise<Target> {
    if (b.type === 'migrate' && !caller.admin) throw new AppError('FORBIDDEN', 'migrate is for admin tokens only');
    if (b.service !== undefined) {
      const svc = await docker.getService(b.service);
      if (!svc || !auth.canService(caller, b.type, svc)) throw denied(caller, `service ${b.service}`, !!svc);
      // credentials only for their own registry: refused now, before a job exists
      if (b.type === 'update') registryAuthFor(b.image ?? svc.image, { request: b.registryAuth, labels: svc.labels, config: deps.config, strict: true });
      await kind.precheck?.(deps, { service: svc, params: paramsOf(b) });
      return { kind: 'service', name: svc.name };
    }
    if (b.node !== undefined) {
      const node = await findNode(caller, b.node);
      await kind.precheck?.(deps, { node });
      return { kind: 'node', name: node.id, label: node.hostname };
    }
    if (!caller.admin) {
      // `all` with a label token means what it grants: a token that grants nothing of this type may not start one
      const scope = await auth.scope(caller);
      const any = [...scope.services.values()].some((types) => types.includes(b.type)) || (b.type === 'clean' && scope.nodes.length > 0);
      if (!any) throw new AppError('FORBIDDEN', `this token may not run ${b.type} on anything`);
    }
    await kind.precheck?.(deps, { params: paramsOf(b) });
    return { kind: 'all', name: null };
  }

  /**
   * A node by id, or by hostname when that names one node: a node that left and re-joined the swarm keeps
   * a Down entry under the same hostname, so a hostname may name several (409 AMBIGUOUS_NODE with the
   * candidates). A label token only ever learns about the nodes it may clean.
   */
  async function findNode(caller: Caller, idOrHostname: string): Promise<NodeInfo> {
    const nodes = caller.admin ? await docker.listNodes() : (await auth.scope(caller)).nodes;
    const byId = nodes.find((n) => n.id === idOrHostname);
    const found = byId ? [byId] : nodes.filter((n) => n.hostname === idOrHostname);
    if (found.length === 1) return found[0]!;
    if (!found.length) throw denied(caller, `node ${idOrHostname}`, false);
    const candidates = found.map((n) => ({ id: n.id, hostname: n.hostname, state: n.state, availability: n.availability, role: n.role }));
    throw new AppError(
      'AMBIGUOUS_NODE',
      `hostname ${idOrHostname} names ${found.length} nodes (${candidates.map((c) => `${c.id} ${c.state}`).join(', ')}): give the node id`,
      { candidates },
    );
  }

  return {
    view,
    stopping: () => worker.stopping,
    async submit(caller, b) {
      if (worker.stopping) throw new AppError('SHUTTING_DOWN', 'swarm-utils is shutting down: submit the job again in a moment');
      const kind = kinds[b.type];
      if (!kind) throw new AppError('UNSUPPORTED', `${b.type} jobs are not available in this version`);
      const target = await resolveTarget(caller, b, kind);
      const job = insertJob(db, {
        type: b.type,
        targetKind: target.kind,
        target: target.name,
        targetLabel: target.label ?? null,
        params: paramsOf(b),
        secrets: b.registryAuth ? { registryAuth: b.registryAuth } : null,
        source: 'api',
        locks: target.kind === 'all' ? [] : kind.locks(target),
        requester: caller.short,
        requesterHash: caller.hash,
        requesterAdmin: caller.admin,
      });
      deps.log.info({ jobId: job.id, type: job.type, target, requester: caller.short }, 'job queued');
      worker.wake();
      // an accepted job is in the bucket's copy before it is answered, so a takeover never loses it (README "Losing its manager")
      if (deps.state && !(await deps.state.copied(SUBMIT_COPY_MS))) deps.log.warn({ jobId: job.id }, 'the job is answered before the state copy holds it');
      return view(job.id);
    },
    async get(caller, id) {
      const job = getJob(db, id);
      if (!job) throw denied(caller, `job ${id}`, false);
      if (!canSeeJob(caller, job, caller.admin ? null : await auth.scope(caller))) throw denied(caller, `job ${id}`, true);
      return view(id);
    },
    async list(caller, q) {
      // what a label token may see is worked out once, then filtered in SQL: the cost does not grow with the table
      const visibleTo = caller.admin ? undefined : visibilityOf(caller, await auth.scope(caller));
      const rows = listJobs(db, { type: q.type, state: q.state, service: q.service, node: q.node, before: q.before, limit: q.limit + 1, visibleTo });
      const jobs = rows.slice(0, q.limit);
      const steps = stepsOfMany(db, jobs.map((j) => j.id));
      const next = rows.length > q.limit ? (jobs.at(-1)?.id ?? null) : null;
      return { jobs: jobs.map((j) => presentJob(j, steps.get(j.id) ?? [])), next };
    },
    async cancel(caller, id) {
      await this.get(caller, id);
      cancelTree(db, id);
      worker.wake();
      return view(id);
    },
    async wait(id, ms) {
      await worker.waitFor(id, ms);
      return view(id);
    },
  };
}
