/**
 * Step 7 of a backup (README "Retention"): once the new archives are verified, the archives of the same node
 * and volume older than the retention are deleted — never the newest of that node and volume, never an
 * archive this job made, never an object whose name is not one of ours (src/backups/names.ts). The days
 * come from `swarm-utils.backup.retention-days`, else SWARM_UTILS_BACKUP_RETENTION_DAYS; without either the
 * step is skipped. What it deletes is committed before the first deletion, so a resumed step deletes the
 * same list (again: a deletion of a missing object is no error) and the job result lists it whole.
 */
import { z } from 'zod';
import { type Config, parseRetentionDays } from '../../config.js';
import { AppError } from '../../errors.js';
import { mergeJobResult } from '../../db/jobs.js';
import { type StepContext, type StepOutcome, stepRef } from '../../engine/types.js';
import { openBucket } from '../../backups/bucket.js';
import { type ParsedArchive, expiredArchives, parseArchiveKey, plainKey } from '../../backups/names.js';
import { L } from '../labels.js';
import { resolvedOf, serviceById } from './resolve.js';

const DAY_MS = 86_400_000;

const Expired = z.object({ node: z.string(), volume: z.string(), key: z.string(), size: z.number(), time: z.string() });
export type Expired = z.infer<typeof Expired>;
export const RetentionDetail = z.object({
  days: z.number().positive(),
  /** archives older than this (ISO 8601) were candidates */
  cutoff: z.string(),
  /** committed before the first deletion */
  expired: z.array(Expired),
});
type RetentionDetail = z.infer<typeof RetentionDetail>;
export const RETENTION = stepRef('retention', RetentionDetail);

/** the retention of a service in days (its label, else the configuration), null for none; a malformed label fails VALIDATION */
export function retentionDaysOf(labels: Record<string, string>, config: Pick<Config, 'backupRetentionDays'>): number | null {
  const label = labels[L.backupRetentionDays];
  if (label === undefined || label.trim() === '') return config.backupRetentionDays;
  const r = parseRetentionDays(label);
  if ('problem' in r) throw new AppError('VALIDATION', `${L.backupRetentionDays} ${r.problem}; no archive was deleted`);
  return r.days;
}

export async function retention(ctx: StepContext<RetentionDetail>): Promise<StepOutcome<RetentionDetail>> {
  const before = RetentionDetail.safeParse(ctx.detail);
  const planned = before.success ? { plan: before.data } : await planRetention(ctx);
  if ('kept' in planned) return { skipped: true, output: `every archive is kept (${planned.kept})` };
  const { plan } = planned;
  if (!before.success) ctx.save(plan);
  const bucket = await openBucket(ctx.deps.config.s3);
  try {
    for (const e of plan.expired) {
      await bucket.remove(e.key, ctx.signal);
      ctx.log.info({ key: e.key, node: e.node, volume: e.volume }, 'archive deleted by retention');
    }
  } finally {
    bucket.close();
  }
  mergeJobResult(ctx.deps.db, ctx.job.id, { retentionDays: plan.days, deleted: plan.expired });
  const head = `retention ${plan.days} day(s): ${plan.expired.length} archive(s) older than ${plan.cutoff} deleted`;
  return { detail: plan, output: [head, ...plan.expired.map((e) => e.key)].join('\n') };
}

/** what to delete, from a listing of each archived node and volume; or why no retention applies */
async function planRetention(ctx: StepContext<RetentionDetail>): Promise<{ plan: RetentionDetail } | { kept: string }> {
  const r = resolvedOf(ctx);
  const { config, docker } = ctx.deps;
  const svc = await serviceById(ctx, r.serviceId);
  const days = retentionDaysOf(svc.labels, config);
  if (days === null) {
    const labelled = svc.labels[L.backupRetentionDays]?.trim();
    return { kept: labelled ? `${L.backupRetentionDays}=${labelled}` : `no ${L.backupRetentionDays} label and no SWARM_UTILS_BACKUP_RETENTION_DAYS` };
  }
  const cutoff = Date.now() - days * DAY_MS;
  // hostnames that hold a `_` are told apart from the volume by the swarm's own node names
  const known = [...new Set([...(await docker.listNodes()).map((n) => n.hostname), ...r.pairs.map((p) => p.node)])];
  const mine = new Set(r.pairs.map((p) => plainKey(p.key)));
  const pairs = [...new Map(r.pairs.map((p) => [`${p.node}\0${p.volume}`, { node: p.node, volume: p.volume }])).values()];
  const expired: Expired[] = [];
  const bucket = await openBucket(config.s3);
  try {
    for (const pair of pairs) {
      const objects = await bucket.list(`${pair.node}_${pair.volume}_`, ctx.signal);
      const sizes = new Map(objects.map((o) => [o.key, o.size]));
      const archives = objects.flatMap((o): ParsedArchive[] => {
        const a = parseArchiveKey(o.key, config.s3.path, known);
        return a ? [a] : [];
      });
      for (const a of expiredArchives(archives, pair, cutoff, mine)) {
        expired.push({ node: a.node, volume: a.volume, key: a.key, size: sizes.get(a.key) ?? 0, time: new Date(a.time).toISOString() });
      }
    }
  } finally {
    bucket.close();
  }
  return { plan: { days, cutoff: new Date(cutoff).toISOString(), expired } };
}
