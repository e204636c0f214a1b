import { AppError } from '../errors.js';
import { JOB_TYPES, listJobs } from '../db/jobs.js';
import { stepsOfMany } from '../db/steps.js';
import type { Deps } from '../engine/types.js';
import { ownLabels, redactLabels } from '../jobs/labels.js';
import type { Authorizer, Caller } from './auth.js';
import { presentJob } from './present.js';

/** GET /service/status: what an operator looks at first when a job failed */
export function createStatusService(deps: Pick<Deps, 'db' | 'docker'>, auth: Authorizer) {
  const { db, docker } = deps;
  return {
    async status(caller: Caller, name: string, logLines: number) {
      const svc = await docker.getService(name);
      const allowed = !!svc && JOB_TYPES.some((t) => auth.canService(caller, t, svc));
      if (!svc || !allowed) {
        throw !svc && caller.admin ? new AppError('NOT_FOUND', `service ${name} does not exist`) : new AppError('FORBIDDEN', `this token may not see service ${name}`);
      }
      const [tasks, nodes, logs] = await Promise.all([
        docker.listTasks(svc.id),
        docker.listNodes(),
        logLines > 0 ? docker.serviceLogs(svc.id, logLines) : Promise.resolve([]),
      ]);
      const hostname = (id: string | null) => nodes.find((n) => n.id === id)?.hostname ?? id;
      // a label token sees only the jobs of the actions it holds
      const types = JOB_TYPES.filter((t) => auth.canService(caller, t, svc));
      const jobs = listJobs(db, { service: svc.name, limit: 20 }).filter((j) => types.includes(j.type)).slice(0, 10);
      const steps = stepsOfMany(db, jobs.map((j) => j.id));
      const current = tasks.filter((t) => t.desiredState === 'running' || t.state === 'running');
      return {
        service: { id: svc.id, name: svc.name, image: svc.image, mode: svc.mode, createdAt: svc.createdAt, updatedAt: svc.updatedAt },
        replicas: { desired: svc.replicas, running: current.filter((t) => t.state === 'running').length },
        tasks: tasks
          .sort((a, b) => b.updatedAt.localeCompare(a.updatedAt))
          .slice(0, 20)
          .map((t) => ({ id: t.id, node: hostname(t.nodeId), state: t.state, desiredState: t.desiredState, error: t.error, image: t.image, updatedAt: t.updatedAt })),
        updateStatus: svc.updateStatus,
        labels: redactLabels(ownLabels(svc.labels)),
        jobs: jobs.map((j) => presentJob(j, steps.get(j.id) ?? [])),
        logs,
      };
    },
  };
}
export type StatusService = ReturnType<typeof createStatusService>;
