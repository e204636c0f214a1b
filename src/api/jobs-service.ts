import { AppError } from '../errors.js';
import { type JobRow, getJob, insertJob, listJobs } from '../db/jobs.js';
import { stepsOf, stepsOfMany } from '../db/steps.js';
import { cancelTree } from '../engine/cancel.js';
import type { Deps, JobKind, SubmitCheck, Target } from '../engine/types.js';
import type { Worker } from '../engine/worker.js';
import type { NodeInfo, ServiceInfo } from '../swarm/port.js';
import { type Authorizer, type Caller, canSeeJob } from './auth.js';
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
    if (b.service !== undefined) {
      const svc = await docker.getService(b.service);
      if (!svc || !auth.canService(caller, b.type, svc)) throw denied(caller, `service ${b.service}`, !!svc);
      await kind.precheck?.(deps, { service: svc });
      return { kind: 'service', name: svc.name };
    }
    if (b.node !== undefined) {
      const node = await docker.getNode(b.node);
      if (!node || !auth.canNode(caller, node)) throw denied(caller, `node ${b.node}`, !!node);
      await kind.precheck?.(deps, { node });
      return { kind: 'node', name: node.hostname };
    }
    await kind.precheck?.(deps, {});
    return { kind: 'all', name: null };
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
        params: b.image ? { image: b.image } : {},
        secrets: b.registryAuth ? { registryAuth: b.registryAuth } : null,
        source: 'api',
        locks: target.kind === 'all' ? [] : kind.locks(target),
        requester: caller.short,
        requesterHash: caller.hash,
        requesterAdmin: caller.admin,
      });
      deps.log.info({ jobId: job.id, type: job.type, target, requester: caller.short }, 'job queued');
      worker.wake();
      return view(job.id);
    },
    async get(caller, id) {
      const job = getJob(db, id);
      if (!job) throw denied(caller, `job ${id}`, false);
      if (!(await visible(caller, [job])).length) throw denied(caller, `job ${id}`, true);
      return view(id);
    },
    async list(caller, q) {
      const out: JobRow[] = [];
      let before = q.before;
      let more = true;
      while (out.length < q.limit && more) {
        const page = listJobs(db, { type: q.type, state: q.state, service: q.service, node: q.node, before, limit: q.limit * 2 });
        more = page.length === q.limit * 2;
        out.push(...(await visible(caller, page)));
        before = page.at(-1)?.id;
      }
      const jobs = out.slice(0, q.limit);
      const steps = stepsOfMany(db, jobs.map((j) => j.id));
      const next = out.length > q.limit || more ? (jobs.at(-1)?.id ?? null) : null;
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

  async function visible(caller: Caller, jobs: JobRow[]): Promise<JobRow[]> {
    if (caller.admin) return jobs;
    const needServices = jobs.some((j) => j.targetKind === 'service');
    const needNodes = jobs.some((j) => j.targetKind === 'node');
    const services = needServices ? await docker.listServices() : [];
    const nodes = needNodes ? await docker.listNodes() : [];
    const lookup = {
      service: (n: string) => services.find((s) => s.name === n) ?? null,
      node: (n: string) => nodes.find((x) => x.hostname === n || x.id === n) ?? null,
    };
    return jobs.filter((j) => canSeeJob(auth, caller, j, lookup));
  }
}
