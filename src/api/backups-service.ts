/**
 * GET /backups (README "Listing the archives"): the archives in the bucket, newest first, parsed from their
 * names, with what the database knows of each (file count and bytes recorded when it was staged, its
 * last drill). The bucket is the source of truth: an archive the database never heard of is listed, and a
 * job whose archive is gone lists nothing.
 */
import { z } from 'zod';
import { AppError } from '../errors.js';
import { archiveCounts } from '../db/backups.js';
import type { Deps } from '../engine/types.js';
import { openBucket } from '../backups/bucket.js';
import { drillOutcomes, drillsByKey } from '../backups/drills.js';
import { type Encryption, type ParsedArchive, newestFirst, parseArchiveKey, parseArchiveName, parseOffenKey, plainKey } from '../backups/names.js';
import { namedVolumes } from '../jobs/backup/plan.js';
import type { NodeInfo, ServiceInfo } from '../swarm/port.js';
import type { Authorizer, Caller } from './auth.js';
import { volumesOf } from './backup-freshness.js';
import { NODE_NAME, SERVICE_NAME, decimal } from './schemas.js';

/** what an archive of offen's ends with */
const OFFEN_KEY = /\.tar(?:\.gz|\.zst)?(?:\.(?:gpg|age))?$/;
const VOLUME_NAME = z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$/, 'must be a volume name: letters, digits, "_", "." or "-"');
const CURSOR = z
  .string()
  .max(1024)
  .refine((k) => parseArchiveName(k.split('/').pop() ?? '') !== null || OFFEN_KEY.test(k), 'must be the `next` of an earlier answer (an archive key)');

export const BackupsQuery = z.strictObject({
  token: z.string().max(4096).optional(),
  service: SERVICE_NAME.optional(),
  volume: VOLUME_NAME.optional(),
  node: NODE_NAME.optional(),
  limit: decimal(1, 1000).default(100),
  before: CURSOR.optional(),
});
export type BackupsQuery = z.infer<typeof BackupsQuery>;

const LastDrill = z.object({ at: z.string(), ok: z.boolean(), jobId: z.number(), error: z.string().nullable() });

const BackupView = z.object({
  key: z.string(),
  /** null for an archive offen wrote itself: its name says neither */
  node: z.string().nullable(),
  volume: z.string().nullable(),
  /** `offen`: written by offen/docker-volume-backup itself (SWARM_UTILS_OFFEN_FILENAMES), restorable with key and volume */
  format: z.literal('offen').optional(),
  /** the time in the archive's name (UTC, ISO 8601) */
  time: z.string(),
  size: z.number(),
  encrypted: z.boolean(),
  /** recorded when the archive was staged */
  files: z.number().optional(),
  bytes: z.number().optional(),
  /** the end of its last successful drill */
  verifiedAt: z.string().optional(),
  /** its last drill, whatever the outcome */
  lastDrill: LastDrill.optional(),
});
export type BackupView = z.infer<typeof BackupView>;

export const BackupsAnswer = z.object({ backups: z.array(BackupView), next: z.string().nullable() });
export type BackupsAnswer = z.infer<typeof BackupsAnswer>;

const iso = (ms: number): string => new Date(ms).toISOString();

/** one page of `archives` (already filtered) after the cursor, newest first, and the cursor of the next page */
export function pageOf<T extends Pick<ParsedArchive, 'time' | 'key'>>(archives: T[], limit: number, before?: string): { page: T[]; next: string | null } {
  const sorted = [...archives].sort(newestFirst);
  const name = before ? parseArchiveName(before.split('/').pop() ?? '') : null;
  // an offen name's time is found in the listing (its pattern may hold no date)
  const time = name?.time ?? archives.find((a) => a.key === before)?.time;
  const cursor = before && time !== undefined ? { key: before, time } : null;
  const after = cursor ? sorted.filter((a) => newestFirst(a, cursor) > 0) : sorted;
  const page = after.slice(0, limit);
  return { page, next: after.length > limit ? page.at(-1)!.key : null };
}

/** what filters the listing: volumes a label token may see (null: all), volumes of `service=`, `volume=`, `node=` */
export interface ArchiveFilter {
  visible: Set<string> | null;
  service: Set<string> | null;
  volume?: string;
  node?: string;
}

export const matches = (a: Pick<ParsedArchive, 'node' | 'volume'>, f: ArchiveFilter): boolean =>
  (f.visible === null || f.visible.has(a.volume)) &&
  (f.service === null || f.service.has(a.volume)) &&
  (f.volume === undefined || a.volume === f.volume) &&
  (f.node === undefined || a.node === f.node);

