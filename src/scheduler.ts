import { Cron } from 'croner';
import { immediate } from './db/index.js';
import { claimSlot, markSlotSkipped, setSlotJobs, unfinishedCronJobs } from './db/cron.js';
import { insertJob } from './db/jobs.js';
import type { Deps } from './engine/types.js';

/**
 * One cron run per firing, deduplicated by its scheduled time (the slot): first `clean all` when
 * SWARM_UTILS_IS_CRON_CLEAN, then `backup all` when SWARM_UTILS_IS_CRON_BACKUP, the backup depending on
 * the clean so it starts only once the clean ended; with SWARM_UTILS_IS_CRON_DRILL a `drill all` of the
 * archives that backup made follows it. The scheduler only inserts rows.
 */
export function startScheduler(deps: Pick<Deps, 'db' | 'config' | 'log'>, worker: { wake(): void }): { stop(): void } {
  const { config, log } = deps;
  if (!config.isCronClean && !config.isCronBackup) {
    log.info('cron disabled (SWARM_UTILS_IS_CRON_CLEAN and SWARM_UTILS_IS_CRON_BACKUP are false)');
    return { stop: () => undefined };
  }
  const cron = new Cron(config.cronExpr, { timezone: config.cronTz, mode: '5-or-6-parts', protect: true }, (self: Cron) => {
    const slot = (self.currentRun() ?? new Date()).toISOString();
    try {
      fire(deps, slot);
      worker.wake();
    } catch (e) {
      log.error({ err: e, slot }, 'cron firing failed');
    }
  });
  log.info({ expr: config.cronExpr, tz: config.cronTz, next: cron.nextRun()?.toISOString() }, 'cron scheduled');
  return { stop: () => cron.stop() };
}

export function fire(deps: Pick<Deps, 'db' | 'config' | 'log'>, slot: string): { clean: number | null; backup: number | null; drill?: number | null } | null {
  const { db, config, log } = deps;
  return immediate(db, () => {
    if (!claimSlot(db, slot)) {
      log.info({ slot }, 'cron slot already recorded: not firing it again');
      return null;
    }
    const busy = unfinishedCronJobs(db);
    if (busy.length) {
      markSlotSkipped(db, slot, `previous run still going (jobs ${busy.join(', ')})`);
      log.warn({ slot, busy }, 'cron firing skipped: the previous run is still going');
      return null;
    }
    const common = { targetKind: 'all' as const, target: null, source: 'cron' as const, locks: [], requesterAdmin: true, requester: 'cron' };
    const clean = config.isCronClean ? insertJob(db, { ...common, type: 'clean' }) : null;
    // backup all follows clean all in the same run
    const backup = config.isCronBackup ? insertJob(db, { ...common, type: 'backup', dependsOn: clean?.id ?? null }) : null;
    // and ends with a drill of every archive that backup made (README "Restore drills")
    const drill = config.isCronDrill && backup ? insertJob(db, { ...common, type: 'drill', params: { fromJob: backup.id }, dependsOn: backup.id }) : null;
    setSlotJobs(db, slot, clean?.id ?? null, backup?.id ?? null);
    log.info({ slot, cleanJobId: clean?.id, backupJobId: backup?.id, drillJobId: drill?.id }, 'cron run queued');
    return { clean: clean?.id ?? null, backup: backup?.id ?? null, drill: drill?.id ?? null };
  });
}
