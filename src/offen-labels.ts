/**
 * offen/docker-volume-backup's labels found on the swarm (docs/migrating-from-offen.md "Labels"): GET
 * /status lists each one with the swarm-utils label to use instead, and whether that is already set.
 * swarm-utils does not act on offen's labels: a service is backed up, stopped or exec'd only by its own
 * `swarm-utils.*` labels. Command values are not echoed (a command line may hold a password).
 */
import { L, flag } from './jobs/labels.js';
import type { ServiceInfo } from './swarm/port.js';

export const OFFEN_PREFIX = 'docker-volume-backup.';

interface Mapping {
  /** the swarm-utils label(s) to set on the service, null when there is no equivalent */
  use: string | null;
  note: string;
  /** the value may be shown (not a command) */
  showValue: boolean;
  /** the service already has the swarm-utils equivalent */
  done?: (labels: Record<string, string>) => boolean;
}

const NO_EQUIVALENT = 'no equivalent in swarm-utils: drop it';

const MAPPINGS: Record<string, Mapping> = {
  'stop-during-backup': {
    use: `${L.backupEnable}=true, ${L.backupStop}=true`,
    note: 'the service is scaled to 0 during its backup (with a staging copy by default) and back to its recorded count',
    showValue: true,
    done: (l) => flag(l, L.backupEnable, false) && flag(l, L.backupStop, false),
  },
  'stop-during-backup-no-restart': { use: null, note: 'no equivalent: swarm-utils always gives the service back after its backup', showValue: true },
  'archive-pre': {
    use: L.backupExec,
    note: 'the same command, run in every running container of the service before the archive (copy the value)',
    showValue: false,
    done: (l) => !!l[L.backupExec]?.trim(),
  },
  'archive-post': { use: null, note: NO_EQUIVALENT, showValue: false },
  'process-pre': { use: null, note: NO_EQUIVALENT, showValue: false },
  'process-post': { use: null, note: NO_EQUIVALENT, showValue: false },
  'copy-pre': { use: null, note: NO_EQUIVALENT, showValue: false },
  'copy-post': { use: null, note: NO_EQUIVALENT, showValue: false },
  'prune-pre': { use: null, note: NO_EQUIVALENT, showValue: false },
  'prune-post': { use: null, note: NO_EQUIVALENT, showValue: false },
  'exec-label': { use: null, note: "not needed: a service's commands are its own labels", showValue: true },
  'exec-user': { use: null, note: "no equivalent: the command runs as the container's user (su inside it if needed)", showValue: true },
};

export interface OffenLabel {
  service: string;
  /** `service`: deploy.labels; `container`: the labels of the service's containers */
  on: 'service' | 'container';
  label: string;
  value?: string;
  use: string | null;
  note: string;
  /** the swarm-utils equivalent is set on the service already */
  migrated: boolean;
}

function containerLabels(svc: Pick<ServiceInfo, 'spec'>): Record<string, string> {
  const spec = svc.spec as { TaskTemplate?: { ContainerSpec?: { Labels?: Record<string, string> } } };
  return spec.TaskTemplate?.ContainerSpec?.Labels ?? {};
}

/** every offen label on the services (theirs and their containers'), sorted by service and label */
export function offenLabelsOf(services: Pick<ServiceInfo, 'name' | 'labels' | 'spec'>[]): OffenLabel[] {
  const out: OffenLabel[] = [];
  for (const svc of services) {
    for (const [on, labels] of [
      ['service', svc.labels],
      ['container', containerLabels(svc)],
    ] as const) {
      for (const [label, value] of Object.entries(labels)) {
        if (!label.startsWith(OFFEN_PREFIX)) continue;
        const m = MAPPINGS[label.slice(OFFEN_PREFIX.length)] ?? { use: null, note: 'not a label of offen that swarm-utils knows', showValue: false };
        out.push({
          service: svc.name,
          on,
          label,
          ...(m.showValue ? { value } : {}),
          use: m.use,
          note: m.note,
          migrated: m.done ? m.done(svc.labels) : false,
        });
      }
    }
  }
  return out.sort((a, b) => a.service.localeCompare(b.service) || a.label.localeCompare(b.label) || a.on.localeCompare(b.on));
}