type Listed = { key: string; node: string | null; volume: string | null; time: number; encryption: Encryption | null; size: number; format?: 'offen' };

export function createBackupsService(deps: Pick<Deps, 'db' | 'docker' | 'config'>, auth: Authorizer) {
  const { db, docker, config } = deps;

  /** 403 for a non-admin whatever the reason, so a token cannot probe which services exist */
  const denied = (caller: Caller, name: string, exists: boolean) =>
    !exists && caller.admin ? new AppError('NOT_FOUND', `service ${name} does not exist`) : new AppError('FORBIDDEN', `this token may not read the archives of service ${name}`);

  function filterOf(caller: Caller, q: BackupsQuery, services: ServiceInfo[], nodes: NodeInfo[]): ArchiveFilter {
    let visible: Set<string> | null = null;
    if (!caller.admin) {
      const readable = services.filter((s) => auth.canArchives(caller, s));
      if (!readable.length) throw new AppError('FORBIDDEN', 'this token may read no archive: it may neither back up nor restore any service');
      visible = new Set(readable.flatMap((s) => namedVolumes(s.spec).map((v) => v.name)));
    }
    let service: Set<string> | null = null;
    if (q.service !== undefined) {
      const svc = services.find((s) => s.name === q.service) ?? services.find((s) => s.id === q.service);
      if (!svc || !auth.canArchives(caller, svc)) throw denied(caller, q.service, !!svc);
      service = new Set(volumesOf(svc));
    }
    // archives are named by hostname; a node id is taken for its node's hostname
    const node = q.node === undefined ? undefined : (nodes.find((n) => n.id === q.node)?.hostname ?? q.node);
    return { visible, service, volume: q.volume, node };
  }

  function present(a: Listed, counts: Map<string, { files: number; bytes: number }>, drills: ReturnType<typeof drillsByKey>): BackupView {
    const c = counts.get(a.key) ?? counts.get(plainKey(a.key));
    const d = drills(a.key);
    return {
      key: a.key,
      node: a.node,
      volume: a.volume,
      ...(a.format ? { format: a.format } : {}),
      time: iso(a.time),
      size: a.size,
      encrypted: a.encryption !== null,
      ...(c ? { files: c.files, bytes: c.bytes } : {}),
      ...(d.verifiedAt !== null ? { verifiedAt: iso(d.verifiedAt) } : {}),
      ...(d.last ? { lastDrill: { at: iso(d.last.at), ok: d.last.ok, jobId: d.last.jobId, error: d.last.error } } : {}),
    };
  }

  return {
    async list(caller: Caller, q: BackupsQuery): Promise<BackupsAnswer> {
      const [services, nodes] = await Promise.all([docker.listServices(), docker.listNodes()]);
      const filter = filterOf(caller, q, services, nodes);
      const known = nodes.map((n) => n.hostname);
      const bucket = await openBucket(config.s3);
      let objects;
      try {
        // with a node (and a volume), only the names that start with it are listed
        objects = await bucket.list(filter.node === undefined ? '' : `${filter.node}_${filter.volume === undefined ? '' : `${filter.volume}_`}`);
      } finally {
        bucket.close();
      }
      // offen's archives name no node nor volume: listed only when nothing narrows the listing to some
      const offenToo = filter.visible === null && filter.service === null && filter.volume === undefined && filter.node === undefined;
      const archives = objects.flatMap((o): Listed[] => {
        const a = parseArchiveKey(o.key, config.s3.path, known);
        if (a) return matches(a, filter) ? [{ ...a, size: o.size }] : [];
        const offen = offenToo ? parseOffenKey(o.key, config.s3.path, config.offenFilenames) : null;
        if (!offen) return [];
        const time = offen.time ?? (o.lastModified ? Date.parse(o.lastModified) : 0);
        return [{ key: o.key, node: null, volume: null, time, encryption: offen.encryption, size: o.size, format: 'offen' }];
      });
      const { page, next } = pageOf(archives, q.limit, q.before);
      const keys = page.flatMap((a) => [a.key, plainKey(a.key)]);
      const counts = new Map<string, { files: number; bytes: number }>();
      // newest job first: the first count seen for a key wins
      for (const c of archiveCounts(db, [...new Set(keys)])) if (!counts.has(c.key)) counts.set(c.key, c);
      const drills = drillsByKey(drillOutcomes(db));
      return { backups: page.map((a) => present(a, counts, drills)), next };
    },
  };
}
export type BackupsService = ReturnType<typeof createBackupsService>;
