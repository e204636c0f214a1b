import type { SubmitCheck } from '../api/jobs-service.js';
import type { JobKind, StepDef, Target } from '../engine/types.js';
import { archive } from './backup/archive.js';
import { execStep, refusal, resolve, s3Refusal } from './backup/resolve.js';
import { restore, stop } from './backup/scale.js';
import { verify } from './backup/verify.js';
import { L, flag } from './labels.js';
import { grants } from './tokens.js';
import { requesterKey } from '../db/meta.js';

/**
 * backup of one service (README "How jobs run"), on the tasks taken at the start:
 *   resolve → exec → stop → archive (+ upload) → restore (always) → verify.
 * What a resumed job needs is committed before each step acts: the tasks, stamp and object keys
 * (resolve), the replica count (stop), each finished archive (archive).
 */
export const backupKind: JobKind & SubmitCheck = {
  type: 'backup',
  locks: (t) => [`backup_service_${t.name}`],
  steps: (): StepDef[] => [
    { name: 'resolve', run: resolve },
    { name: 'exec', run: execStep },
    { name: 'stop', run: stop },
    { name: 'archive', run: archive },
    // compensation: runs after a failure, a cancel, a timeout and a crash
    { name: 'restore', always: true, run: restore },
    { name: 'verify', run: verify },
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
