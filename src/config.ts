/**
 * Configuration (README "Configuration"): one zod schema over the SWARM_UTILS_* environment variables.
 *
 * Start-up must list every mistake at once, so nothing here stops at the first problem:
 * each variable is checked on its own, the cross-field rules still run when some variable
 * failed, and every problem is one line that begins with the variable to fix.
 * Secret values never appear in a problem; non-secret values are quoted to help.
 */
import { parseService } from './notify/services.js';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Cron } from 'croner';
import { z } from 'zod';

const PREFIX = 'SWARM_UTILS_';
const BACKUP_ENV_PREFIX = 'SWARM_UTILS_BACKUP_ENV_';
const BACKUP_ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;

/** names of the secret variables, so callers never print them */
export const SECRET_VARS = [
  'SWARM_UTILS_ADMIN_TOKEN_LIST',
  'SWARM_UTILS_METRICS_TOKEN_LIST',
  'SWARM_UTILS_S3_ACCESS_KEY',
  'SWARM_UTILS_S3_SECRET_ACCESS_KEY',
  'SWARM_UTILS_REGISTRY_USER',
  'SWARM_UTILS_REGISTRY_PASSWORD',
  // a webhook URL often holds its token in the path or the query
  'SWARM_UTILS_NOTIFY_URL',
  // shoutrrr-style URLs (offen's NOTIFICATION_URLS) hold tokens and passwords
  'SWARM_UTILS_NOTIFY_URLS',
] as const satisfies readonly string[];

/** variables that are not secret but also accept NAME_FILE (a certificate is easier to mount than to paste) */
export const FILE_VARS = ['SWARM_UTILS_S3_CA_CERT'] as const;

/** Variables of the backup helper that swarm-utils sets itself; a passthrough must not override them. */
const RESERVED_BACKUP_ENV = new Set([
  'AWS_S3_BUCKET_NAME',
  'AWS_ENDPOINT',
  'AWS_ENDPOINT_PROTO',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_ACCESS_KEY_ID_FILE',
  'AWS_SECRET_ACCESS_KEY_FILE',
  'AWS_S3_PATH',
  'AWS_ENDPOINT_CA_CERT',
  'BACKUP_FILENAME',
]);

/**
 * Backup variables that are secrets by their name (passphrases, keys, passwords, tokens, credentials,
 * notification URLs that embed them): they reach the helper as a Docker secret through offen's
 * `<NAME>_FILE`, never in its spec, and accept `SWARM_UTILS_BACKUP_ENV_<NAME>_FILE` here (README, Configuration).
 */
export const SECRET_BACKUP_ENV = /PASSPHRASE|KEY|PASSWORD|TOKEN|SECRET|CREDENTIAL|CONNECTION_STRING|NOTIFICATION_URLS/;
const BACKUP_ENV_FILE = /^SWARM_UTILS_BACKUP_ENV_([A-Z_][A-Z0-9_]*)_FILE$/;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** setTimeout fires at once for a longer delay, so no duration may exceed it. */
const MAX_TIMER_MS = 2_147_483_647;

/** What a parser returns instead of a value when the text is wrong. */
class Problem {
  constructor(readonly message: string) {}
}

const quote = (text: string): string => JSON.stringify(text);

// ---------------------------------------------------------------------------------------------
// One variable each

/**
 * A non-secret variable. Blank counts as unset (compose files write `VAR=` or `${VAR:-}` for
 * "not set"); otherwise `parse` turns the trimmed text into a value or a Problem.
 */
function envVar<T>(fallback: T, parse: (text: string) => T | Problem) {
  return z
    .string()
    .optional()
    .transform((raw, ctx): T => {
      const text = raw?.trim();
      if (!text) return fallback;
      const parsed = parse(text);
      if (!(parsed instanceof Problem)) return parsed;
      ctx.addIssue({ code: 'custom', message: parsed.message });
      return z.NEVER;
    });
}

/** A secret is kept verbatim (it may legitimately end in a space) and has no rule that could quote it. */
function secretVar() {
  return z
    .string()
    .optional()
    .transform((raw) => (raw?.trim() ? raw : null));
}

const asIs = (text: string): string => text;

function boolVar(fallback: boolean) {
  return envVar(fallback, (text) => {
    const lower = text.toLowerCase();
    if (lower === 'true' || lower === 'false') return lower === 'true';
    return new Problem(`must be "true" or "false" (got ${quote(text)})`);
  });
}

