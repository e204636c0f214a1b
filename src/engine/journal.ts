/**
 * A job's recorded steps matched to the current plan by name, never by position: a job written by an
 * older version with another step list resumes correctly. Rows the plan no longer has are skipped (and
 * say why); a step renamed since is found through its `aliases`; a compensation (`always`) step the
 * record lacks is appended, so compensation always runs.
 */
import type { z } from 'zod';
import { AppError } from '../errors.js';
import type { Db } from '../db/index.js';
import type { JobRow } from '../db/jobs.js';
import { type StepRow, type StepState, appendStep, endStep, stepsOf } from '../db/steps.js';
import type { Logger } from '../log.js';
import type { Detail, StepDef, StepRef } from './types.js';

export interface Planned {
  def: StepDef;
  row: StepRow;
}

export const FINAL_STEP_STATES: readonly StepState[] = ['done', 'failed', 'skipped'];

/** does `name` (a recorded step's name) denote this step? */
export const isNamed = (ref: Pick<StepRef, 'name' | 'aliases'>, name: string): boolean => ref.name === name || (ref.aliases ?? []).includes(name);

export function reconcile(db: Db, job: JobRow, plan: StepDef[], log: Logger): Planned[] {
  const rows = stepsOf(db, job.id);
  const used = new Set<number>();
  const out: Planned[] = [];
  for (const def of plan) {
    const row = rows.find((r) => !used.has(r.idx) && isNamed(def, r.name));
    if (row) {
      used.add(row.idx);
      out.push({ def, row });
    } else if (def.always) {
      log.warn({ step: def.name }, 'compensation step missing from the recorded plan (an older version wrote the job): added');
      out.push({ def, row: appendStep(db, job.id, def.name, true) });
    }
    // a normal step this version added is not run: the job goes on with the plan it was started with
  }
  for (const r of rows) {
    if (used.has(r.idx) || FINAL_STEP_STATES.includes(r.state)) continue;
    log.warn({ step: r.name }, 'recorded step is not part of this version’s plan: skipped');
    endStep(db, job.id, r.idx, 'skipped', `skipped: this version's ${job.type} plan has no step "${r.name}"`);
    r.state = 'skipped';
  }
  return out;
}

/** the recorded row of a step of the plan (or of a ref), through its name and aliases */
export function rowOf(db: Db, jobId: number, plan: StepDef[], ref: Pick<StepRef, 'name' | 'aliases'>): StepRow | undefined {
  const def = plan.find((d) => isNamed(d, ref.name));
  const names = new Set([ref.name, ...(ref.aliases ?? []), ...(def ? [def.name, ...(def.aliases ?? [])] : [])]);
  return stepsOf(db, jobId).find((r) => names.has(r.name));
}

export const isEmpty = (d: Detail): boolean => Object.keys(d).length === 0;

/** a detail through its step's schema; a mismatch (a field renamed by a newer version) fails loudly */
export function parseDetail<D extends Detail>(schema: z.ZodType<D> | undefined, raw: Detail, step: string): D {
  if (!schema) return raw as D;
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(detail)'}: ${i.message}`).join('; ');
  throw new AppError('INTERNAL', `the detail of step "${step}" does not match what this version expects: ${issues}`);
}
