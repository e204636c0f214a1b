import type { JobKind, SubmitCheck } from '../engine/types.js';
import { backupKind } from './backup.js';
import { cleanKind } from './clean.js';
import { drillKind } from './drill.js';
import { migrateKind } from './migrate.js';
import { restoreKind } from './restore.js';
import { updateKind } from './update.js';

/** Every job type, by name. A new type is one file plus one line here. */
export const JOB_KINDS: Record<string, JobKind & SubmitCheck> = {
  backup: backupKind,
  clean: cleanKind,
  update: updateKind,
  restore: restoreKind,
  drill: drillKind,
  migrate: migrateKind,
};