/** Integers may be written with `_` separators, like `10_000`. */
function intVar(fallback: number, min: number, max: number) {
  return envVar(fallback, (text) => {
    const n = /^-?\d+(_\d+)*$/.test(text) ? Number(text.replaceAll('_', '')) : NaN;
    if (Number.isSafeInteger(n) && n >= min && n <= max) return n;
    return new Problem(`must be an integer between ${min} and ${max} (got ${quote(text)})`);
  });
}

/** A trailing comma (or doubled one) leaves an empty item, which is dropped rather than refused. */
function splitList(text: string): string[] {
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** why `text` is not a cron expression of 5 or 6 fields, null when it is one (also for the `*.cron` labels) */
export function cronProblem(text: string): string | null {
  try {
    // paused and without a callback: croner only parses the pattern, nothing gets scheduled
    new Cron(text, { paused: true, mode: '5-or-6-parts' }).stop();
    return null;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return `not a valid cron expression of 5 or 6 fields (got ${quote(text)}): ${reason}`;
  }
}

function parseCron(text: string): string | Problem {
  const problem = cronProblem(text);
  return problem === null ? text : new Problem(problem);
}

function parseTimeZone(text: string): string | Problem {
  try {
    Intl.DateTimeFormat(undefined, { timeZone: text });
    return text;
  } catch {
    return new Problem(`must be an IANA time zone such as "UTC" or "Europe/Paris" (got ${quote(text)})`);
  }
}

function parseLogLevel(text: string): string | Problem {
  const level = text.toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level;
  return new Problem(`must be one of ${LOG_LEVELS.join(', ')} (got ${quote(text)})`);
}

const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;
/** a DNS name or IPv4 address, or a bracketed IPv6 address, then an optional port */
const HOST_PORT = /^(?:\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(?::(\d{1,5}))?$/i;

function isHostPort(text: string): boolean {
  const match = HOST_PORT.exec(text);
  if (!match) return false;
  const port = match[1];
  return port === undefined || (Number(port) >= 1 && Number(port) <= 65_535);
}

/** `user:password@host` would put a credential into the problem if we quoted it. */
const CREDENTIALS_IN_HOST = new Problem('must not contain credentials ("user:password@"); use the credential variables');

function parseS3Domain(text: string): string | Problem {
  if (text.includes('@')) return CREDENTIALS_IN_HOST;
  const scheme = SCHEME.exec(text)?.[0];
  if (scheme !== undefined) {
    const bare = text.slice(scheme.length).replace(/\/+$/, '');
    const http = scheme.toLowerCase() === 'http://' ? ' and SWARM_UTILS_S3_HTTPS=false' : '';
    return new Problem(
      `must be host[:port] without a scheme (got ${quote(text)}); hint: set it to ${quote(bare)}${http}`,
    );
  }
  if (isHostPort(text)) return text;
  return new Problem(`must be host[:port], e.g. "s3.example.com" or "minio:9000" (got ${quote(text)})`);
}

/** The registry is always reached over HTTPS, so `https://` adds nothing: only host[:port] is kept. */
function parseRegistryUrl(text: string): string | Problem {
  if (text.includes('@')) return CREDENTIALS_IN_HOST;
  const hostPort = text.replace(/^https:\/\//i, '').replace(/\/+$/, '');
  if (SCHEME.test(hostPort)) {
    return new Problem(`the registry is reached over HTTPS only: give host[:port] or https://host[:port] (got ${quote(text)})`);
  }
  if (isHostPort(hostPort)) return hostPort;
  return new Problem(`must be host[:port] or https://host[:port] (got ${quote(text)})`);
}

/**
 * Backup retention in days (README "Retention"): a number, fractions allowed (`0.5`), `_` separators too;
 * `0` keeps every archive. The `swarm-utils.backup.retention-days` label takes the same values.
 */
export function parseRetentionDays(text: string): { days: number | null } | { problem: string } {
  const t = text.trim();
  const n = /^\d+(_\d+)*(\.\d+)?$/.test(t) ? Number(t.replaceAll('_', '')) : NaN;
  if (!Number.isFinite(n) || n > 36_500) return { problem: `must be a number of days between 0 and 36500, e.g. 30 or 0.5; 0 keeps every archive (got ${quote(text)})` };
  return { days: n === 0 ? null : n };
}

function parseRetention(text: string): number | null | Problem {
  const r = parseRetentionDays(text);
  return 'problem' in r ? new Problem(r.problem) : r.days;
}

export const NOTIFY_ON = ['failure', 'always'] as const;
export type NotifyOn = (typeof NOTIFY_ON)[number];
/** json: {"event", "job"}; slack: {"text"}, the incoming-webhook form Slack, Mattermost, Rocket.Chat and Discord read */
export const NOTIFY_FORMATS = ['json', 'slack'] as const;
export type NotifyFormat = (typeof NOTIFY_FORMATS)[number];

function oneOf<T extends string>(values: readonly T[]) {
  return (text: string): T | Problem => {
    const lower = text.toLowerCase();
    const found = values.find((v) => v === lower);
    return found ?? new Problem(`must be one of ${values.join(', ')} (got ${quote(text)})`);
  };
}

/** SWARM_UTILS_NOTIFY_URLS: comma-separated (a comma inside a query such as to=a,b stays with its URL) */
export function splitNotifyUrls(raw: string | null | undefined): string[] {
  if (!raw?.trim()) return [];
  const out: string[] = [];
  for (const piece of raw.split(/[,\n]/)) {
    const p = piece.trim();
    if (!p) continue;
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(p) || !out.length) out.push(p);
    else out[out.length - 1] += `,${p}`;
  }
  return out;
}

/** The URL is a secret: a problem names what is wrong with it, never the URL or a part of it. */
function notifyUrlProblem(url: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url.trim());
  } catch {
    return 'must be an absolute http:// or https:// URL (the value is a secret and is not shown)';
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return `must be an http:// or https:// URL (got scheme "${parsed.protocol.replace(/:$/, '').slice(0, 20)}")`;
  try {
    decodeURIComponent(parsed.username);
    decodeURIComponent(parsed.password);
  } catch {
    return 'the user:password@ part is not valid percent-encoding';
  }
  return null;
}

const S3_REGION = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;

function parseS3Region(text: string): string | Problem {
  if (S3_REGION.test(text)) return text;
  return new Problem(`must be a region name such as "eu-central-1", "us-west-004" or "auto" (got ${quote(text)})`);
}

export const ADDRESSING_STYLES = ['auto', 'path', 'virtual'] as const;
export type AddressingStyle = (typeof ADDRESSING_STYLES)[number];

function parseAddressingStyle(text: string): AddressingStyle | Problem {
  const style = text.toLowerCase();
  if ((ADDRESSING_STYLES as readonly string[]).includes(style)) return style as AddressingStyle;
  return new Problem(`must be one of ${ADDRESSING_STYLES.join(', ')} (got ${quote(text)})`);
}

/**
 * One PEM certificate. offen reads only the first certificate of AWS_ENDPOINT_CA_CERT, so a bundle
 * would be trusted by swarm-utils and not by the helpers: refused rather than half used.
 */
function parseCaCert(text: string): string | Problem {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) return new Problem('must be a PEM certificate ("-----BEGIN CERTIFICATE-----…") or, as _FILE, the path of one');
  if (blocks.length > 1) {
    return new Problem(`holds ${blocks.length} certificates: give only the CA certificate that signed the S3 server's certificate (offen reads only the first)`);
  }
  try {
    new X509Certificate(blocks[0]!);
  } catch (err) {
    return new Problem(`is not a valid certificate: ${err instanceof Error ? err.message : String(err)}`);
  }
  return `${blocks[0]!}\n`;
}

