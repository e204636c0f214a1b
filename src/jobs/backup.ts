import type { JobKind, StepDef, SubmitCheck, Target } from '../engine/types.js';
import { ARCHIVE, ARCHIVE_STAGED, archive } from './backup/archive.js';
import { archiveStaged, stageThenLaunch } from './backup/archive-staged.js';
import { RESOLVE, execStep, refusal, resolve, s3Refusal } from './backup/resolve.js';
import { START, STOP, start, stop } from './backup/scale.js';
import { PREPARE, STAGE, prepare } from './backup/stage.js';
import { unstage } from './backup/unstage.js';
import { VERIFY, verify } from './backup/verify.js';
import { RETENTION, retention } from './backup/retention.js';
import { L, flag } from './labels.js';
import { grants } from './tokens.js';
import { requesterKey } from '../db/meta.js';
import { hasOwnSchedule } from '../schedules.js';

/**
 * backup of one service (README "How jobs run", "Backups: staging"), on the tasks taken at the start:
 *   resolve → exec → prepare → stop → stage → archive → start (always) → archive-staged → verify → retention →
 *   unstage (always).
 * With stop=true and staging on, `prepare` starts a staging helper per node before the stop, `stage` collects
 * the copies made the moment the service's containers exited, `start` gives the service back at once and
 * `archive-staged` archives the copies once it runs; `archive` only takes the pairs that could not be staged
 * (every pair, with staging off), while the service is stopped. Without stop, only `archive` runs.
 * What a resumed job needs is committed before each step acts: the tasks, stamp and object keys (resolve),
 * the tasks a copy may trust and the staging volumes (prepare), the replica count (stop), each copy and each
 * finished archive; each detail has its schema. A step that reads what is stopped (stage, archive) is taken
 * up again from `stop` if a shutdown gives the service back during it.
 */
export const backupKind: JobKind & SubmitCheck = {
  type: 'backup',
  locks: (t) => [`backup_service_${t.name}`],
  steps: (): StepDef[] => [
    { ...RESOLVE, run: resolve },
    { name: 'exec', run: execStep },
    { ...PREPARE, run: prepare },
    { ...STOP, run: stop },
    // what the copies' archives need is launched at its end, to be ready when the service is
    { ...STAGE, whileDown: { from: STOP.name }, run: stageThenLaunch },
    { ...ARCHIVE, whileDown: { from: STOP.name }, run: archive },
    // compensation: runs after a failure, a cancel, a timeout, an engine error, a crash and a shutdown
    { ...START, always: true, run: start },
    { ...ARCHIVE_STAGED, run: archiveStaged },
    { ...VERIFY, run: verify },
    { ...RETENTION, run: retention },
    // runs whatever happened: the staging volumes are removed when the job ends
    { name: 'unstage', always: true, run: unstage },
  ],
  precheck(deps, { service }) {
    if (!service) {
      // all=true: nothing to back up anywhere without S3
      const s3 = s3Refusal(deps.config);
      if (s3) throw s3;
      return;
    }
    const refused = refusal(service, deps.config);
    if (refused) throw refused;
  },
  allTargets: async (deps, grant) => {
    const services = await deps.docker.listServices();
    const key = requesterKey(deps.db);
    // the common cron run leaves out the services backed up on a schedule of their own
    const common = (grant.params as { common?: unknown } | undefined)?.common === true;
    return services
      .filter((s) => flag(s.labels, L.backupEnable, false) && grants(s.labels[L.backupToken], grant.tokenHash, key))
      .filter((s) => !common || !hasOwnSchedule(s, 'backup', deps.config))
      .map((s): Target => ({ kind: 'service', name: s.name }));
  },
};
