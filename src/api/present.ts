import type { JobRow } from '../db/jobs.js';
import type { StepRow } from '../db/steps.js';

const iso = (ms: number | null): string | null => (ms == null ? null : new Date(ms).toISOString());

export interface JobView {
  id: number;
  type: string;
  state: string;
  target: { service: string } | { node: string } | { all: true };
  params: Record<string, unknown>;
  source: string;
  parentId: number | null;
  requestedBy: string | null;
  createdAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  error: { code: string; message: string } | null;
  result: unknown;
  steps: { name: string; state: string; startedAt: string | null; finishedAt: string | null; detail: Record<string, unknown>; output: string | null }[];
}

/** the job object (README "HTTP API"), never wrapped */
export function presentJob(job: JobRow, steps: StepRow[]): JobView {
  const target =
    job.targetKind === 'all' ? ({ all: true } as const) : job.targetKind === 'node' ? { node: job.target! } : { service: job.target! };
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