/** Docker network names (and ids) */
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function parseNetworks(text: string): string[] | Problem {
  const names = splitList(text);
  const bad = names.filter((name) => !NETWORK_NAME.test(name));
  if (bad.length === 0) return [...new Set(names)];
  return new Problem(`${bad.map(quote).join(', ')} ${bad.length > 1 ? 'are not network names' : 'is not a network name'} (letters, digits, "_", "." and "-")`);
}

/**
 * The region an AWS endpoint names (`s3.eu-west-3.amazonaws.com`, `s3-eu-west-3.amazonaws.com`,
 * `s3.dualstack.eu-west-3.amazonaws.com`): offen's client (minio-go) signs for that region, whatever
 * swarm-utils is told, so the two must agree. null for other endpoints and for `s3.amazonaws.com`.
 */
export function regionOfAwsDomain(domain: string): string | null {
  const host = domain.replace(/:\d+$/, '').toLowerCase();
  const m = /^s3[.-](?:dualstack\.)?([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$/.exec(host);
  return m && m[1] !== 'external-1' ? m[1]! : null;
}

export const isAwsDomain = (domain: string): boolean => /(^|\.)amazonaws\.com(\.cn)?$/i.test(domain.replace(/:\d+$/, ''));

// ---------------------------------------------------------------------------------------------
// The schema

const fieldsSchema = z
  .object({
    SWARM_UTILS_IS_CRON_BACKUP: boolVar(false),
    SWARM_UTILS_IS_CRON_CLEAN: boolVar(false),
    SWARM_UTILS_IS_CRON_DRILL: boolVar(false),
    SWARM_UTILS_CRON_EXPR: envVar('0 3 * * *', parseCron),
    SWARM_UTILS_CRON_TZ: envVar('UTC', parseTimeZone),
    SWARM_UTILS_ADMIN_TOKEN_LIST: envVar<string[]>([], splitList),
    SWARM_UTILS_METRICS_TOKEN_LIST: envVar<string[]>([], splitList),
    SWARM_UTILS_DOCKER_CLI_IMAGE_NAME: envVar('docker:25.0.5-cli-alpine3.20', asIs),
    SWARM_UTILS_BACKUP_IMAGE: envVar('offen/docker-volume-backup:v2.48.2', asIs),
    // the image of the helpers that download, decrypt and unpack an archive; unset: swarm-utils' own image
    SWARM_UTILS_RESTORE_IMAGE: envVar<string | null>(null, asIs),
    // offen's own archives in the bucket: its BACKUP_FILENAME patterns (docs/restore-archives.md)
    SWARM_UTILS_OFFEN_FILENAMES: envVar<string[]>(['backup-%Y-%m-%dT%H-%M-%S.{{ .Extension }}'], splitList),
    SWARM_UTILS_BACKUP_STAGE: boolVar(true),
    SWARM_UTILS_LOCK_TIMEOUT: intVar(10_000, 1, MAX_TIMER_MS),
    SWARM_UTILS_LOCK_MAX_EXECUTION_TIME: intVar(600_000, 1, MAX_TIMER_MS),
    SWARM_UTILS_LOCK_MAX_OCCUPATION_TIME: intVar(630_000, 1, MAX_TIMER_MS),
    SWARM_UTILS_S3_DOMAIN: envVar<string | null>(null, parseS3Domain),
    SWARM_UTILS_S3_HTTPS: boolVar(true),
    SWARM_UTILS_S3_BUCKET_NAME: envVar<string | null>(null, asIs),
    SWARM_UTILS_S3_ACCESS_KEY: secretVar(),
    SWARM_UTILS_S3_SECRET_ACCESS_KEY: secretVar(),
    SWARM_UTILS_S3_PATH: envVar('', asIs),
    SWARM_UTILS_S3_REGION: envVar<string | null>(null, parseS3Region),
    SWARM_UTILS_S3_ADDRESSING_STYLE: envVar<AddressingStyle>('auto', parseAddressingStyle),
    SWARM_UTILS_S3_CA_CERT: envVar<string | null>(null, parseCaCert),
    SWARM_UTILS_HELPER_NETWORKS: envVar<string[]>([], parseNetworks),
    SWARM_UTILS_REGISTRY_URL: envVar<string | null>(null, parseRegistryUrl),
    SWARM_UTILS_REGISTRY_USER: secretVar(),
    SWARM_UTILS_REGISTRY_PASSWORD: secretVar(),
    SWARM_UTILS_HOST: envVar('0.0.0.0', asIs),
    SWARM_UTILS_PORT: intVar(8080, 1, 65_535),
    SWARM_UTILS_DB_PATH: envVar<string | null>(null, asIs),
    SWARM_UTILS_CONCURRENCY: intVar(4, 1, 64),
    SWARM_UTILS_JOB_RETENTION_DAYS: intVar(30, 1, 36_500),
    SWARM_UTILS_BACKUP_RETENTION_DAYS: envVar<number | null>(null, parseRetention),
    SWARM_UTILS_LOG_LEVEL: envVar('info', parseLogLevel),
    SWARM_UTILS_NOTIFY_URL: secretVar(),
    SWARM_UTILS_NOTIFY_URLS: secretVar(),
    SWARM_UTILS_NOTIFY_ON: envVar<NotifyOn>('failure', oneOf(NOTIFY_ON)),
    SWARM_UTILS_NOTIFY_FORMAT: envVar<NotifyFormat>('json', oneOf(NOTIFY_FORMATS)),
    SWARM_UTILS_SHUTDOWN_TIMEOUT: intVar(30_000, 1_000, MAX_TIMER_MS),
    // README "Losing its manager": the database copied to the bucket (only with S3 configured)
    SWARM_UTILS_STATE_COPY: boolVar(true),
    SWARM_UTILS_STATE_COPY_INTERVAL: intVar(5_000, 1_000, 3_600_000),
    // seconds start-up waits for the bucket before it starts from the local database (docs/upgrading.md)
    SWARM_UTILS_STATE_COPY_START_TIMEOUT: intVar(30, 1, 3_600),
    // false: only `Authorization: Bearer` authenticates; `?token=` (kept on for the original design) ends up in proxy logs
    SWARM_UTILS_QUERY_TOKEN: boolVar(true),
  })
  // kept, not stripped: BACKUP_ENV_* are passed on, anything else is a typo to warn about
  .catchall(z.string());

type Fields = z.output<typeof fieldsSchema>;

/**
 * Every variable the configuration knows, in schema order (besides `SWARM_UTILS_BACKUP_ENV_<NAME>` and the
 * `_FILE` forms of SECRET_VARS and FILE_VARS): the stack files and docs/configuration.md are checked against it.
 */
export const CONFIG_VARS: readonly string[] = Object.keys(fieldsSchema.shape);

/**
 * SWARM_UTILS_* variables that are not the server's but are not typos either: the command-line client's
 * connection (SWARM_UTILS_URL, SWARM_UTILS_TOKEN) and the image the stack deploys (SWARM_UTILS_IMAGE,
 * read by `docker stack deploy`), all of which may sit in the same environment or env file.
 */
export const OTHER_KNOWN_VARS: readonly string[] = ['SWARM_UTILS_URL', 'SWARM_UTILS_TOKEN', 'SWARM_UTILS_IMAGE'];
type Report = (name: string, message: string) => void;

const S3_REQUIRED = [
  'SWARM_UTILS_S3_DOMAIN',
  'SWARM_UTILS_S3_BUCKET_NAME',
  'SWARM_UTILS_S3_ACCESS_KEY',
  'SWARM_UTILS_S3_SECRET_ACCESS_KEY',
] as const;
const REGISTRY_REQUIRED = ['SWARM_UTILS_REGISTRY_URL', 'SWARM_UTILS_REGISTRY_USER', 'SWARM_UTILS_REGISTRY_PASSWORD'] as const;

function checkRules(fields: Fields, ctx: z.RefinementCtx<Fields>): void {
  // A variable with its own problem takes no part in comparisons, so one mistake is reported
  // once; it still counts as set for the all-or-nothing groups (the operator did set it).
  const invalid = new Set(ctx.issues.map((issue) => issue.path?.[0]));
  const isSet = (name: string): boolean => invalid.has(name) || (fields[name] ?? null) !== null;
  const report: Report = (name, message) => ctx.addIssue({ code: 'custom', path: [name], message });

  checkBackupEnv(Object.keys(fields), report);
  requireAllOrNone('S3', S3_REQUIRED, isSet, report);
  requireAllOrNone('registry', REGISTRY_REQUIRED, isSet, report);
  const cronBackup = !invalid.has('SWARM_UTILS_IS_CRON_BACKUP') && fields.SWARM_UTILS_IS_CRON_BACKUP;
  if (cronBackup && !S3_REQUIRED.some(isSet)) {
    report('SWARM_UTILS_IS_CRON_BACKUP', `true needs the S3 settings: set ${S3_REQUIRED.join(', ')}`);
  }
  if (!invalid.has('SWARM_UTILS_IS_CRON_DRILL') && fields.SWARM_UTILS_IS_CRON_DRILL && !cronBackup && !invalid.has('SWARM_UTILS_IS_CRON_BACKUP')) {
    report('SWARM_UTILS_IS_CRON_DRILL', 'true drills the archives the cron run made: it needs SWARM_UTILS_IS_CRON_BACKUP=true');
  }
  const notifyUrl = fields.SWARM_UTILS_NOTIFY_URL;
  const notifyProblem = notifyUrl === null ? null : notifyUrlProblem(notifyUrl);
  if (notifyProblem) report('SWARM_UTILS_NOTIFY_URL', notifyProblem);
  const notifyUrls = splitNotifyUrls(fields.SWARM_UTILS_NOTIFY_URLS);
  notifyUrls.forEach((url, i) => {
    const parsed = parseService(url);
    if (typeof parsed === 'string') report('SWARM_UTILS_NOTIFY_URLS', `URL ${i + 1} ${parsed} (the value is a secret and is not shown)`);
  });
  checkS3Transport(fields, invalid, report);
  const [execution, occupation] = ['SWARM_UTILS_LOCK_MAX_EXECUTION_TIME', 'SWARM_UTILS_LOCK_MAX_OCCUPATION_TIME'] as const;
  if (!invalid.has(execution) && !invalid.has(occupation) && fields[occupation] < fields[execution]) {
    report(occupation, `must be >= ${execution} (${fields[execution]}) (got ${fields[occupation]})`);
  }
}

/** What the S3 clients of swarm-utils and of offen must agree on. */
function checkS3Transport(fields: Fields, invalid: Set<unknown>, report: Report): void {
  const domain = invalid.has('SWARM_UTILS_S3_DOMAIN') ? null : fields.SWARM_UTILS_S3_DOMAIN;
  const region = invalid.has('SWARM_UTILS_S3_REGION') ? null : fields.SWARM_UTILS_S3_REGION;
  const named = domain ? regionOfAwsDomain(domain) : null;
  if (region && named && region !== named) {
    report('SWARM_UTILS_S3_REGION', `"${region}" differs from the region SWARM_UTILS_S3_DOMAIN names ("${named}"); the backup helper signs for the domain's region, so the two must agree`);
  }
  const httpsOff = !invalid.has('SWARM_UTILS_S3_HTTPS') && !fields.SWARM_UTILS_S3_HTTPS;
  if (httpsOff && !invalid.has('SWARM_UTILS_S3_CA_CERT') && fields.SWARM_UTILS_S3_CA_CERT) {
    report('SWARM_UTILS_S3_CA_CERT', 'only applies to https: SWARM_UTILS_S3_HTTPS is false');
  }
}

/** One problem per missing variable, so each line names a variable to set. */
function requireAllOrNone(group: string, names: readonly string[], isSet: (name: string) => boolean, report: Report): void {
  const given = names.filter(isSet);
  if (given.length === 0 || given.length === names.length) return;
  for (const name of names.filter((name) => !isSet(name))) {
    report(name, `missing: the ${group} settings are all-or-nothing and ${given.join(', ')} ${given.length > 1 ? 'are' : 'is'} set`);
  }
}

/** BACKUP_ENV_* passthroughs: a name offen can take and that swarm-utils does not set itself. */
function checkBackupEnv(names: string[], report: Report): void {
  for (const name of names) {
    if (!name.startsWith(BACKUP_ENV_PREFIX)) continue;
    const target = name.slice(BACKUP_ENV_PREFIX.length);
    if (!BACKUP_ENV_NAME.test(target)) report(name, `${quote(target)} is not a valid variable name (must match ${BACKUP_ENV_NAME})`);
    else if (RESERVED_BACKUP_ENV.has(target)) report(name, `${target} is set by swarm-utils itself and cannot be overridden`);
  }
}

/**
 * SPEC section 14: a SWARM_UTILS_* variable the configuration does not know is a warning (a typo, or a
 * setting of a newer version), not a refusal. One line per variable, its name only: the value may be a secret.
 */
function unknownVars(names: string[]): string[] {
  const known = new Set([...CONFIG_VARS, ...OTHER_KNOWN_VARS]);
  return names
    .filter((name) => !known.has(name) && !name.startsWith(BACKUP_ENV_PREFIX))
    .map((name) => {
      const hint = name.endsWith('_FILE') ? '; only the secret variables and SWARM_UTILS_S3_CA_CERT accept a _FILE form' : '';
      return `${name}: unknown variable (a typo?), ignored${hint}`;
    });
}

function toConfig(fields: Fields, inImage: boolean) {
  return {
    isCronBackup: fields.SWARM_UTILS_IS_CRON_BACKUP,
    isCronClean: fields.SWARM_UTILS_IS_CRON_CLEAN,
    isCronDrill: fields.SWARM_UTILS_IS_CRON_DRILL,
    cronExpr: fields.SWARM_UTILS_CRON_EXPR,
    cronTz: fields.SWARM_UTILS_CRON_TZ,
    adminTokens: fields.SWARM_UTILS_ADMIN_TOKEN_LIST,
    metricsTokens: fields.SWARM_UTILS_METRICS_TOKEN_LIST,
    dockerCliImage: fields.SWARM_UTILS_DOCKER_CLI_IMAGE_NAME,
    backupImage: fields.SWARM_UTILS_BACKUP_IMAGE,
    /** restore/drill/migrate fetch helpers (README "Restore"); null: the image of swarm-utils' own service */
    restoreImage: fields.SWARM_UTILS_RESTORE_IMAGE,
    /** BACKUP_FILENAME patterns of archives offen wrote itself, listed and restorable */
    offenFilenames: fields.SWARM_UTILS_OFFEN_FILENAMES,
    /** stop=true backups copy each volume to a staging volume on its node and start the service before archiving (README "Backups") */
    backupStage: fields.SWARM_UTILS_BACKUP_STAGE,
    lockTimeoutMs: fields.SWARM_UTILS_LOCK_TIMEOUT,
    lockMaxExecutionMs: fields.SWARM_UTILS_LOCK_MAX_EXECUTION_TIME,
    lockMaxOccupationMs: fields.SWARM_UTILS_LOCK_MAX_OCCUPATION_TIME,
    s3: {
      domain: fields.SWARM_UTILS_S3_DOMAIN,
      https: fields.SWARM_UTILS_S3_HTTPS,
      bucket: fields.SWARM_UTILS_S3_BUCKET_NAME,
      accessKey: fields.SWARM_UTILS_S3_ACCESS_KEY,
      secretAccessKey: fields.SWARM_UTILS_S3_SECRET_ACCESS_KEY,
      path: fields.SWARM_UTILS_S3_PATH,
      region: s3Region(fields),
      pathStyle: isPathStyle(fields.SWARM_UTILS_S3_ADDRESSING_STYLE, fields.SWARM_UTILS_S3_DOMAIN),
      caCert: fields.SWARM_UTILS_S3_CA_CERT,
    },
    helperNetworks: fields.SWARM_UTILS_HELPER_NETWORKS,
    registry: {
      url: fields.SWARM_UTILS_REGISTRY_URL,
      user: fields.SWARM_UTILS_REGISTRY_USER,
      password: fields.SWARM_UTILS_REGISTRY_PASSWORD,
    },
    host: fields.SWARM_UTILS_HOST,
    port: fields.SWARM_UTILS_PORT,
    dbPath: fields.SWARM_UTILS_DB_PATH ?? (inImage ? '/data/swarm-utils.db' : './data/swarm-utils.db'),
    concurrency: fields.SWARM_UTILS_CONCURRENCY,
    jobRetentionDays: fields.SWARM_UTILS_JOB_RETENTION_DAYS,
    /** days after which a backup deletes older archives of the same node and volume; null: never */
    backupRetentionDays: fields.SWARM_UTILS_BACKUP_RETENTION_DAYS,
    logLevel: fields.SWARM_UTILS_LOG_LEVEL,
    shutdownTimeoutMs: fields.SWARM_UTILS_SHUTDOWN_TIMEOUT,
    stateCopy: {
      enabled: fields.SWARM_UTILS_STATE_COPY,
      intervalMs: fields.SWARM_UTILS_STATE_COPY_INTERVAL,
      startTimeoutMs: fields.SWARM_UTILS_STATE_COPY_START_TIMEOUT * 1000,
    },
    backupEnv: backupEnvOf(fields),
    queryToken: fields.SWARM_UTILS_QUERY_TOKEN,
    notify: {
      url: fields.SWARM_UTILS_NOTIFY_URL?.trim() || null,
      /** SWARM_UTILS_NOTIFY_URLS: shoutrrr-style URLs, each its own delivery target (src/notify/services.ts) */
      urls: splitNotifyUrls(fields.SWARM_UTILS_NOTIFY_URLS),
      on: fields.SWARM_UTILS_NOTIFY_ON,
      format: fields.SWARM_UTILS_NOTIFY_FORMAT,
    },
  };
}

/** the region requests are signed for: the one set, else the one an AWS endpoint names, else us-east-1 */
function s3Region(fields: Fields): string {
  const domain = fields.SWARM_UTILS_S3_DOMAIN;
  return fields.SWARM_UTILS_S3_REGION ?? (domain ? regionOfAwsDomain(domain) : null) ?? 'us-east-1';
}

/** `auto` addresses AWS virtual-hosted (`bucket.s3…`) and everything else path-style, as offen's client does */
function isPathStyle(style: AddressingStyle, domain: string | null): boolean {
  if (style !== 'auto') return style === 'path';
  return !(domain && isAwsDomain(domain));
}

/** SWARM_UTILS_BACKUP_ENV_<NAME>=v becomes { NAME: v }, value verbatim (empty allowed). */
function backupEnvOf(fields: Fields): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(fields)) {
    if (name.startsWith(BACKUP_ENV_PREFIX) && typeof value === 'string') env[name.slice(BACKUP_ENV_PREFIX.length)] = value;
  }
  return env;
}

