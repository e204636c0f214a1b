/**
 * The backup phases restore and migrate reuse (a safety backup is a normal backup; a migration archives
 * like one), in one place: when the backup phases are reshaped, this is the file to adapt.
 */
import type { StepContext, StepDef } from '../../engine/types.js';
import { ARCHIVE, archive } from '../backup/archive.js';
import { execStep } from '../backup/resolve.js';
import { START, STOP, start, stop } from '../backup/scale.js';
import { VERIFY, verify } from '../backup/verify.js';

export { ResolvedSchema, type Resolved, resolvedOf, serviceById, s3Refusal } from '../backup/resolve.js';
export { STACK_LABEL, LIMIT, backupStamp, namedVolumes, planPairs, selectVolumes } from '../backup/plan.js';
export { scaleTo, STOP } from '../backup/scale.js';

/** `swarm-utils.backup.exec` in every running container; skipped when `skip` gives a reason */
export const execPhase = (name: string, skip: (ctx: StepContext) => string | null = () => null): StepDef => ({
  name,
  run: async (ctx) => {
    const why = skip(ctx);
    return why ? { skipped: true, output: why } : execStep(ctx);
  },
});

/** record the replica count, scale to 0, wait: the job holds the service until `start` gives it back */
export const stopPhase = (): StepDef => ({ ...STOP, run: stop } as StepDef);

/** archive and upload each resolved (node, volume) pair; it reads the stopped volume */
export const archivePhase = (name: string): StepDef => ({ ...ARCHIVE, name, whileDown: { from: STOP.name }, run: archive } as StepDef);

/** each archive is in the bucket (under its real name) with a non-zero size; sets the job result to the archives */
export const verifyPhase = (name: string): StepDef => ({ ...VERIFY, name, run: verify } as StepDef);

/**
 * The compensation: scale back to the recorded count and wait (runs after a failure, a cancel, a crash and a
 * shutdown). Named `start`, with `restore` (its name before restore became a job type) as an alias.
 */
export const startPhase = (): StepDef => ({ ...START, always: true, run: start } as StepDef);

/** the same step, skipped (with its reason as output) when `skip` gives one */
export function unless(def: StepDef, skip: (ctx: StepContext) => string | null): StepDef {
  return {
    ...def,
    run: async (ctx) => {
      const why = skip(ctx);
      return why ? { skipped: true, output: why } : def.run(ctx);
    },
  };
}
