/**
 * The Docker secrets of a job's backup helpers: S3 credentials and secret backup variables never go
 * into a helper's spec (where `docker service inspect` and `docker inspect` on the worker would show
 * them). They are made once per job, mounted into each helper, and removed when the helpers are gone:
 * by the step, by the worker when the job ends, and by the start-up sweep after a crash.
 */
import crypto from 'node:crypto';
import type { StepContext } from '../../engine/types.js';
import { ShutdownSignal } from '../../engine/runner.js';
import type { SecretMount } from '../../swarm/port.js';
import { helperPrefix } from '../../swarm/helpers.js';
import { helperSecrets } from './plan.js';

/** Docker secret names: at most 64 characters of [a-zA-Z0-9_.-] */
export function secretName(instance: string, jobId: number, variable: string): string {
  const name = `${helperPrefix(instance)}${jobId}-${variable}`;
  if (name.length <= 64) return name;
  return `${helperPrefix(instance)}${jobId}-${crypto.createHash('sha256').update(variable).digest('hex').slice(0, 16)}`;
}

/** the job's secrets (made now, or found again when the step is re-entered), as mounts for a helper */
export async function jobSecretMounts(ctx: Pick<StepContext, 'deps' | 'job'>): Promise<SecretMount[]> {
  const { config, docker, instance } = ctx.deps;
  const values = helperSecrets(config.s3, config.backupEnv);
  const mounts: SecretMount[] = [];
  for (const [variable, data] of Object.entries(values)) {
    const ref = await docker.createSecret({ name: secretName(instance, ctx.job.id, variable), jobId: ctx.job.id, data });
    mounts.push({ secretId: ref.id, secretName: ref.name, file: variable });
  }
  return mounts;
}

/**
 * Removes the job's secrets once its helpers are gone. On a shutdown they stay with the helpers, which
 * the next process reattaches. A failure is only logged: the worker's sweeps try again.
 */
export async function removeJobSecrets(ctx: Pick<StepContext, 'deps' | 'job' | 'signal' | 'log'>): Promise<void> {
  if (ctx.signal.aborted && ctx.signal.reason instanceof ShutdownSignal) return;
  try {
    const prefix = helperPrefix(ctx.deps.instance);
    for (const s of await ctx.deps.docker.listSecrets(ctx.job.id)) {
      if (s.name.startsWith(prefix)) await ctx.deps.docker.removeSecret(s.id);
    }
  } catch (e) {
    ctx.log.warn({ err: e }, 'could not remove the job’s Docker secrets (the worker removes them when the job ends)');
  }
}
