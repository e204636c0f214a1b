/**
 * The staging helper (README "Staging: the downtime of a stop=true backup"): one per node, with the Docker CLI image and that node's
 * socket, the volumes of the node's pairs mounted read-only at /swarm-utils/from/<pair> and a staging volume
 * per pair at /swarm-utils/to/<pair>. It is started before the service is stopped, so its own start-up is
 * not part of the downtime:
 *   1. while the service still runs: measures each volume (du) against the free space where its staging
 *      volume lives, keeping a reserve, and prints a `room=yes|no` line per pair, then `ready`;
 *   2. waits for the service's containers on its node to exit (`docker wait`, then no running container
 *      of the service is left there), and prints `stopped`;
 *   3. per pair with room: empties the staging volume, copies with `cp -a` (owners, modes, links, times),
 *      counts the copy with the shared `count_tree`, and prints the count line and `staged` (or `failed`).
 * Values reach the fixed script as environment variables only: nothing is spliced into shell text.
 */
import { COUNT_TREE_SH, type TreeCount, parseTreeCount } from '../tree-count.js';
import { helperName, helperPrefix } from '../../swarm/helpers.js';
import type { HelperSpec, Mount } from '../../swarm/port.js';
import type { Pair } from './plan.js';

/** label of staging volumes: `<installation>.<job id>`; the removal finds a job's volumes on a node by it */
export const STAGING_LABEL = 'swarm-utils.staging';
/** who made the volume: `stage` (the copy) or `archive` (Docker made it at the archive's mount: the copy was gone) */
export const STAGING_ORIGIN_LABEL = 'swarm-utils.staging.origin';

/** the staging volume of a pair: the installation's helper prefix, the job, the pair */
export const stagingVolume = (instance: string, jobId: number, index: number): string => `${helperPrefix(instance)}${jobId}-staged-${index}`;

export const stagingLabels = (instance: string, jobId: number, origin: 'stage' | 'archive'): Record<string, string> => ({
  [STAGING_LABEL]: `${instance}.${jobId}`,
  [STAGING_ORIGIN_LABEL]: origin,
});

/** one helper per node, named after its first pair (deterministic: a re-entered step reattaches) */
export const stagingHelperName = (instance: string, jobId: number, pairs: Pair[], attempt = ''): string =>
  helperName(instance, jobId, 'stage', `${pairs[0]!.index}${attempt}`);

const FROM = '/swarm-utils/from';
const TO = '/swarm-utils/to';

/** the kept free space: 5 % of the file system, at most 1 GiB (KiB, as df and du count) */
const STAGE_SH = `set -u
${COUNT_TREE_SH}
say() { echo "swarm-utils-stage $*"; }
empty() { rm -rf "$1"/* "$1"/.[!.]* "$1"/..?* 2>/dev/null; }
plan=''
for i in $SWARM_UTILS_PAIRS; do
  from=${FROM}/$i; to=${TO}/$i
  need=$(du -sk "$from" 2>/dev/null | cut -f1)
  line=$(df -Pk "$to" 2>/dev/null | awk 'NR == 2 { print $2, $4 }')
  dev=$(stat -c %d "$to" 2>/dev/null)
  if [ -z "$need" ] || [ -z "$line" ] || [ -z "$dev" ]; then say "pair=$i room=no the free space could not be measured"; continue; fi
  size=\${line% *}; avail=\${line#* }
  eval "taken=\\\${taken_$dev:-0}"
  reserve=$((size / 20)); [ "$reserve" -gt 1048576 ] && reserve=1048576
  left=$((avail - taken))
  if [ $((need + reserve)) -le "$left" ]; then
    eval "taken_$dev=$((taken + need))"; plan="$plan $i"
    say "pair=$i room=yes needs $need KiB, $left KiB free"
  else
    say "pair=$i room=no needs $need KiB + $reserve KiB kept free, $left KiB free"
  fi
done
say ready
[ -n "$plan" ] || exit 0
for c in $SWARM_UTILS_CONTAINERS; do docker wait "$c" >/dev/null 2>&1 || true; done
while [ -n "$(docker ps -q --filter "label=com.docker.swarm.service.id=$SWARM_UTILS_SERVICE_ID")" ]; do sleep 0.05; done
say stopped
for i in $plan; do
  from=${FROM}/$i; to=${TO}/$i
  empty "$to"
  if err=$(cp -a "$from/." "$to/" 2>&1) && count=$(count_tree "$to"); then
    echo "$count"; say "pair=$i staged"
  else
    empty "$to"
    say "pair=$i failed $(echo "$err" | tail -n 1)"
  fi
done
`;

