/**
 * Notifications (README "Notifications"): a JSON POST to SWARM_UTILS_NOTIFY_URL per failed top-level job
 * (every finished one with SWARM_UTILS_NOTIFY_ON=always, and every `compensation_left_to_operator`),
 * retried with backoff for up to 10 minutes, in the background: a job never waits for it.
 *
 * What is to be sent lives in SQLite, never only in memory: after each job end, at start-up and every
 * few seconds the notifications of finished jobs are derived from the jobs table (one row per job and
 * event, so deriving twice adds nothing), and each row records its attempts and its delivery. A process
 * killed between a job's end and the delivery sends it after the restart, once.
 */
import type { Deps } from '../engine/types.js';
import type { JobState } from '../db/jobs.js';
import { getJob } from '../db/jobs.js';
import { stepsOf } from '../db/steps.js';
import {
  type NotificationRow,
  dueNotifications,
  getMeta,
  insertCompensationNotifications,
  insertFinishedNotifications,
  insertNotification,
  markNotificationDelivered,
  markNotificationFailed,
  nextNotificationAt,
  setMeta,
} from '../db/notifications.js';
import { presentJob } from '../api/present.js';
import { type Redactor, createRedactor, notificationBody, summaryLine } from './payload.js';
import { type Service, parseService, targetId } from './services.js';

/** a configured delivery target: SWARM_UTILS_NOTIFY_URL ('notify-url') or one URL of SWARM_UTILS_NOTIFY_URLS */
interface Target {
  id: string;
  /** the plain webhook of SWARM_UTILS_NOTIFY_URL and http(s) entries: the body follows NOTIFY_FORMAT */
  webhook: boolean;
  service: Service;
}

/** a job's final state, or an outcome the engine reports on its own */
export type NotifyEvent = JobState | 'compensation_left_to_operator' | (string & {});

export interface Notifier {
  start(): void;
  /** a job ended: look for what to send now rather than at the next sweep */
  wake(): void;
  /**
   * Records `event` of job `jobId` to deliver whatever NOTIFY_ON says (for outcomes other than a job's
   * end, such as `compensation_left_to_operator`); durable at once, sent in the background.
   */
  enqueue(jobId: number, event: NotifyEvent): void;
  /** stops sending; what is pending is sent by the next process */
  stop(): Promise<void>;
}

export interface NotifierOptions {
  /** how long a notification is retried after it was recorded (10 minutes) */
  retryWindowMs?: number;
  /** delay before retry n (n >= 1): 1 s, 2 s, 4 s … up to 60 s */
  backoffMs?: (failedAttempts: number) => number;
  /** how often finished jobs are looked at without a wake-up */
  sweepEveryMs?: number;
  requestTimeoutMs?: number;
  fetch?: typeof fetch;
}

const STATES: Record<'failure' | 'always', readonly JobState[]> = {
  failure: ['failed'],
  always: ['succeeded', 'failed', 'canceled'],
};

export const RETRY_WINDOW_MS = 10 * 60_000;
const defaultBackoff = (n: number): number => Math.min(60_000, 1000 * 2 ** Math.max(0, n - 1));

/** the URL without user:password (sent as Basic auth instead: fetch refuses, and would print, such a URL) */
export function target(url: string): { url: string; authorization: string | null } {
  const u = new URL(url);
  if (!u.username && !u.password) return { url: u.href, authorization: null };
  const credentials = `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`;
  u.username = '';
  u.password = '';
  return { url: u.href, authorization: `Basic ${Buffer.from(credentials).toString('base64')}` };
}

/** the configured secrets, and the parts of the notify URL that may be one (a token in its path or query) */
function secretsOf(config: Deps['config']): string[] {
  const out: (string | null)[] = [
    ...config.adminTokens,
    config.s3.accessKey,
    config.s3.secretAccessKey,
    config.registry.user,
    config.registry.password,
    ...Object.entries(config.backupEnv)
      .filter(([k]) => /(pass|secret|token|key)/i.test(k))
      .map(([, v]) => v),
  ];
  const url = config.notify.url;
  if (url) {
    const u = new URL(url);
    out.push(url, u.href, u.pathname, u.search, decodeURIComponent(u.username), decodeURIComponent(u.password));
    out.push(...u.pathname.split('/'), ...[...u.searchParams.values()]);
  }
  for (const raw of config.notify.urls ?? []) {
    const s = parseService(raw);
    if (typeof s !== 'string') out.push(...s.secrets);
  }
  return out.filter((s): s is string => !!s);
}

