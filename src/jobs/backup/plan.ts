/**
 * The pure part of a backup: which volumes, which (node, volume) pairs, under which object keys.
 * Nothing here talks to Docker or S3, so it is unit-tested as is.
 */
import { SECRET_BACKUP_ENV } from '../../config.js';
import { AppError } from '../../errors.js';
import { L, list } from '../labels.js';
import { helperName } from '../../swarm/helpers.js';

/** label Docker's stack deploy puts on a stack's services and volumes */
export const STACK_LABEL = 'com.docker.stack.namespace';

/** the backup step limits (README "Labels"); each defaults to SWARM_UTILS_LOCK_MAX_EXECUTION_TIME */
export const LIMIT = {
  exec: 'swarm-utils.backup.exec-timeout-ms',
  stop: 'swarm-utils.backup.stop-timeout-ms',
  start: 'swarm-utils.backup.start-timeout-ms',
  upload: 'swarm-utils.backup.upload-timeout-ms',
} as const;

export interface NamedVolume {
  name: string;
  /** VolumeOptions.DriverConfig.Name, null when none is named (the local driver) */
  driver: string | null;
}

/** one archive: a volume as it exists on one node */
export interface Pair {
  index: number;
  nodeId: string;
  node: string;
  volume: string;
  filename: string;
  key: string;
}

interface RawMount {
  Type?: string;
  Source?: string;
  VolumeOptions?: { DriverConfig?: { Name?: string } };
}

/** the named volume mounts of a service spec (Spec.TaskTemplate.ContainerSpec.Mounts), in spec order, once each */
export function namedVolumes(spec: Record<string, unknown>): NamedVolume[] {
  const template = spec.TaskTemplate as { ContainerSpec?: { Mounts?: RawMount[] } } | undefined;
  const out: NamedVolume[] = [];
  for (const m of template?.ContainerSpec?.Mounts ?? []) {
    if (m.Type !== 'volume' || !m.Source || out.some((v) => v.name === m.Source)) continue;
    out.push({ name: m.Source, driver: m.VolumeOptions?.DriverConfig?.Name?.trim() || null });
  }
  return out;
}

const isLocal = (v: NamedVolume): boolean => v.driver === null || v.driver === 'local';

/**
 * The volumes to back up: every local named volume, or those `swarm-utils.backup.volume-list` names.
 * An item matches a volume's full name or its name without the `<stack>_` prefix; an item that
 * matches nothing is an error that says what the service does mount.
 */
export function selectVolumes(service: string, mounted: NamedVolume[], volumeList: string | undefined, stack: string | undefined): string[] {
  const local = mounted.filter(isLocal).map((v) => v.name);
  const wanted = list(volumeList);
  const selected = wanted.length === 0 ? local : wanted.map((item) => matchItem(service, item, mounted, stack));
  const unique = [...new Set(selected)];
  if (unique.length === 0) {
    throw new AppError('UNSUPPORTED', `service ${service} mounts no named local volume: there is nothing to back up`);
  }
  return unique;
}

function matchItem(service: string, item: string, mounted: NamedVolume[], stack: string | undefined): string {
  const short = (name: string) => (stack && name.startsWith(`${stack}_`) ? name.slice(stack.length + 1) : name);
  const found = mounted.find((v) => v.name === item) ?? mounted.find((v) => short(v.name) === item);
  if (found && isLocal(found)) return found.name;
  if (found) {
    throw new AppError('VALIDATION', `${L.backupVolumes} names "${item}", a volume of driver "${found.driver}": only local volumes can be backed up`);
  }
  const names = mounted.map((v) => v.name).join(', ') || 'no named volume';
  throw new AppError('VALIDATION', `${L.backupVolumes} names "${item}", which service ${service} does not mount (it mounts: ${names})`);
}

/** UTC `YYYY-MM-DDTHH-mm-ssZ`: no `:` (object keys, file names) and no `%` (offen expands strftime) */
export function backupStamp(at: Date): string {
  return at.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/:/g, '-');
}

export const backupFilename = (node: string, volume: string, stamp: string): string => `${node}_${volume}_${stamp}.tar.gz`;

/** SWARM_UTILS_S3_PATH without leading, trailing or doubled slashes ('' when unset) */
export const s3Prefix = (path: string): string => path.split('/').filter(Boolean).join('/');

