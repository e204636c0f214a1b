import { AppError } from '../errors.js';
import { succeededChildServices } from '../db/backups.js';
import { requesterKey } from '../db/meta.js';
import type { JobKind, StepDef, SubmitCheck, Target } from '../engine/types.js';
import { DRILL_RESOLVE, DrillParams, UNPACK, check, cleanup, resolveDrill, unpack } from './drill/steps.js';
import { L, flag } from './labels.js';
import { s3Refusal } from './restore/backup-phases.js';
import { isOffenKey, pickArchive, pickVolume, volumesOf } from './restore/plan.js';
import { grants } from './tokens.js';
import { hasOwnSchedule } from '../schedules.js';

/** `swarm-utils.restore.token` grants restores and drills (README "Authorization") */
export const RESTORE_TOKEN = 'swarm-utils.restore.token';

/**
 * drill of the archives of one service (README "Restore drills"):
 *   resolve → unpack (into scratch volumes) → cleanup (always) → check.
 * No lock: nothing of the service is read or changed, only the bucket and scratch volumes of the job.
 */
export const drillKind: JobKind & SubmitCheck = {
  type: 'drill',
  locks: () => [],
  steps: (): StepDef[] => [
    { ...DRILL_RESOLVE, run: resolveDrill } as StepDef,
    { ...UNPACK, run: unpack } as StepDef,
    { name: 'cleanup', always: true, run: cleanup },
    { name: 'check', run: check },
  ],
  async precheck(deps, { service, params }) {
    const s3 = s3Refusal(deps.config);
    if (s3) throw s3;
    if (!service || !params) return;
    const p = DrillParams.parse(params);
    if (p.volume !== undefined) pickVolume(service, volumesOf(service), p.volume);
    if (p.key !== undefined) {
      const offen = isOffenKey(deps.config, p.key);
      const volume =
        p.volume !== undefined || offen ? pickVolume(service, volumesOf(service), p.volume) : volumesOf(service).find((v) => p.key!.includes(`_${v}_`));
      if (!volume) throw new AppError('VALIDATION', `key ${p.key} is not an archive of a volume service ${service.name} backs up`, [{ field: 'key', message: 'not an archive of this service' }]);
      await pickArchive(deps.config, volume, '', p.key);
    }
  },
  allTargets: async (deps, grant) => {
    const fromJob = DrillParams.parse(grant.params ?? {}).fromJob;
    // a cron drill: the services whose backup in that run succeeded, each drilling what it made
    if (fromJob !== undefined) {
      const made = succeededChildServices(deps.db, fromJob);
      // the common run's drill leaves out the services drilled on a schedule of their own
      if ((grant.params as { common?: unknown } | undefined)?.common !== true) return made.map((name): Target => ({ kind: 'service', name }));
      const own = new Set((await deps.docker.listServices()).filter((s) => hasOwnSchedule(s, 'drill', deps.config)).map((s) => s.name));
      return made.filter((name) => !own.has(name)).map((name): Target => ({ kind: 'service', name }));
    }
    const services = await deps.docker.listServices();
    const key = requesterKey(deps.db);
    return services
      .filter((s) => flag(s.labels, L.backupEnable, false) && grants(s.labels[RESTORE_TOKEN], grant.tokenHash, key))
      .map((s): Target => ({ kind: 'service', name: s.name }));
  },
};
