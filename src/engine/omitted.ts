/**
 * A job taken over from the bucket's copy of the database has no credentials: the copy keeps only the
 * names of what it left out (docs/internals.md "Losing its manager"). A step that reads one of them fails with a
 * clear error instead of going on without it (or with other credentials); steps that need none go on.
 */
import { AppError } from '../errors.js';
import type { JobRow } from '../db/jobs.js';
import { OMITTED_SECRETS } from '../db/state.js';

export function guardOmitted(job: JobRow): JobRow {
  const omitted = job.secrets?.[OMITTED_SECRETS];
  if (!Array.isArray(omitted)) return job;
  const names = omitted.map(String);
  const refuse = (name: string): never => {
    throw new AppError(
      'UNSUPPORTED',
      `this job's credentials (${name}) were not kept in the bucket's copy of the database, and the manager that ran it was lost: ` +
        'the instance that took it over has none (docs/internals.md "Losing its manager"); submit the job again',
    );
  };
  const secrets = new Proxy({} as Record<string, unknown>, {
    get: (_, key) => (typeof key === 'string' && names.includes(key) ? refuse(key) : undefined),
    has: (_, key) => typeof key === 'string' && names.includes(key),
    ownKeys: () => names,
    getOwnPropertyDescriptor: (_, key) =>
      typeof key === 'string' && names.includes(key) ? { configurable: true, enumerable: true, get: () => refuse(key) } : undefined,
  });
  return { ...job, secrets };
}