/** The schema over the SWARM_UTILS_* variables once _FILE secrets are read; `inImage` picks the db path default. */
function configSchema(inImage: boolean) {
  return (
    fieldsSchema
      // `when`: run the cross-field rules even after a variable failed, so all problems come at once
      .superRefine(checkRules, { when: () => true })
      .transform((fields) => toConfig(fields, inImage))
  );
}

export type Config = z.output<ReturnType<typeof configSchema>>;
/** `warnings`: one line per unknown SWARM_UTILS_* variable, logged once at start-up */
export type ConfigResult = { ok: true; config: Config; warnings: string[] } | { ok: false; problems: string[]; warnings?: string[] };

// ---------------------------------------------------------------------------------------------
// Loading

/** the command-line client's own variables (docs/cli.md): a shell that runs both exports them, no typo */
export const CLIENT_VARS: readonly string[] = ['SWARM_UTILS_URL', 'SWARM_UTILS_TOKEN'];

/** Only our variables are looked at; the rest of the environment is not our business. */
function ownVars(env: Record<string, string | undefined>): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (name.startsWith(PREFIX) && value !== undefined && !CLIENT_VARS.includes(name)) vars[name] = value;
  }
  return vars;
}

/**
 * Docker secrets arrive as files: NAME_FILE holds a path whose content becomes NAME.
 * An unreadable secret file still leaves NAME set, so the all-or-nothing rules add no second,
 * misleading problem; the configuration is refused anyway. (Other _FILE variables are in no such
 * group: theirs stays unset, so their own rule adds nothing either.)
 */
