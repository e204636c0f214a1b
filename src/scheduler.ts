import { Cron } from 'croner';
import { immediate } from './db/index.js';
import { claimSlot, markSlotSkipped, setSlotJobs, slotJobs, unfinishedCronJobs } from './db/cron.js';
import { insertJob } from './db/jobs.js';
import type { Deps } from './engine/types.js';
import { backupKind } from './jobs/backup.js';
import { type ScheduleKind, commonRunOn, firesAt, hasOwnSchedule, schedulesOf } from './schedules.js';
import type { ServiceInfo } from './swarm/port.js';

type SchedulerDeps = Pick<Deps, 'db' | 'config' | 'log'> & { docker: Pick<Deps['docker'], 'listServices'> };

/** how often the services' schedule labels are read again */
export const SCHEDULE_REFRESH_MS = 60_000;

/**
 * The cron (docs/configuration.md "Cron" and "Per-service schedules"). The common run fires on
 * SWARM_UTILS_CRON_EXPR: first `clean all` when SWARM_UTILS_IS_CRON_CLEAN, then `backup all` when
 * SWARM_UTILS_IS_CRON_BACKUP, the backup depending on the clean so it starts only once the clean ended;
 * with SWARM_UTILS_IS_CRON_DRILL a `drill all` of the archives that backup made follows it. A service
 * with its own `swarm-utils.backup.cron` (or `drill.cron`) is left out of those and gets its own job on
 * its own expression. Every firing is deduplicated by its scheduled time (the slot; per service for
 * the services' own), so a restart or a second instance never runs one twice; within one firing the
 * common clean comes first and every backup of that time waits for it. The scheduler only inserts rows.
 */
export function startScheduler(deps: SchedulerDeps, worker: { wake(): void }, opts: { refreshMs?: number } = {}): { stop(): void; refresh(): Promise<void> } {
  const { config, log } = deps;
  const crons = new Map<string, Cron>();
  let stopped = false;

  const onFire = async (self: Cron): Promise<void> => {
    const at = self.currentRun() ?? new Date();
    try {
      if (commonRunOn(config) && firesAt(config.cronExpr, config.cronTz, at)) fire(deps, at.toISOString());
      // the services' own schedules are read now: a label changed since the last refresh counts
      const services = await listForSchedules(deps);
      if (services) fireServices(deps, at, services);
      worker.wake();
    } catch (e) {
      log.error({ err: e, slot: at.toISOString() }, 'cron firing failed');
    }
  };

  const want = (expr: string): void => {
    if (crons.has(expr) || stopped) return;
    crons.set(expr, new Cron(expr, { timezone: config.cronTz, mode: '5-or-6-parts', protect: true }, (self: Cron) => void onFire(self)));
  };

  if (commonRunOn(config)) {
    want(config.cronExpr);
    log.info({ expr: config.cronExpr, tz: config.cronTz, next: crons.get(config.cronExpr)?.nextRun()?.toISOString() }, 'cron scheduled');
  } else {
    log.info('common cron run disabled (SWARM_UTILS_IS_CRON_CLEAN and SWARM_UTILS_IS_CRON_BACKUP are false)');
  }

  let known = '';
  /** one Cron per distinct expression in use; an expression no longer used is stopped */
  async function refresh(): Promise<void> {
    if (!config.isCronBackup && !config.isCronDrill) return;
    const services = await listForSchedules(deps);
    if (!services || stopped) return;
    const own = schedulesOf(services, config).filter((s) => s.active);
    const exprs = new Set(own.map((s) => s.expr));
    if (commonRunOn(config)) exprs.add(config.cronExpr);
    for (const [expr, c] of crons) {
      if (!exprs.has(expr)) {
        c.stop();
        crons.delete(expr);
      }
    }
    for (const expr of exprs) want(expr);
    const now = own.map((s) => `${s.kind} ${s.service} ${s.expr}`).sort().join('; ');
    if (now !== known) {
      known = now;
      if (own.length) log.info({ schedules: own.map((s) => ({ service: s.service, kind: s.kind, expr: s.expr })) }, 'per-service schedules');
      for (const s of schedulesOf(services, config).filter((x) => !x.active)) log.warn({ service: s.service, kind: s.kind, reason: s.reason }, 'per-service schedule not in effect');
    }
  }

  void refresh();
  const timer = setInterval(() => void refresh(), opts.refreshMs ?? SCHEDULE_REFRESH_MS);
  timer.unref();
  return {
    refresh,
    stop: () => {
      stopped = true;
      clearInterval(timer);
      for (const c of crons.values()) c.stop();
      crons.clear();
    },
  };
}

async function listForSchedules(deps: SchedulerDeps): Promise<ServiceInfo[] | null> {
  try {
    return await deps.docker.listServices();
  } catch (e) {
    deps.log.error({ err: e }, 'per-service schedules: the services could not be listed');
    return null;
  }
}