/** `<SWARM_UTILS_S3_PATH>/<filename>`, without double slashes */
export function objectKey(path: string, filename: string): string {
  const prefix = s3Prefix(path);
  return prefix ? `${prefix}/${filename}` : filename;
}

/** the archive helper of a pair (deterministic: a re-entered step, and the staging removal, find it by this name) */
export const archiveHelperName = (instance: string, jobId: number, p: Pick<Pair, 'index'>): string => helperName(instance, jobId, 'archive', String(p.index));

/** each node × each volume, numbered in that order (the index names the pair's helper) */
export function planPairs(nodes: { nodeId: string; node: string }[], volumes: string[], stamp: string, path: string): Pair[] {
  const pairs: Pair[] = [];
  for (const n of nodes) {
    for (const volume of volumes) {
      const filename = backupFilename(n.node, volume, stamp);
      pairs.push({ index: pairs.length, nodeId: n.nodeId, node: n.node, volume, filename, key: objectKey(path, filename) });
    }
  }
  return pairs;
}

export interface S3Settings {
  domain: string | null;
  https: boolean;
  bucket: string | null;
  accessKey: string | null;
  secretAccessKey: string | null;
  path: string;
  /** PEM of an extra CA that signed the S3 server's certificate */
  caCert?: string | null;
}

/** where a helper reads the Docker secret that holds offen's variable `name` */
export const secretFile = (name: string): string => `/run/secrets/${name}`;

/**
 * offen's variables whose values are secrets: the S3 credentials, and the SWARM_UTILS_BACKUP_ENV_* values
 * whose names say they are (README, Configuration). They become Docker secrets of the job; the helper's
 * spec only names their files (`<NAME>_FILE`, which offen reads raw). An empty value stays plain env.
 */
export function helperSecrets(s3: Pick<S3Settings, 'accessKey' | 'secretAccessKey'>, backupEnv: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(backupEnv)) if (SECRET_BACKUP_ENV.test(name) && value !== '') out[name] = value;
  if (s3.accessKey) out.AWS_ACCESS_KEY_ID = s3.accessKey;
  if (s3.secretAccessKey) out.AWS_SECRET_ACCESS_KEY = s3.secretAccessKey;
  return out;
}

/** `{NAME: value}` → `{NAME_FILE: /run/secrets/NAME}` for the secret ones, the others as they are */
function byFile(env: Record<string, string>, secret: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).map(([k, v]) => (k in secret ? [`${k}_FILE`, secretFile(k)] : [k, v])));
}

/**
 * offen's environment for one archive: no secret value in it (see helperSecrets). The pass-through
 * SWARM_UTILS_BACKUP_ENV_* values come first, so they can never replace what swarm-utils sets (the
 * configuration refuses that anyway).
 */
export function helperEnv(s3: S3Settings, backupEnv: Record<string, string>, pair: Pick<Pair, 'filename'>): Record<string, string> {
  const prefix = s3Prefix(s3.path);
  const secret = helperSecrets(s3, backupEnv);
  return {
    ...byFile(backupEnv, secret),
    AWS_S3_BUCKET_NAME: s3.bucket ?? '',
    AWS_ENDPOINT: s3.domain ?? '',
    AWS_ENDPOINT_PROTO: s3.https ? 'https' : 'http',
    AWS_ACCESS_KEY_ID_FILE: secretFile('AWS_ACCESS_KEY_ID'),
    AWS_SECRET_ACCESS_KEY_FILE: secretFile('AWS_SECRET_ACCESS_KEY'),
    ...(prefix ? { AWS_S3_PATH: prefix } : {}),
    // offen takes the PEM itself as well as a path; it is a public certificate, not a secret
    ...(s3.caCert ? { AWS_ENDPOINT_CA_CERT: s3.caCert } : {}),
    BACKUP_FILENAME: pair.filename,
  };
}

/** replaces the S3 credentials (and secret backup variables) wherever they might show up in text that leaves the process */
export function scrub(text: string, s3: Pick<S3Settings, 'accessKey' | 'secretAccessKey'>, backupEnv: Record<string, string> = {}): string {
  let out = text;
  const secrets = Object.values(helperSecrets(s3, backupEnv)).sort((a, b) => b.length - a.length);
  for (const secret of secrets) out = out.split(secret).join('[redacted]');
  return out;
}
