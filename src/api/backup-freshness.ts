/**
 * What the last-good-backup alert watches (README "Monitoring"): every (service, volume, node) that a
 * backup of an enabled service would archive now, and when each was last archived by a successful job.
 */
import type { Db } from '../db/index.js';
import { L, flag, list } from '../jobs/labels.js';
import { STACK_LABEL, namedVolumes, selectVolumes } from '../jobs/backup/plan.js';
import type { DockerPort, ServiceInfo, TaskInfo } from '../swarm/port.js';

export interface BackupTarget {
  service: string;
  volume: string;
  node: string;
}

export const targetKey = (t: BackupTarget): string => `${t.service}\0${t.volume}\0${t.node}`;

/**
 * The volumes a backup would select; when the labels are wrong (a volume-list item the service does not
 * mount) the backup fails, and the listed names (or every mounted volume) still get a series, so the
 * alert fires instead of going silent.
 */
export function volumesOf(svc: ServiceInfo): string[] {
  const mounted = namedVolumes(svc.spec);
  try {
    return selectVolumes(svc.name, mounted, svc.labels[L.backupVolumes], svc.labels[STACK_LABEL]);
  } catch {
    const listed = list(svc.labels[L.backupVolumes]);
    return listed.length ? listed : mounted.map((v) => v.name);
  }
}

/** the nodes a backup archives on (as its resolve step): those of the running tasks, else that of the most recent task */
export function volumeNodeIds(tasks: TaskInfo[]): string[] {
  const running = tasks.filter((t) => t.state === 'running' && t.desiredState === 'running' && t.nodeId);
  if (running.length) return [...new Set(running.map((t) => t.nodeId!))];
  const latest = tasks.filter((t) => t.nodeId).sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))[0];
  return latest ? [latest.nodeId!] : [];
}

/** every (service, volume, node) of the enabled services; a service with no task at all has no node to name */
export async function expectedBackups(docker: Pick<DockerPort, 'listServices' | 'listTasks' | 'listNodes'>): Promise<BackupTarget[]> {
  const [services, nodes] = await Promise.all([docker.listServices(), docker.listNodes()]);
  const hostname = (id: string) => nodes.find((n) => n.id === id)?.hostname ?? id;
  const enabled = services.filter((s) => flag(s.labels, L.backupEnable, false));
  const perService = await Promise.all(
    enabled.map(async (svc) => {
      const nodeIds = volumeNodeIds(await docker.listTasks(svc.id));
      return nodeIds.flatMap((id) => volumesOf(svc).map((volume) => ({ service: svc.name, volume, node: hostname(id) })));
    }),
  );
  return perService.flat();
}

/** end of the newest successful backup job that archived each (service, volume, node), in ms */
export function lastSuccesses(db: Db): Map<string, { target: BackupTarget; at: number }> {
  const out = new Map<string, { target: BackupTarget; at: number }>();
  const rows = db
    .prepare(
      "SELECT target, result, finished_at AS at FROM jobs WHERE type = 'backup' AND state = 'succeeded' AND target_kind = 'service' ORDER BY finished_at DESC",
    )
    .iterate() as Iterable<{ target: string; result: string | null; at: number }>;
  for (const r of rows) {
    const archives = (JSON.parse(r.result ?? 'null') as { archives?: { node?: unknown; volume?: unknown }[] } | null)?.archives ?? [];
    for (const a of archives) {
      if (typeof a.node !== 'string' || typeof a.volume !== 'string') continue;
      const target = { service: r.target, volume: a.volume, node: a.node };
      const key = targetKey(target);
      if (!out.has(key)) out.set(key, { target, at: r.at });
    }
  }
  return out;
}