/** the common run at `slot` (its ISO time); null when this slot was already recorded or skipped */
export function fire(deps: Pick<Deps, 'db' | 'config' | 'log'>, slot: string): { clean: number | null; backup: number | null; drill?: number | null } | null {
  const { db, config, log } = deps;
  return immediate(db, () => {
    if (!claimSlot(db, slot)) {
      log.info({ slot }, 'cron slot already recorded: not firing it again');
      return null;
    }
    const busy = unfinishedCronJobs(db, { all: true });
    if (busy.length) {
      markSlotSkipped(db, slot, `previous run still going (jobs ${busy.join(', ')})`);
      log.warn({ slot, busy }, 'cron firing skipped: the previous run is still going');
      return null;
    }
    // `common`: the services with a schedule of their own are left out (src/schedules.ts)
    const common = { targetKind: 'all' as const, target: null, source: 'cron' as const, locks: [], requesterAdmin: true, requester: 'cron', params: { common: true } };
    const clean = config.isCronClean ? insertJob(db, { ...common, type: 'clean' }) : null;
    // backup all follows clean all in the same run
    const backup = config.isCronBackup ? insertJob(db, { ...common, type: 'backup', dependsOn: clean?.id ?? null }) : null;
    // and ends with a drill of every archive that backup made (docs/restore.md "Restore drills")
    const drill = config.isCronDrill && backup ? insertJob(db, { ...common, type: 'drill', params: { fromJob: backup.id, common: true }, dependsOn: backup.id }) : null;
    setSlotJobs(db, slot, clean?.id ?? null, backup?.id ?? null);
    log.info({ slot, cleanJobId: clean?.id, backupJobId: backup?.id, drillJobId: drill?.id }, 'cron run queued');
    return { clean: clean?.id ?? null, backup: backup?.id ?? null, drill: drill?.id ?? null };
  });
}

/** the slot of one service's own schedule: its time, the kind and the service */
export const serviceSlot = (at: string, kind: ScheduleKind, service: string): string => `${at} ${kind} ${service}`;

/**
 * The services whose own schedule fires at `at`: one job each (a backup, followed by a drill of what it
 * made when SWARM_UTILS_IS_CRON_DRILL and the service has no drill schedule; or a drill), each slot
 * recorded once. A backup of the same time as the common run waits for its clean.
 */
export function fireServices(deps: Pick<Deps, 'db' | 'config' | 'log'>, at: Date, services: ServiceInfo[]): { service: string; kind: ScheduleKind; jobId: number }[] {
  const { db, config, log } = deps;
  const slot = at.toISOString();
  const due = schedulesOf(services, config).filter((s) => s.active && firesAt(s.expr, config.cronTz, at));
  if (!due.length) return [];
  return immediate(db, () => {
    const cleanFirst = slotJobs(db, slot)?.cleanJobId ?? null;
    const out: { service: string; kind: ScheduleKind; jobId: number }[] = [];
    for (const s of due) {
      const key = serviceSlot(slot, s.kind, s.service);
      if (!claimSlot(db, key)) {
        log.info({ slot: key }, 'cron slot already recorded: not firing it again');
        continue;
      }
      const busy = unfinishedCronJobs(db, { type: s.kind, service: s.service });
      if (busy.length) {
        markSlotSkipped(db, key, `previous run still going (jobs ${busy.join(', ')})`);
        log.warn({ slot: key, busy }, 'cron firing skipped: the previous run of this service is still going');
        continue;
      }
      const base = { targetKind: 'service' as const, target: s.service, source: 'cron' as const, requesterAdmin: true, requester: 'cron' };
      if (s.kind === 'backup') {
        const backup = insertJob(db, { ...base, type: 'backup', locks: backupKind.locks({ kind: 'service', name: s.service }), dependsOn: cleanFirst });
        const svc = services.find((x) => x.name === s.service)!;
        // a drill of what it made, as the common run's drill does (an `all` over the services whose backup succeeded)
        if (config.isCronDrill && !hasOwnSchedule(svc, 'drill', config)) {
          insertJob(db, { ...base, targetKind: 'all', target: null, type: 'drill', locks: [], params: { fromJob: backup.id }, dependsOn: backup.id });
        }
        setSlotJobs(db, key, null, backup.id);
        out.push({ service: s.service, kind: s.kind, jobId: backup.id });
      } else {
        const drill = insertJob(db, { ...base, type: 'drill', locks: [] });
        setSlotJobs(db, key, null, drill.id);
        out.push({ service: s.service, kind: s.kind, jobId: drill.id });
      }
    }
    if (out.length) log.info({ slot, jobs: out }, 'per-service cron jobs queued');
    return out;
  });
}