export interface StagingHelperInput {
  instance: string;
  jobId: number;
  nodeId: string;
  image: string;
  serviceId: string;
  /** containers of the service on this node when the job resolved its tasks */
  containers: string[];
  pairs: Pair[];
  attempt?: string;
}

export function stagingHelperSpec(h: StagingHelperInput): Omit<HelperSpec, 'auth'> {
  const mounts: Mount[] = [{ type: 'bind', source: '/var/run/docker.sock', target: '/var/run/docker.sock', readOnly: false }];
  for (const p of h.pairs) {
    mounts.push({ type: 'volume', source: p.volume, target: `${FROM}/${p.index}`, readOnly: true });
    mounts.push({
      type: 'volume',
      source: stagingVolume(h.instance, h.jobId, p.index),
      target: `${TO}/${p.index}`,
      readOnly: false,
      labels: stagingLabels(h.instance, h.jobId, 'stage'),
    });
  }
  return {
    name: stagingHelperName(h.instance, h.jobId, h.pairs, h.attempt),
    jobId: h.jobId,
    nodeId: h.nodeId,
    image: h.image,
    command: ['sh', '-c', STAGE_SH],
    env: {
      SWARM_UTILS_PAIRS: h.pairs.map((p) => p.index).join(' '),
      SWARM_UTILS_CONTAINERS: h.containers.join(' '),
      SWARM_UTILS_SERVICE_ID: h.serviceId,
    },
    mounts,
  };
}

/** what the helper said about one pair; `room` with ok=false, `staged` and `failed` are its last word */
export type PairReport =
  | { kind: 'room'; ok: boolean; text: string }
  | { kind: 'staged'; count: TreeCount }
  | { kind: 'failed'; text: string };

export interface StagingReport {
  ready: boolean;
  stopped: boolean;
  /** the last word on each pair index */
  pairs: Map<number, PairReport>;
}

const LINE = /^swarm-utils-stage pair=(\d+) (room=yes|room=no|staged|failed)(?: (.*))?$/;

/**
 * The helper's output (complete or so far) read line by line; a `staged` line takes the count line just before
 * it, so a `staged` line seen in the log means its count was written too.
 */
export function parseStagingOutput(output: string): StagingReport {
  const report: StagingReport = { ready: false, stopped: false, pairs: new Map() };
  const lines = output.split(/\r?\n/).map((l) => l.trim());
  lines.forEach((line, i) => {
    if (line === 'swarm-utils-stage ready') report.ready = true;
    if (line === 'swarm-utils-stage stopped') report.stopped = true;
    const m = LINE.exec(line);
    if (!m) return;
    const index = Number(m[1]);
    const text = (m[3] ?? '').trim();
    if (m[2] === 'staged') {
      const count = parseTreeCount(lines[i - 1] ?? '');
      report.pairs.set(index, count ? { kind: 'staged', count } : { kind: 'failed', text: 'the copy was not counted' });
    } else if (m[2] === 'failed') {
      report.pairs.set(index, { kind: 'failed', text: text || 'the copy failed' });
    } else {
      report.pairs.set(index, { kind: 'room', ok: m[2] === 'room=yes', text });
    }
  });
  return report;
}

/** the helper has said its last word on the pair: nothing more will be written for it */
export const isFinal = (r: PairReport | undefined): boolean => r !== undefined && (r.kind !== 'room' || !r.ok);

/** task states after which a helper's task never runs again */
export const ENDED_STATES: ReadonlySet<string> = new Set(['complete', 'failed', 'rejected', 'shutdown', 'orphaned', 'remove']);

/** every task of a helper has ended (and it has one) */
export const helperEnded = (tasks: { state: string }[]): boolean => tasks.length > 0 && tasks.every((t) => ENDED_STATES.has(t.state));
