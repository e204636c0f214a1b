import type { JobKind, StepDef, SubmitCheck, Target } from '../engine/types.js';
import { ARCHIVE, archive } from './backup/archive.js';
import { RESOLVE, execStep, refusal, resolve, s3Refusal } from './backup/resolve.js';
import { RESTORE, STOP, restore, stop } from './backup/scale.js';
import { VERIFY, verify } from './backup/verify.js';
import { RETENTION, retention } from './backup/retention.js';
import { L, flag } from './labels.js';
import { grants } from './tokens.js';
import { requesterKey } from '../db/meta.js';

/**
 * backup of one service (README "How jobs run"), on the tasks taken at the start:
 *   resolve → exec → stop → archive (+ upload) → restore (always) → verify → retention.
 * What a resumed job needs is committed before each step acts: the tasks, stamp and object keys
 * (resolve), the replica count (stop), each finished archive (archive); each detail has its schema.
 * The archive reads the stopped volume: if a shutdown gives the service back during it, the next
 * process takes the job up again from `stop`.
 */
export const backupKind: JobKind & SubmitCheck = {
  type: 'backup',
  locks: (t) => [`backup_service_${t.name}`],
  steps: (): StepDef[] => [
    { ...RESOLVE, run: resolve },
    { name: 'exec', run: execStep },
    { ...STOP, run: stop },
    { ...ARCHIVE, whileDown: { from: STOP.name }, run: archive },
    // compensation: runs after a failure, a cancel, a timeout, an engine error, a crash and a shutdown
    { ...RESTORE, always: true, run: restore },
    { ...VERIFY, run: verify },
    { ...RETENTION, run: retention },
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
    return services
      .filter((s) => flag(s.labels, L.backupEnable, false) && grants(s.labels[L.backupToken], grant.tokenHash, key))
      .map((s): Target => ({ kind: 'service', name: s.name }));
  },
};