function readSecretFiles(vars: Record<string, string>, readFile: (path: string) => string) {
  const out = { ...vars };
  const problems: string[] = [];
  const secretBackupEnv = Object.keys(out).flatMap((v) => {
    const m = BACKUP_ENV_FILE.exec(v);
    return m && SECRET_BACKUP_ENV.test(m[1]!) ? [`${BACKUP_ENV_PREFIX}${m[1]}`] : [];
  });
  for (const name of [...SECRET_VARS, ...FILE_VARS, ...secretBackupEnv]) {
    const fileVar = `${name}_FILE`;
    const path = out[fileVar]?.trim();
    delete out[fileVar];
    if (!path) continue;
    if (out[name]?.trim()) {
      problems.push(`${name}: set either ${name} or ${fileVar}, not both`);
      continue;
    }
    const secret = readSecret(path, readFile);
    if (secret instanceof Problem) problems.push(`${fileVar}: ${secret.message}`);
    if (!(secret instanceof Problem)) out[name] = secret;
    else if ((SECRET_VARS as readonly string[]).includes(name)) out[name] = 'unreadable';
  }
  return { vars: out, problems };
}

/** The error is reduced to its code: its message is not ours to vouch for, and the content must never show. */
function readSecret(path: string, readFile: (path: string) => string): string | Problem {
  let content: string;
  try {
    content = readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | null)?.code ?? 'unreadable';
    return new Problem(`cannot read ${quote(path)} (${code})`);
  }
  // `echo secret > file` leaves a newline that is not part of the secret
  const secret = content.replace(/\r?\n$/, '');
  return secret.trim() === '' ? new Problem(`${quote(path)} is empty`) : secret;
}

