import type { JobRow } from '../db/jobs.js';
import type { StepRow } from '../db/steps.js';

const iso = (ms: number | null): string | null => (ms == null ? null : new Date(ms).toISOString());

export interface JobView {
  id: number;
  type: string;
  state: string;
  /** node: the hostname, with the node's id beside it (rows written before node ids hold only the hostname) */
  target: { service: string } | { node: string; nodeId?: string } | { all: true };
  params: Record<string, unknown>;
  source: string;
  parentId: number | null;
  requestedBy: string | null;
  createdAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  /** when a notification of this job was last delivered (README "Notifications") */
  notifiedAt: string | null;
  error: { code: string; message: string } | null;
  result: unknown;
  steps: { name: string; state: string; startedAt: string | null; finishedAt: string | null; detail: Record<string, unknown>; output: string | null }[];
}

/** the job object (README "HTTP API"), never wrapped */
export function presentJob(job: JobRow, steps: StepRow[]): JobView {
  const target = job.targetKind === 'all' ? ({ all: true } as const) : job.targetKind === 'node' ? nodeTarget(job) : { service: job.target! };
  return {
    id: job.id,
    type: job.type,
    state: job.state,
    target,
    params: job.params,
    source: job.source,
    parentId: job.parentId,
    requestedBy: job.requester,
    createdAt: iso(job.createdAt),
    startedAt: iso(job.startedAt),
    finishedAt: iso(job.finishedAt),
    notifiedAt: iso(job.notifiedAt),
    error: job.errorCode ? { code: job.errorCode, message: job.errorMessage ?? '' } : null,
    result: job.result,
    steps: steps.map((s) => ({
      name: s.name,
      state: s.state,
      startedAt: iso(s.startedAt),
      finishedAt: iso(s.finishedAt),
      detail: s.detail,
      output: s.output,
    })),
  };
}

/** `{node: <hostname>, nodeId}`: operators read hostnames, the id tells a re-joined node from its stale entry */
export function nodeTarget(job: Pick<JobRow, 'target' | 'targetLabel'>): { node: string; nodeId?: string } {
  const label = job.targetLabel ?? job.target!;
  return label === job.target ? { node: label } : { node: label, nodeId: job.target! };
}