/** why an attempt failed, in words that hold nothing of the URL */
function describe(e: unknown, timeoutMs: number): string {
  const err = e as { name?: string; code?: string; cause?: { code?: string; name?: string } } | null;
  if (err?.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  // nodemailer's errors carry a code (EAUTH, ECONNECTION …) and a message that may quote the server: only the code
  return err?.cause?.code ?? err?.cause?.name ?? (typeof err?.code === 'string' ? err.code : undefined) ?? err?.name ?? 'request failed';
}

export function createNotifier(deps: Pick<Deps, 'db' | 'log' | 'config'>, opts: NotifierOptions = {}): Notifier {
  const { db, config } = deps;
  const log = deps.log.child({ component: 'notify' });
  const url = config.notify.url;
  const targets: Target[] = [];
  if (url) {
    const s = parseService(url);
    if (typeof s !== 'string') targets.push({ id: 'notify-url', webhook: true, service: s });
  }
  for (const raw of config.notify.urls ?? []) {
    const s = parseService(raw);
    const id = targetId(raw);
    if (typeof s !== 'string' && !targets.some((t) => t.id === id)) targets.push({ id, webhook: s.scheme === 'http' || s.scheme === 'https', service: s });
  }
  const targetIds = targets.map((t) => t.id);
  if (!targets.length) {
    return {
      start() {
        // re-enabled later, notifications start from then: no backlog of jobs that ended meanwhile
        setMeta(db, 'notify_since', null);
        setMeta(db, 'notify_on', null);
      },
      wake: () => undefined,
      enqueue: () => undefined,
      stop: async () => undefined,
    };
  }
  const retryWindowMs = opts.retryWindowMs ?? RETRY_WINDOW_MS;
  const backoffMs = opts.backoffMs ?? defaultBackoff;
  const sweepEveryMs = opts.sweepEveryMs ?? 10_000;
  const requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
  const post = opts.fetch ?? fetch;
  const redact: Redactor = createRedactor(secretsOf(config));
  const states = STATES[config.notify.on];
  const stopping = new AbortController();
  let since = 0;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let again = false;

  /** jobs that ended from the time notifications were switched on (or NOTIFY_ON changed) are ours to report */
  function settle(): number {
    const recorded = Number(getMeta(db, 'notify_since'));
    if (recorded && getMeta(db, 'notify_on') === config.notify.on) return recorded;
    const now = Date.now();
    setMeta(db, 'notify_since', String(now));
    setMeta(db, 'notify_on', config.notify.on);
    // left from a time notifications were off or another NOTIFY_ON: not sent now, long after the fact
    db.prepare("UPDATE notifications SET given_up_at = ?, last_error = 'notifications were reconfigured' WHERE delivered_at IS NULL AND given_up_at IS NULL").run(now);
    return now;
  }

  async function deliver(n: NotificationRow): Promise<void> {
    const t = targets.find((x) => x.id === n.target);
    if (!t) {
      markNotificationFailed(db, n.jobId, n.event, n.target, 'the target is no longer configured', null);
      return;
    }
    const job = getJob(db, n.jobId);
    if (!job) {
      markNotificationFailed(db, n.jobId, n.event, n.target, 'the job no longer exists', null);
      return;
    }
    const view = presentJob(job, stepsOf(db, job.id));
    const text = t.webhook ? notificationBody(n.event, view, config.notify.format, redact) : redact.text(summaryLine(n.event, view));
    const title = `swarm-utils: ${n.event}`;
    const attempt = n.attempts + 1;
    const logged = { jobId: n.jobId, event: n.event, target: n.target, scheme: t.service.scheme };
    let failure: string;
    try {
      let status = 0;
      const requests = t.service.requests(text, title);
      if (requests === null) {
        await t.service.mail?.(text, title, requestTimeoutMs);
      } else {
        for (const r of requests) {
          const res = await post(r.url, {
            method: 'POST',
            headers: { 'user-agent': 'swarm-utils', ...r.headers },
            body: r.body,
            redirect: 'manual',
            signal: AbortSignal.any([stopping.signal, AbortSignal.timeout(requestTimeoutMs)]),
          });
          await res.body?.cancel().catch(() => undefined);
          status = res.status;
          if (!res.ok) throw Object.assign(new Error('status'), { httpStatus: res.status });
        }
      }
      markNotificationDelivered(db, n.jobId, n.event, n.target);
      log.info({ ...logged, attempt, ...(status ? { status } : {}) }, 'notification delivered');
      return;
    } catch (e) {
      const httpStatus = (e as { httpStatus?: number }).httpStatus;
      if (httpStatus) {
        failure = `HTTP ${httpStatus}`;
      } else {
        if (stopping.signal.aborted) return; // not an attempt: the next process sends it
        failure = describe(e, requestTimeoutMs);
      }
    }
    const now = Date.now();
    const deadline = n.createdAt + retryWindowMs;
    const nextAt = now >= deadline ? null : Math.min(now + backoffMs(attempt), deadline);
    markNotificationFailed(db, n.jobId, n.event, n.target, failure, nextAt, now);
    if (nextAt === null) log.error({ ...logged, attempts: attempt, error: failure }, 'notification given up after its retry window');
    else log.warn({ ...logged, attempt, error: failure, retryInMs: nextAt - now }, 'notification not delivered: will retry');
  }

  async function pass(): Promise<void> {
    const added = insertFinishedNotifications(db, states, since, targetIds) + insertCompensationNotifications(db, since, targetIds);
    if (added) log.debug({ added }, 'notifications recorded');
    for (let due = dueNotifications(db); due.length && !stopping.signal.aborted; due = dueNotifications(db)) {
      for (const n of due) {
        if (stopping.signal.aborted) return;
        await deliver(n);
      }
    }
  }

  function schedule(): void {
    if (stopping.signal.aborted) return;
    if (timer) clearTimeout(timer);
    const next = nextNotificationAt(db);
    const delay = Math.min(sweepEveryMs, next === null ? Infinity : Math.max(0, next - Date.now()));
    timer = setTimeout(run, delay);
    timer.unref();
  }

  /** one pass at a time; a wake-up during a pass causes one more */
  function run(): void {
    if (stopping.signal.aborted) return;
    if (running) {
      again = true;
      return;
    }
    if (timer) clearTimeout(timer);
    again = false;
    running = pass()
      .catch((e: unknown) => log.error({ err: e }, 'notification pass failed'))
      .finally(() => {
        running = null;
        if (again) setImmediate(run);
        else schedule();
      });
  }

  return {
    start() {
      since = settle();
      log.info({ on: config.notify.on, format: config.notify.format, targets: targets.map((t) => `${t.service.scheme}:${t.id}`) }, 'notifications on');
      run();
    },
    wake: () => setImmediate(run),
    enqueue(jobId, event) {
      if (insertNotification(db, jobId, event, targetIds)) log.info({ jobId, event }, 'notification recorded');
      setImmediate(run);
    },
    async stop() {
      stopping.abort();
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
