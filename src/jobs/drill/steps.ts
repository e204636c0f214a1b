/**
 * A restore drill (README "Restore drills"): each archive is downloaded and unpacked completely into a
 * scratch volume on a node, counted, compared with the counts recorded when it was staged, and the scratch
 * volume is removed. Nothing of the service is touched.
 */
import { z } from 'zod';
import { AppError } from '../../errors.js';
import { type StepContext, type StepOutcome, stepRef } from '../../engine/types.js';
import { archivesOfChild, recordedCounts } from '../../db/backups.js';
import type { NodeInfo } from '../../swarm/port.js';
import { createObjectStore } from '../../s3.js';
import { archivesOf } from '../../backups/archives.js';
import { helperPrefix } from '../../swarm/helpers.js';
import { tail } from '../exec.js';
import { s3Refusal } from '../restore/backup-phases.js';
import { fetchOnNode } from '../restore/fetch.js';
import { runOnNode } from '../restore/node-helper.js';
import { isOffenKey, pickArchive, pickVolume, volumesOf } from '../restore/plan.js';
import { REMOVE_VOLUME_SH, errorLine } from '../restore/scripts.js';

/** drill parameters: the request's (volume, key) or, for a cron drill, the backup job whose archives to drill */
export const DrillParams = z.object({ volume: z.string().optional(), key: z.string().optional(), fromJob: z.number().int().optional() });

const Counts = z.object({ files: z.number(), bytes: z.number() });
const Planned = z.object({
  index: z.number().int(),
  nodeId: z.string(),
  /** where the archive was made (from its name) */
  node: z.string(),
  /** where it is drilled */
  drillNode: z.string(),
  volume: z.string(),
  key: z.string(),
  scratch: z.string(),
  expected: Counts.nullable(),
  /** written by offen itself (restore/fetch.ts: anyDir) */
  offen: z.boolean().optional(),
});
type Planned = z.infer<typeof Planned>;
export const DRILL_RESOLVE = stepRef('resolve', z.object({ service: z.string(), archives: z.array(Planned) }));

const Outcome = z.object({ files: z.number().nullable(), bytes: z.number().nullable(), error: z.string().nullable(), at: z.string() });
export const UNPACK = stepRef('unpack', z.object({ started: z.array(z.number()), done: z.record(z.string(), Outcome) }).partial());

export async function resolveDrill(ctx: StepContext<z.infer<typeof DRILL_RESOLVE.detail>>): Promise<StepOutcome<z.infer<typeof DRILL_RESOLVE.detail>>> {
  const before = DRILL_RESOLVE.detail.safeParse(ctx.detail);
  if (before.success) return { output: summary(before.data.archives) };
  const { docker, config, db, instance } = ctx.deps;
  const refused = s3Refusal(config);
  if (refused) throw refused;
  const svc = await docker.getService(ctx.job.target!);
  if (!svc) throw new AppError('NOT_FOUND', `service ${ctx.job.target} does not exist`);
  const params = DrillParams.parse(ctx.job.params);
  const found = params.fromJob !== undefined ? archivesOfChild(db, params.fromJob, svc.name) : await chosenArchives(ctx, svc, params);
  const nodes = await docker.listNodes();
  const archives = found.map((a, index): Planned => {
    const on = drillNode(nodes, a.node);
    const recorded = a.files !== undefined && a.bytes !== undefined ? { files: a.files, bytes: a.bytes } : recordedCounts(db, a.key);
    const scratch = `${helperPrefix(instance)}${ctx.job.id}-drill-${index}`;
    return { index, nodeId: on.id, node: a.node, drillNode: on.hostname, volume: a.volume, key: a.key, scratch, expected: recorded, ...('offen' in a && a.offen ? { offen: true } : {}) };
  });
  if (!archives.length) throw new AppError('NOT_FOUND', `no archive to drill for service ${svc.name}`);
  ctx.save({ service: svc.name, archives });
  return { output: summary(archives) };
}

type Found = { node: string; volume: string; key: string; files?: number; bytes?: number; offen?: boolean };

/** the key given, or the newest archive of each selected volume (of the one given) */
async function chosenArchives(ctx: StepContext, svc: Parameters<typeof volumesOf>[0], params: z.infer<typeof DrillParams>): Promise<Found[]> {
  const { config } = ctx.deps;
  const offen = params.key !== undefined && isOffenKey(config, params.key);
  const volumes =
    params.volume !== undefined || params.key !== undefined
      ? [pickVolume(svc, volumesOf(svc), params.volume ?? (offen ? undefined : volumeOfKey(svc, params.key!)))]
      : volumesOf(svc);
  if (params.key !== undefined) {
    const a = await pickArchive(config, volumes[0]!, '', params.key, ctx.signal);
    return [{ node: a.node, volume: a.volume, key: a.key, ...(a.format === 'offen' ? { offen: true } : {}) }];
  }
  const store = createObjectStore(config.s3);
  try {
    const out: Found[] = [];
    for (const volume of volumes) {
      // the newest of the volume, whichever node made it
      const [newest] = await archivesOf(store, config.s3.path, volume, undefined, ctx.signal);
      if (!newest) throw new AppError('NOT_FOUND', `no archive of volume ${volume} in the bucket`);
      out.push({ node: newest.node, volume: newest.volume, key: newest.key });
    }
    return out;
  } finally {
    store.close();
  }
}

