import { AppError } from '../errors.js';
import { type JobRow, FINAL_STATES, childrenOf, insertJob } from '../db/jobs.js';
import { immediate } from '../db/index.js';
import { sleep } from './limits.js';
import type { JobKind, StepDef, Target } from './types.js';

/**
 * Steps of an `all` job: snapshot the targets once, create one child job per target (in the same
 * transaction that records the snapshot, so a crash never creates them twice), then wait for the children.
 */
export function fanOutSteps(kind: JobKind, wake: () => void, childDone: (parentId: number) => Promise<void>): StepDef[] {
  return [
    {
      name: 'snapshot',
      async run(ctx) {
        const { db } = ctx.deps;
        const existing = childrenOf(db, ctx.job.id);
        if (existing.length || ctx.detail.snapshotAt) return { detail: ctx.detail, output: `${existing.length} targets` };
        if (!kind.allTargets) throw new AppError('UNSUPPORTED', `${kind.type} does not support all=true`);
        const targets = await kind.allTargets(ctx.deps, { tokenHash: ctx.job.requesterAdmin ? null : ctx.job.requesterHash });
        const childIds = immediate(db, () => {
          const ids = targets.map((t) => insertChild(ctx.job, kind, t, db).id);
          ctx.save({ snapshotAt: new Date().toISOString(), targets, childIds: ids });
          return ids;
        });
        wake();
        return { output: `${childIds.length} targets: ${targets.map((t) => `${t.kind} ${t.label ?? t.name}`).join(', ')}` };
      },
    },
    {
      name: 'children',
      async run(ctx) {
        const { db } = ctx.deps;
        let kids = childrenOf(db, ctx.job.id);
        while (kids.some((k) => !FINAL_STATES.includes(k.state))) {
          await Promise.race([childDone(ctx.job.id), sleep(1000, ctx.signal)]);
          kids = childrenOf(db, ctx.job.id);
        }
        const outcomes = kids.map((k) => ({
          id: k.id,
          target: k.targetKind === 'node' ? nodeTarget(k) : { service: k.target },
          state: k.state,
          error: k.errorCode ? { code: k.errorCode, message: k.errorMessage } : null,
          ...((k.result as { skipped?: string } | null)?.skipped ? { skipped: (k.result as { skipped: string }).skipped } : {}),
        }));
        ctx.setResult({ children: outcomes });
        const failed = kids.filter((k) => k.state !== 'succeeded');
        if (failed.length) {
          const first = failed[0]!;
          throw new AppError(
            (first.errorCode as AppError['code']) ?? 'INTERNAL',
            `${failed.length} of ${kids.length} child jobs did not succeed: ${failed.map((k) => `#${k.id} ${k.targetLabel ?? k.target} ${k.errorCode ?? k.state}`).join('; ')}`,
          );
        }
        return { output: `${kids.length} child jobs succeeded` };
      },
    },
  ];
}

function insertChild(parent: JobRow, kind: JobKind, t: Target, db: Parameters<typeof insertJob>[0]): JobRow {
  return insertJob(db, {
    type: parent.type,
    targetKind: t.kind,
    target: t.name,
    targetLabel: t.label ?? null,
    params: parent.params,
    secrets: parent.secrets,
    source: 'parent',
    parentId: parent.id,
    locks: kind.locks(t),
    requester: parent.requester,
    requesterHash: parent.requesterHash,
    requesterAdmin: parent.requesterAdmin,
  });
}

/** a node child is shown by hostname, with its id when that differs (a re-joined node and its stale entry share a hostname) */
function nodeTarget(k: JobRow): { node: string | null; nodeId?: string } {
  const label = k.targetLabel ?? k.target;
  return label === k.target ? { node: label } : { node: label, nodeId: k.target! };
}