const readUtf8 = (path: string): string => readFileSync(path, 'utf8');

export function loadConfig(
  env: Record<string, string | undefined>,
  opts: { readFile?: (path: string) => string; inImage?: boolean } = {},
): ConfigResult {
  const { vars, problems } = readSecretFiles(ownVars(env), opts.readFile ?? readUtf8);
  const parsed = configSchema(opts.inImage ?? false).safeParse(vars);
  const warnings = unknownVars(Object.keys(vars));
  if (parsed.success && problems.length === 0) return { ok: true, config: parsed.data, warnings };
  const issues = parsed.success ? [] : parsed.error.issues;
  return { ok: false, problems: [...problems, ...issues.map((i) => `${String(i.path[0] ?? 'SWARM_UTILS')}: ${i.message}`)], warnings };
}

/** At start-up: print every problem and exit 2 (bad usage), or hand back the configuration. */
export function exitOnInvalidConfig(
  result: ConfigResult,
  write: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Config {
  if (result.ok) return result.config;
  write('swarm-utils: invalid configuration:');
  for (const problem of result.problems) write(`  ${problem}`);
  // an unknown name is often the typo behind a "missing" problem above
  for (const warning of result.warnings ?? []) write(`  (warning) ${warning}`);
  process.exit(2);
}
