/**
 * What a notification says (README "Notifications"): `{"event", "job"}` with the job object of the
 * API, or a Slack-compatible `{"text"}` with one line. Secrets are taken out of both.
 */
import type { NotifyFormat } from '../config.js';
import type { JobView } from '../api/present.js';

export const REDACTED = '[redacted]';

/** keys whose values are credentials wherever they appear (labels, details, request echoes) */
const SECRET_KEY = /(token|password|passwd|secret|authorization|credential|api[-_]?key|access[-_]?key)/i;
/** the original design's `?token=` in a URL quoted by an output */
const TOKEN_PARAM = /([?&](?:access_)?token=)[^&#\s"']*/gi;
/** shorter configured values are not searched for in text: replacing a 3-letter user name everywhere would garble it */
const MIN_SECRET_LENGTH = 6;

export interface Redactor {
  (value: unknown): unknown;
  text(s: string): string;
}

/**
 * Replaces what may be a secret: values under secret-looking keys, `token=` URL parameters, and every
 * occurrence of the configured secret values (admin tokens, S3 and registry credentials, the notify URL).
 */
export function createRedactor(secrets: readonly (string | null | undefined)[]): Redactor {
  const known = [...new Set(secrets.filter((s): s is string => !!s && s.length >= MIN_SECRET_LENGTH))].sort((a, b) => b.length - a.length);
  const text = (s: string): string => {
    let out = s.replace(TOKEN_PARAM, `$1${REDACTED}`);
    for (const secret of known) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
    return out;
  };
  const walk = (value: unknown): unknown => {
    if (typeof value === 'string') return text(value);
    if (Array.isArray(value)) return value.map(walk);
    if (value && typeof value === 'object') {
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => [k, SECRET_KEY.test(k) && v !== null && typeof v !== 'boolean' ? REDACTED : walk(v)]),
      );
    }
    return value;
  };
  return Object.assign(walk, { text });
}

function subject(job: JobView): string {
  const t = job.target;
  if ('all' in t) return `${job.type} of all ${job.type === 'clean' ? 'nodes and services' : 'services'}`;
  return 'node' in t ? `${job.type} of node ${t.node}` : `${job.type} of service ${t.service}`;
}

function duration(job: JobView): string {
  if (!job.startedAt || !job.finishedAt) return '';
  const s = Math.max(0, Math.round((Date.parse(job.finishedAt) - Date.parse(job.startedAt)) / 1000));
  return s < 60 ? `, ${s} s` : `, ${Math.floor(s / 60)} min ${s % 60} s`;
}

const MAX_LINE = 500;

/** one line for chat: what, on what, how it ended, the error, the job id */
export function summaryLine(event: string, job: JobView): string {
  const error = job.error ? `: ${job.error.code} ${job.error.message}` : '';
  const what =
    event === 'failed'
      ? `failed${error}`
      : event === 'succeeded'
        ? 'succeeded'
        : event === 'canceled'
          ? 'was canceled'
          : `${event.replace(/_/g, ' ')}${error}`;
  const line = `swarm-utils: ${subject(job)} ${what} (job ${job.id}${duration(job)})`.replace(/\s+/g, ' ').trim();
  return line.length > MAX_LINE ? `${line.slice(0, MAX_LINE - 1)}…` : line;
}

/** the request body, already redacted */
export function notificationBody(event: string, job: JobView, format: NotifyFormat, redact: Redactor): string {
  if (format === 'slack') return JSON.stringify({ text: redact.text(summaryLine(event, job)) });
  return JSON.stringify({ event, job: redact(job) });
}
