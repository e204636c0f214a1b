import { AppError } from '../errors.js';
import type { JobKind, StepDef, SubmitCheck } from '../engine/types.js';
import { MIGRATE_RESOLVE, MOVE, MigrateParams, TRANSFER, checkTarget, confirm, discard, migrationPlan, move, putBack, resolveMigrate, transfer } from './migrate/steps.js';
import { archivePhase, execPhase, s3Refusal, startPhase, stopPhase, verifyPhase } from './restore/backup-phases.js';

/**
 * migrate of a replicated service whose tasks run on one node to node `to`, with its volumes (README "Migration"):
 *   resolve → check-target → exec → stop → archive → archive-verify → transfer → discard (always)
 *   → move → start (always) → confirm → put-back (always).
 * Any failure before the move ends with the service started where it was; after the move, put-back gives
 * it its old placement again. The old node's volumes are never touched. Admin only.
 */
export const migrateKind: JobKind & SubmitCheck = {
  type: 'migrate',
  locks: (t) => [`backup_service_${t.name}`, `update_service_${t.name}`],
  steps: (): StepDef[] => [
    { ...MIGRATE_RESOLVE, run: resolveMigrate } as StepDef,
    { name: 'check-target', run: checkTarget },
    execPhase('exec'),
    stopPhase(),
    archivePhase('archive'),
    verifyPhase('archive-verify'),
    { ...TRANSFER, whileDown: { from: 'stop' }, run: transfer } as StepDef,
    { name: 'discard', always: true, run: discard },
    { ...MOVE, run: move } as StepDef,
    startPhase(),
    { name: 'confirm', run: confirm },
    { name: 'put-back', always: true, run: putBack },
  ],
  async precheck(deps, { service, params }) {
    if (!service) throw new AppError('VALIDATION', 'migrate takes one service');
    const s3 = s3Refusal(deps.config);
    if (s3) throw s3;
    if (service.mode !== 'replicated') throw new AppError('UNSUPPORTED', `${service.name} is a ${service.mode} service: only a replicated service can be migrated`);
    // a submission is checked as the job would: one node, a ready target
    if (params) await migrationPlan({ deps }, service, MigrateParams.parse(params).to);
  },
};
