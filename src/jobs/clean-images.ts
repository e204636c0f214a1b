/**
 * The image prune of a node clean (README "Clean"). Like `docker image prune -a` it removes the
 * images no container uses, except what a rollback or a restart needs: an image that a service's
 * current or previous spec names (so `docker service rollback`, a scale-up from 0 or a restarted
 * task never has to pull again, or fails for a node-local image), and the helper images. With the
 * node label `swarm-utils.clean.image.until` (e.g. `168h`) only images created longer ago go.
 *
 * The keep set is computed here, on the manager, and reaches the node only as data: one helper lists
 * the node's images, a second removes exactly the images it is given in its environment; both run
 * fixed scripts, nothing is spliced into shell text.
 */
import { AppError } from '../errors.js';
import type { Config } from '../config.js';
import type { StepContext, StepOutcome } from '../engine/types.js';
import type { NodeInfo, ServiceInfo } from '../swarm/port.js';
import { runCliHelper, tail } from './exec.js';
import { parseImage } from './image.js';

export const UNTIL_LABEL = 'swarm-utils.clean.image.until';

export interface NodeImage {
  id: string;
  /** creation time of the image (when it was built, not when it was pulled), ISO 8601 */
  created: string;
  size: number;
  /** RepoTags and RepoDigests */
  refs: string[];
}

export interface KeptImage {
  image: string;
  id: string;
  reason: string;
}

export interface Removal {
  remove: NodeImage[];
  kept: KeptImage[];
}

// Lists the node's images and the images its containers (running or stopped) use. Ids are hex, so
// the unquoted expansions only split them into arguments.
const LIST_SCRIPT = `set -u
ids=$(docker ps -a -q --no-trunc) || exit 1
if [ -n "$ids" ]; then docker inspect --format 'USED {{.Image}}' $ids 2>/dev/null || true; fi
imgs=$(docker image ls -q --no-trunc | sort -u) || exit 1
if [ -n "$imgs" ]; then docker image inspect --format 'IMAGE {{.Id}} {{.Created}} {{.Size}}{{range .RepoTags}} {{.}}{{end}}{{range .RepoDigests}} {{.}}{{end}}' $imgs 2>/dev/null || true; fi
echo "END $(printf '%s\\n' $imgs | grep -c .)"`;

// Removes the images of $SWARM_UTILS_IMAGES, one "<id> <ref>…" per line (checked on the manager:
// no blank, quote or glob character). An image a container took up meanwhile is left alone.
const REMOVE_SCRIPT = `set -fu
printf '%s\\n' "$SWARM_UTILS_IMAGES" | while read -r id refs; do
  [ -n "$id" ] || continue
  if [ -n "$(docker ps -a -q --filter "ancestor=$id")" ]; then echo "INUSE $id"; continue; fi
  if [ -n "$refs" ]; then out=$(docker image rm $refs 2>&1); else out=$(docker image rm "$id" 2>&1); fi
  if docker image inspect "$id" >/dev/null 2>&1; then echo "FAILED $id $(printf '%s' "$out" | tr '\\n' ' ')"; else echo "REMOVED $id"; fi
done`;

const IMAGE_ID = /^sha256:[0-9a-f]{64}$/;
const SAFE_REF = /^[A-Za-z0-9][A-Za-z0-9._/:@-]*$/;