/** the service's volume a key names (`…<volume>_<stamp>…`), so `key` alone is enough */
function volumeOfKey(svc: Parameters<typeof volumesOf>[0], key: string): string {
  const base = key.split('/').at(-1) ?? key;
  const match = volumesOf(svc).filter((v) => base.includes(`_${v}_`));
  if (match.length === 1) return match[0]!;
  throw new AppError('VALIDATION', `key ${key} is not an archive of a volume service ${svc.name} backs up (${volumesOf(svc).join(', ')})`, [
    { field: 'key', message: 'not an archive of this service' },
  ]);
}

/** the node the archive was made on when it is ready, else any ready node */
function drillNode(nodes: NodeInfo[], hostname: string): NodeInfo {
  const usable = nodes.filter((n) => n.state === 'ready' && n.availability === 'active');
  const node = usable.find((n) => n.hostname === hostname) ?? usable[0];
  if (!node) throw new AppError('DOCKER_ERROR', 'no ready node to drill on');
  return node;
}

const summary = (archives: Planned[]): string => archives.map((a) => `${a.key} on ${a.drillNode}${a.expected ? ` (expected ${a.expected.files} files, ${a.expected.bytes} bytes)` : ''}`).join('\n');

function drillOf(ctx: Pick<StepContext, 'detailOf'>): { service: string; archives: Planned[] } {
  const r = ctx.detailOf(DRILL_RESOLVE);
  if (!r) throw new AppError('INTERNAL', 'the resolve step committed nothing: the job cannot go on');
  return r;
}

/** each archive unpacked into its scratch volume and counted; each outcome committed as it ends */
export async function unpack(ctx: StepContext<z.infer<typeof UNPACK.detail>>): Promise<StepOutcome<z.infer<typeof UNPACK.detail>>> {
  const { archives } = drillOf(ctx);
  const done = { ...(ctx.detail.done ?? {}) };
  const started = new Set(ctx.detail.started ?? []);
  for (const a of archives) {
    if (done[a.index]) continue;
    started.add(a.index);
    ctx.save({ started: [...started], done });
    const out = await fetchOnNode(ctx, {
      key: String(a.index),
      nodeId: a.nodeId,
      node: a.drillNode,
      objectKey: a.key,
      mountVolume: a.scratch,
      archiveVolume: a.volume,
      anyDir: a.offen,
      work: 'drill',
      timeoutMs: ctx.deps.config.lockMaxExecutionMs,
    });
    done[a.index] = out.ok
      ? { files: out.count.files, bytes: out.count.bytes, error: null, at: new Date().toISOString() }
      : { files: null, bytes: null, error: out.message, at: new Date().toISOString() };
    ctx.save({ started: [...started], done });
  }
  const lines = archives.map((a) => {
    const d = done[a.index]!;
    return d.error ? `${a.key}: ${d.error}` : `${a.key}: ${d.files} files, ${d.bytes} bytes`;
  });
  return { detail: { started: [...started], done }, output: lines.join('\n') };
}

/** compensation: every scratch volume the drill made is removed from its node */
export async function cleanup(ctx: StepContext): Promise<StepOutcome> {
  const r = ctx.detailOf(DRILL_RESOLVE);
  const started = ctx.detailOf(UNPACK)?.started ?? [];
  if (!r || !started.length) return { skipped: true, output: 'no scratch volume was made' };
  const removed: string[] = [];
  for (const a of r.archives.filter((x) => started.includes(x.index))) {
    const res = await runOnNode(ctx, {
      step: 'cleanup',
      key: String(a.index),
      nodeId: a.nodeId,
      script: REMOVE_VOLUME_SH,
      env: { SU_SCRATCH: a.scratch },
      socket: true,
      timeoutMs: Math.min(ctx.deps.config.lockMaxExecutionMs, 120_000),
    });
    if (res.exitCode !== 0) throw new AppError('DOCKER_ERROR', `could not remove scratch volume ${a.scratch} on ${a.drillNode}: ${errorLine(res.output)?.message ?? tail(res.output)}`);
    removed.push(`${a.scratch} on ${a.drillNode}`);
  }
  return { output: `removed ${removed.join(', ')}` };
}

/** the result: `{key, files, bytes, expected?, ok}` for one archive, `{drills: [...]}` for several; DRILL_FAILED when one is not ok */
export async function check(ctx: StepContext): Promise<StepOutcome> {
  const { service, archives } = drillOf(ctx);
  const done = ctx.detailOf(UNPACK)?.done ?? {};
  const drills = archives.map((a) => {
    const d = done[a.index];
    const counted = d && d.error === null;
    const matches = !a.expected || (counted && d.files === a.expected.files && d.bytes === a.expected.bytes);
    const ok = !!counted && matches;
    const error = !d ? 'not drilled' : d.error ?? (ok ? null : `unpacked ${d.files} files, ${d.bytes} bytes; ${a.expected!.files} files, ${a.expected!.bytes} bytes were recorded when it was staged`);
    return {
      service,
      node: a.node,
      volume: a.volume,
      key: a.key,
      files: d?.files ?? null,
      bytes: d?.bytes ?? null,
      ...(a.expected ? { expected: a.expected } : {}),
      ok,
      ...(error ? { error } : {}),
    };
  });
  if (drills.length === 1) {
    const { service: _s, node: _n, volume: _v, ...one } = drills[0]!;
    ctx.setResult(one);
  } else ctx.setResult({ drills });
  const failed = drills.filter((d) => !d.ok);
  if (failed.length) throw new AppError('DRILL_FAILED', failed.map((d) => `${d.key}: ${d.error}`).join('; '));
  return { output: drills.map((d) => `${d.key}: ok, ${d.files} files, ${d.bytes} bytes`).join('\n') };
}
