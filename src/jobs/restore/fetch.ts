/**
 * The phase restore, drill and migrate share: bring one archive onto a node and unpack it completely into
 * a work directory of a volume there, counted with count_tree. The helper fetches the object through a
 * presigned URL (a Docker secret of the job), so no S3 credential reaches the node. The helper is the
 * swarm-utils image itself (src/helper/restore.ts): it trusts the S3 CA and decrypts with offen's
 * passphrase, both Docker secrets of the job too. A process that cannot name that image (run from a
 * checkout, SWARM_UTILS_RESTORE_IMAGE unset) fetches plain archives with the Docker CLI image's wget.
 */
import type { Config } from '../../config.js';
import { AppError } from '../../errors.js';
import type { Deps, StepContext } from '../../engine/types.js';
import { createObjectStore } from '../../s3.js';
import { encryptionOf } from '../../backups/archives.js';
import { type TreeCount, parseTreeCount } from '../tree-count.js';
import { tail } from '../exec.js';
import { jobSecret, runOnNode } from './node-helper.js';
import { FETCH_EXIT, FETCH_SH, errorLine } from './scripts.js';

export interface FetchTarget {
  /** helper name part: unique per archive in the job */
  key: string;
  nodeId: string;
  node: string;
  /** the object to fetch */
  objectKey: string;
  /** the volume the work directory is in (mounted at /vol) */
  mountVolume: string;
  /** the directory name inside the archive: backup/<archiveVolume>/ */
  archiveVolume: string;
  /** an archive offen wrote: when backup/<archiveVolume>/ is missing, its only directory under backup/ is taken */
  anyDir?: boolean;
  /** the work directory, under /vol */
  work: string;
  timeoutMs: number;
}

export type FetchOutcome = { ok: true; count: TreeCount; output: string } | { ok: false; kind: string; message: string; output: string };

const PASSPHRASE = { gpg: 'GPG_PASSPHRASE', age: 'AGE_PASSPHRASE' } as const;

/** UNSUPPORTED when an encrypted archive cannot be decrypted with what is configured, saying what is missing */
export function decryptRefusal(config: Pick<Config, 'backupEnv'>, key: string): AppError | null {
  const enc = encryptionOf(key);
  if (!enc) return null;
  const variable = PASSPHRASE[enc];
  if (config.backupEnv[variable]) return null;
  const how = enc === 'gpg' ? 'a GPG passphrase' : 'an age passphrase';
  return new AppError(
    'UNSUPPORTED',
    `${key} is encrypted with ${how}: decrypting it needs that passphrase as SWARM_UTILS_BACKUP_ENV_${variable} (or SWARM_UTILS_BACKUP_ENV_${variable}_FILE), which is not set; only passphrase encryption can be decrypted (docs/restore-archives.md)`,
  );
}

/** the command of the fetch helper inside the swarm-utils image (its WORKDIR is /app) */
export const HELPER_COMMAND = ['node', '/app/dist/helper/restore.js'];

/**
 * The image the fetch helpers run: SWARM_UTILS_RESTORE_IMAGE, else the image of the service this process
 * runs as (its spec's, with the digest the swarm pinned). null outside a swarm task with no image set.
 */
export async function restoreImage(deps: Pick<Deps, 'docker' | 'config'>): Promise<string | null> {
  if (deps.config.restoreImage) return deps.config.restoreImage;
  const own = deps.docker.ownServiceId ? await deps.docker.ownServiceId() : null;
  return own ? ((await deps.docker.getService(own))?.image ?? null) : null;
}

export async function fetchOnNode(ctx: Pick<StepContext, 'deps' | 'job' | 'signal' | 'log'>, t: FetchTarget): Promise<FetchOutcome> {
  const { config } = ctx.deps;
  const refused = decryptRefusal(config, t.objectKey);
  if (refused) throw refused;
  const enc = encryptionOf(t.objectKey);
  const image = await restoreImage(ctx.deps);
  if (!image && (enc || config.s3.caCert || t.anyDir)) {
    const needs = enc ? `${t.objectKey} is encrypted (${enc})` : t.anyDir ? `${t.objectKey} was written by offen` : 'the S3 endpoint has a private CA (SWARM_UTILS_S3_CA_CERT)';
    throw new AppError(
      'UNSUPPORTED',
      `${needs}: the helper that reads it runs the swarm-utils image, which this process cannot name (it does not run as a swarm service): set SWARM_UTILS_RESTORE_IMAGE to the swarm-utils image (docs/restore-archives.md)`,
    );
  }
  const store = createObjectStore(config.s3);
  let url: string;
  try {
    url = await store.presignGet(t.objectKey, t.timeoutMs / 1000 + 300);
  } finally {
    store.close();
  }
  const secrets = [await jobSecret(ctx, 'url', url, 'swarm-utils-url')];
  if (enc) secrets.push(await jobSecret(ctx, PASSPHRASE[enc], config.backupEnv[PASSPHRASE[enc]]!, 'swarm-utils-passphrase'));
  if (image && config.s3.caCert) secrets.push(await jobSecret(ctx, 'ca', config.s3.caCert, 'swarm-utils-ca'));
  const res = await runOnNode(ctx, {
    step: 'fetch',
    key: t.key,
    nodeId: t.nodeId,
    ...(image ? { run: { image, command: HELPER_COMMAND } } : { script: FETCH_SH }),
    env: {
      SU_WORK: `/vol/${t.work}`,
      SU_VOLUME: t.archiveVolume,
      SU_URL_FILE: '/run/secrets/swarm-utils-url',
      SU_DECRYPT: enc ?? '',
      SU_PASS_FILE: '/run/secrets/swarm-utils-passphrase',
      ...(image && config.s3.caCert ? { SU_CA_FILE: '/run/secrets/swarm-utils-ca' } : {}),
      ...(t.anyDir ? { SU_ANY_DIR: '1' } : {}),
    },
    mounts: [{ type: 'volume', source: t.mountVolume, target: '/vol', readOnly: false }],
    secrets,
    networks: true,
    timeoutMs: t.timeoutMs,
    // the URL's query string is the credential
    redact: [url, url.split('?')[1] ?? url],
  });
  const what = `${t.objectKey} on ${t.node}`;
  if (res.exitCode === 0) {
    const count = parseTreeCount(res.output);
    if (!count) throw new AppError('INTERNAL', `the fetch of ${what} printed no count: ${tail(res.output)}`);
    return { ok: true, count, output: res.output };
  }
  const line = errorLine(res.output);
  const message = line?.message || tail(res.output);
  if (res.exitCode === FETCH_EXIT.download) throw new AppError('S3_ERROR', `the download of ${what} failed: ${message}`);
  if (res.exitCode === FETCH_EXIT.broken || res.exitCode === FETCH_EXIT.layout) {
    return { ok: false, kind: line?.kind ?? 'unpack', message: `${what}: ${message}`, output: res.output };
  }
  throw new AppError('DOCKER_ERROR', `the fetch helper of ${what} exited with ${res.exitCode}: ${message}`);
}
