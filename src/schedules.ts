/**
 * Per-service schedules (docs/configuration.md "Per-service schedules"): `swarm-utils.backup.cron` on a
 * backup-enabled service backs it up on its own expression instead of in the run of SWARM_UTILS_CRON_EXPR,
 * and `swarm-utils.drill.cron` drills its newest archives on their own expression instead of after each
 * cron backup. Both are read in SWARM_UTILS_CRON_TZ and take effect only where the cron does that kind of
 * work (SWARM_UTILS_IS_CRON_BACKUP, SWARM_UTILS_IS_CRON_DRILL); a label that is not a valid expression
 * leaves the service in the common run and is reported on GET /status.
 */
import { Cron } from 'croner';
import { type Config, cronProblem } from './config.js';
import { L, flag } from './jobs/labels.js';
import type { ServiceInfo } from './swarm/port.js';

export type ScheduleKind = 'backup' | 'drill';

export interface ServiceSchedule {
  service: string;
  kind: ScheduleKind;
  /** the label's value */
  expr: string;
  /** in effect: the service runs on `expr` and not in the common run */
  active: boolean;
  /** why it is not in effect (an invalid expression, the cron switched off) */
  reason: string | null;
}

type CronConfig = Pick<Config, 'isCronBackup' | 'isCronClean' | 'isCronDrill' | 'cronExpr' | 'cronTz'>;

const LABEL: Record<ScheduleKind, string> = { backup: L.backupCron, drill: L.drillCron };

/** the schedule label of `kind` on a service, whether it is in effect and why not */
export function scheduleOf(svc: Pick<ServiceInfo, 'name' | 'labels'>, kind: ScheduleKind, config: CronConfig): ServiceSchedule | null {
  const expr = svc.labels[LABEL[kind]]?.trim();
  if (!expr || !flag(svc.labels, L.backupEnable, false)) return null;
  const problem = cronProblem(expr);
  const off =
    kind === 'backup'
      ? config.isCronBackup
        ? null
        : 'SWARM_UTILS_IS_CRON_BACKUP is false: no cron backup runs'
      : config.isCronDrill
        ? null
        : 'SWARM_UTILS_IS_CRON_DRILL is false: no cron drill runs';
  const reason = problem ? `${LABEL[kind]}: ${problem}; the service stays in the common run` : off;
  return { service: svc.name, kind, expr, active: reason === null, reason };
}

/** every schedule label found on the services, in effect or not */
export function schedulesOf(services: Pick<ServiceInfo, 'name' | 'labels'>[], config: CronConfig): ServiceSchedule[] {
  return services.flatMap((s) => (['backup', 'drill'] as const).map((k) => scheduleOf(s, k, config)).filter((x): x is ServiceSchedule => x !== null));
}

/** the service runs `kind` on its own schedule: it is left out of the common run's `all` job */
export const hasOwnSchedule = (svc: Pick<ServiceInfo, 'name' | 'labels'>, kind: ScheduleKind, config: CronConfig): boolean =>
  scheduleOf(svc, kind, config)?.active === true;

/** the common run of SWARM_UTILS_CRON_EXPR fires at all */
export const commonRunOn = (config: CronConfig): boolean => config.isCronClean || config.isCronBackup;

const pattern = (expr: string, tz: string): Cron => new Cron(expr, { timezone: tz, mode: '5-or-6-parts', paused: true });

/** the next `n` times `expr` fires after `from` */
export function nextRuns(expr: string, tz: string, n = 1, from = new Date()): Date[] {
  const c = pattern(expr, tz);
  try {
    return c.nextRuns(n, from);
  } finally {
    c.stop();
  }
}

/** `expr` fires at `at` (to the second) */
export function firesAt(expr: string, tz: string, at: Date): boolean {
  const c = pattern(expr, tz);
  try {
    return c.nextRun(new Date(at.getTime() - 1000))?.getTime() === Math.floor(at.getTime() / 1000) * 1000;
  } finally {
    c.stop();
  }
}

/** what GET /status says about schedules: the common run and each service's own, with their next run */
export function scheduleReport(services: Pick<ServiceInfo, 'name' | 'labels'>[], config: CronConfig, now = new Date()) {
  const next = (expr: string): string | null => nextRuns(expr, config.cronTz, 1, now)[0]?.toISOString() ?? null;
  return {
    common: {
      expr: config.cronExpr,
      tz: config.cronTz,
      clean: config.isCronClean,
      backup: config.isCronBackup,
      drill: config.isCronDrill,
      next: commonRunOn(config) ? next(config.cronExpr) : null,
    },
    services: schedulesOf(services, config)
      .sort((a, b) => a.service.localeCompare(b.service) || a.kind.localeCompare(b.kind))
      .map((s) => ({ ...s, next: s.active ? next(s.expr) : null })),
  };
}