/** `docker.io/library/nginx` → `nginx`, as a daemon reports Docker Hub names */
function familiar(name: string): string {
  return name.replace(/^(?:docker\.io|index\.docker\.io|registry-1\.docker\.io)\//, '').replace(/^library\//, '');
}

/**
 * The forms under which a daemon reports an image reference: `repo:tag` (default `latest`) and,
 * when it pins one, `repo@digest`. Both are kept for a pinned reference: the digest is what swarm
 * pulls, the tag is all a node-local image has.
 */
export function refForms(ref: string): string[] {
  const parsed = parseImage(ref.trim());
  if (!parsed) return [ref.trim()];
  const repo = familiar(parsed.name);
  const forms: string[] = [];
  if (parsed.tag || !parsed.digest) forms.push(`${repo}:${parsed.tag ?? 'latest'}`);
  if (parsed.digest) forms.push(`${repo}@${parsed.digest}`);
  return forms;
}

/** every reference form a rollback or a helper needs, with why */
export function keepSet(services: ServiceInfo[], config: Pick<Config, 'dockerCliImage' | 'backupImage'>): Map<string, string[]> {
  const keep = new Map<string, string[]>();
  const add = (ref: string | null | undefined, reason: string) => {
    if (!ref) return;
    for (const form of refForms(ref)) keep.set(form, [...(keep.get(form) ?? []), reason]);
  };
  for (const s of services) {
    add(s.image, `image of service ${s.name}`);
    add(s.previousImage, `previous image of service ${s.name} (for a rollback)`);
  }
  add(config.dockerCliImage, 'helper image (SWARM_UTILS_DOCKER_CLI_IMAGE_NAME)');
  add(config.backupImage, 'helper image (SWARM_UTILS_BACKUP_IMAGE)');
  return keep;
}

/** a Go duration of hours, minutes and seconds (`168h`, `36h30m`), as Docker's `until` filter takes; null when unlabelled */
export function untilMs(node: Pick<NodeInfo, 'hostname' | 'labels'>): number | null {
  const raw = node.labels[UNTIL_LABEL]?.trim();
  if (!raw) return null;
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(raw);
  if (!m) {
    throw new AppError('VALIDATION', `node ${node.hostname}: label ${UNTIL_LABEL} must be a duration such as "168h" or "36h30m" (got "${raw}")`);
  }
  const [h, min, s] = [m[1], m[2], m[3]].map((v) => Number(v ?? 0));
  return ((h! * 60 + min!) * 60 + s!) * 1000;
}

export interface Listing {
  images: NodeImage[];
  used: Set<string>;
  /** false when the helper's output was cut: only the images seen are considered */
  complete: boolean;
}

export function parseListing(output: string): Listing {
  const images: NodeImage[] = [];
  const used = new Set<string>();
  let expected: number | null = null;
  for (const line of output.split('\n')) {
    const [kind, ...f] = line.trim().split(/\s+/);
    if (kind === 'USED' && f[0]) used.add(f[0]);
    else if (kind === 'IMAGE' && f.length >= 3 && IMAGE_ID.test(f[0]!)) {
      images.push({ id: f[0]!, created: f[1]!, size: Number(f[2]) || 0, refs: [...new Set(f.slice(3))] });
    } else if (kind === 'END') expected = Number(f[0]);
  }
  return { images, used, complete: expected !== null && expected === images.length };
}

const nameOf = (img: NodeImage): string => img.refs.find((r) => !r.includes('@')) ?? img.refs[0] ?? img.id.slice(7, 19);

/** which images go, and why each other one stays */
export function planRemoval(listing: Listing, keep: Map<string, string[]>, until: { ms: number; label: string } | null, now: Date): Removal {
  const remove: NodeImage[] = [];
  const kept: KeptImage[] = [];
  for (const img of listing.images) {
    const why = (reason: string) => kept.push({ image: nameOf(img), id: img.id, reason });
    const reasons = [...new Set(img.refs.flatMap((r) => refForms(r).flatMap((form) => keep.get(form) ?? [])))];
    const created = Date.parse(img.created);
    if (listing.used.has(img.id)) why('used by a container');
    else if (reasons.length) why(reasons.join('; '));
    else if (until && !(created < now.getTime() - until.ms)) why(`created less than ${until.label} ago (${UNTIL_LABEL})`);
    else remove.push(img);
  }
  return { remove, kept };
}

export async function pruneImages(ctx: StepContext, node: NodeInfo, timeoutMs: number): Promise<StepOutcome> {
  const started = Date.now();
  const until = untilMs(node);
  const services = await ctx.deps.docker.listServices();
  const keep = keepSet(services, ctx.deps.config);
  const key = node.id.slice(0, 12);
  const list = await runCliHelper(ctx, { step: 'image-list', key, nodeId: node.id, command: ['sh', '-c', LIST_SCRIPT], env: {}, timeoutMs });
  if (list.exitCode !== 0) {
    throw new AppError('EXEC_FAILED', `listing the images of ${node.hostname} ended ${list.exitCode ?? list.state}: ${tail(list.error ?? list.output)}`);
  }
  const listing = parseListing(list.output);
  const plan = planRemoval(listing, keep, until === null ? null : { ms: until, label: node.labels[UNTIL_LABEL]!.trim() }, new Date());
  const removed: NodeImage[] = [];
  if (plan.remove.length > 0) {
    const lines = plan.remove.map((img) => [img.id, ...img.refs.filter((r) => SAFE_REF.test(r))].join(' '));
    const r = await runCliHelper(ctx, {
      step: 'image-remove',
      key,
      nodeId: node.id,
      command: ['sh', '-c', REMOVE_SCRIPT],
      env: { SWARM_UTILS_IMAGES: lines.join('\n') },
      timeoutMs: Math.max(1_000, timeoutMs - (Date.now() - started)),
    });
    if (r.exitCode !== 0) throw new AppError('EXEC_FAILED', `removing images on ${node.hostname} ended ${r.exitCode ?? r.state}: ${tail(r.error ?? r.output)}`);
    collectRemoval(r.output, plan, removed);
  }
  const reclaimedBytes = removed.reduce((sum, img) => sum + img.size, 0);
  const detail = {
    node: node.hostname,
    reclaimedBytes,
    removed: removed.map((img) => ({ image: nameOf(img), id: img.id, size: img.size, created: img.created })),
    kept: plan.kept,
    ...(listing.complete ? {} : { incomplete: 'the image list was cut short: only the images listed were considered' }),
  };
  return { detail, output: summary(detail) };
}

/** moves what the remove helper reports into `removed` or, with the reason, into the kept list */
function collectRemoval(output: string, plan: Removal, removed: NodeImage[]): void {
  const byId = new Map(plan.remove.map((img) => [img.id, img]));
  const seen = new Set<string>();
  for (const line of output.split('\n')) {
    const [kind, id, ...rest] = line.trim().split(' ');
    const img = id ? byId.get(id) : undefined;
    if (!img || seen.has(img.id)) continue;
    seen.add(img.id);
    if (kind === 'REMOVED') removed.push(img);
    else if (kind === 'INUSE') plan.kept.push({ image: nameOf(img), id: img.id, reason: 'taken up by a container meanwhile' });
    else if (kind === 'FAILED') plan.kept.push({ image: nameOf(img), id: img.id, reason: `docker refused to remove it: ${tail(rest.join(' '), 300)}` });
  }
  for (const img of plan.remove) if (!seen.has(img.id)) plan.kept.push({ image: nameOf(img), id: img.id, reason: 'no answer from the node (not removed)' });
}

function summary(d: { reclaimedBytes: number; removed: { image: string }[]; kept: KeptImage[]; incomplete?: string }): string {
  const mb = (d.reclaimedBytes / 1e6).toFixed(1);
  const lines = [`removed ${d.removed.length} image(s) (${mb} MB)${d.removed.length ? `: ${d.removed.map((r) => r.image).join(', ')}` : ''}`];
  lines.push(`kept ${d.kept.length} image(s)${d.kept.length ? ':' : ''}`);
  for (const k of d.kept) lines.push(`  ${k.image}: ${k.reason}`);
  if (d.incomplete) lines.push(d.incomplete);
  const text = lines.join('\n');
  return text.length > 4000 ? `${text.slice(0, 4000)}…` : text;
}
