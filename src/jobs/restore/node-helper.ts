/**
 * One Docker CLI helper on one node running one of scripts.ts: created under a deterministic name (a
 * re-entered step reattaches to it), waited for, removed. On a shutdown it keeps running for the next
 * process, like the archive helpers.
 */
import crypto from 'node:crypto';
import { AppError } from '../../errors.js';
import { HELPER_STOP_MS } from '../../engine/helpers.js';
import { ShutdownSignal } from '../../engine/limits.js';
import type { StepContext } from '../../engine/types.js';
import { helperName } from '../../swarm/helpers.js';
import type { Mount, SecretMount } from '../../swarm/port.js';
import { tail } from '../exec.js';
import { registryAuthFor } from '../image.js';
import { secretName } from '../backup/secrets.js';

export interface NodeRun {
  step: string;
  key: string;
  nodeId: string;
  /** a shell script for the Docker CLI image, or `run`: an image and the command it runs */
  script?: string;
  run?: { image: string; command: string[] };
  env?: Record<string, string>;
  mounts?: Mount[];
  secrets?: SecretMount[];
  /** the node's Docker socket, for scripts that call `docker` */
  socket?: boolean;
  /** joins SWARM_UTILS_HELPER_NETWORKS (helpers that reach S3) */
  networks?: boolean;
  timeoutMs: number;
  /** see HelperSpec.stopGracePeriodMs */
  stopGracePeriodMs?: number;
  /** texts to replace in the output before it is kept (a presigned URL) */
  redact?: string[];
}

export interface NodeRunResult {
  exitCode: number;
  output: string;
}

export async function runOnNode(ctx: Pick<StepContext, 'deps' | 'job' | 'signal' | 'log'>, r: NodeRun): Promise<NodeRunResult> {
  const { docker, config, instance } = ctx.deps;
  const image = r.run?.image ?? config.dockerCliImage;
  const ref = await docker.createHelper({
    name: helperName(instance, ctx.job.id, r.step, r.key),
    jobId: ctx.job.id,
    nodeId: r.nodeId,
    image,
    command: r.run?.command ?? ['sh', '-c', r.script ?? 'exit 1'],
    env: r.env ?? {},
    mounts: [...(r.mounts ?? []), ...(r.socket ? [{ type: 'bind' as const, source: '/var/run/docker.sock', target: '/var/run/docker.sock', readOnly: false }] : [])],
    secrets: r.secrets,
    auth: registryAuthFor(image, { config }),
    networks: r.networks ? config.helperNetworks : undefined,
    ...(r.stopGracePeriodMs !== undefined ? { stopGracePeriodMs: r.stopGracePeriodMs } : {}),
  });
  let ended = false;
  try {
    const res = await docker.waitHelper(ref, { timeoutMs: r.timeoutMs, signal: ctx.signal });
    ended = true;
    const output = redact(res.output, r.redact);
    if (res.exitCode === null) {
      throw new AppError('DOCKER_ERROR', `the ${r.step} helper on node ${r.nodeId} did not run (${res.state}): ${redact(res.error ?? '', r.redact)} ${tail(output)}`.trim());
    }
    return { exitCode: res.exitCode, output };
  } finally {
    const shuttingDown = ctx.signal.aborted && ctx.signal.reason instanceof ShutdownSignal;
    if (!shuttingDown) {
      const gone = ended ? docker.removeService(ref.id) : docker.stopHelper(ref, { timeoutMs: HELPER_STOP_MS });
      await gone.catch((e: unknown) => ctx.log.warn({ err: e, helper: ref.name }, 'could not remove helper'));
    }
  }
}

const redact = (text: string, secrets: string[] = []): string => secrets.filter(Boolean).reduce((t, s) => t.split(s).join('[redacted]'), text);

/**
 * A Docker secret of this job holding `data` (a presigned URL, a passphrase), mounted as `file`. The name
 * carries a digest of the data: a fresh URL after a restart is a new secret, while a re-entered step that
 * reattaches to its helper keeps the one that helper reads.
 */
export async function jobSecret(ctx: Pick<StepContext, 'deps' | 'job'>, variable: string, data: string, file: string): Promise<SecretMount> {
  const digest = crypto.createHash('sha256').update(data).digest('hex').slice(0, 10);
  const ref = await ctx.deps.docker.createSecret({ name: secretName(ctx.deps.instance, ctx.job.id, `${variable}-${digest}`), jobId: ctx.job.id, data });
  return { secretId: ref.id, secretName: ref.name, file };
}
