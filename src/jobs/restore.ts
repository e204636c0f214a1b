import type { JobKind, StepDef, SubmitCheck } from '../engine/types.js';
import { archivePhase, execPhase, startPhase, stopPhase, unless, verifyPhase } from './restore/backup-phases.js';
import { RestoreParams, planRestore, restoreRefusal } from './restore/plan.js';
import { DOWNLOAD, RESTORE_RESOLVE, SWAP, download, resolveRestore, restoreResolvedOf, settle, swap, verifyRestore } from './restore/steps.js';
import type { StepContext } from '../engine/types.js';

const noSafety = (ctx: StepContext): string | null => {
  const r = restoreResolvedOf(ctx);
  return r.safety ? null : r.target.archiveVolume ? `a new volume ${r.target.volume}: nothing of the service's to save` : 'safetyBackup: false';
};

/**
 * restore of one volume of one service (README "Restore"), in one job:
 *   resolve → exec → stop → safety-backup → safety-verify → download → swap → settle (always) → start (always) → verify.
 * The safety backup is a normal backup of the current content (the backup's exec, archive and verify),
 * taken while the service is stopped for the restore. Download, swap and the safety archive read or
 * change the stopped volume: if a shutdown gives the service back meanwhile, the next process takes the
 * job up again from `stop`. A swap that began is always finished, never rolled half back.
 */
export const restoreKind: JobKind & SubmitCheck = {
  type: 'restore',
  locks: (t) => [`backup_service_${t.name}`, `update_service_${t.name}`],
  steps: (): StepDef[] => [
    { ...RESTORE_RESOLVE, run: resolveRestore } as StepDef,
    execPhase('exec', noSafety),
    stopPhase(),
    unless(archivePhase('safety-backup'), noSafety),
    unless(verifyPhase('safety-verify'), noSafety),
    { ...DOWNLOAD, whileDown: { from: 'stop' }, run: download } as StepDef,
    { ...SWAP, whileDown: { from: 'stop' }, run: swap } as StepDef,
    { name: 'settle', always: true, run: settle },
    startPhase(),
    { name: 'verify', run: verifyRestore },
  ],
  async precheck(deps, { service, params }) {
    if (!service) return;
    const refused = restoreRefusal(service, deps.config);
    if (refused) throw refused;
    // a submission (params given) is answered at once with what the job would find: a missing archive,
    // an unknown volume, an encryption it cannot read; the console only asks whether restores are possible
    if (params) await planRestore(deps, service, RestoreParams.parse(params));
  },
};
