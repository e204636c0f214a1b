/**
 * Error mapping, deadlines and cancellation shared by the dockerode adapter.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { AppError, type ErrorCode } from '../errors.js';

/** What docker-modem attaches to an error from a non-2xx answer. */
interface ModemError {
  message?: unknown;
  statusCode?: unknown;
  json?: unknown;
}

/** HTTP status of a Docker error (raw modem error or one we already mapped), if any. */
export function statusOf(e: unknown): number | undefined {
  if (e instanceof AppError) {
    const d = e.details as { statusCode?: unknown } | undefined;
    return typeof d?.statusCode === 'number' ? d.statusCode : undefined;
  }
  const s = (e as ModemError | null)?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

/**
 * Docker's own message: docker-modem wraps it as "(HTTP code 404) no such service - <message> ",
 * the body's `message` is the clean one.
 */
export function dockerMessage(e: unknown): string {
  const err = e as ModemError | null;
  const json = err?.json;
  if (json && typeof json === 'object' && !Buffer.isBuffer(json)) {
    const m = (json as { message?: unknown }).message;
    if (typeof m === 'string' && m.trim() !== '') return m.trim();
  }
  if (Buffer.isBuffer(json) && json.length > 0) return json.toString('utf8').trim();
  if (typeof json === 'string' && json.trim() !== '') return json.trim();
  if (e instanceof Error) {
    // stream answers carry no `json`: take the cause out of docker-modem's wrapping
    const m = /^\(HTTP code \d+\) .*? - ([\s\S]*)$/.exec(e.message);
    return (m?.[1] ?? e.message).trim();
  }
  return String(e);
}

/** Map anything Docker threw to an AppError (AppErrors pass through), keeping the HTTP status in details. */
export function toAppError(e: unknown, code: ErrorCode = 'DOCKER_ERROR', scrub?: string): AppError {
  if (e instanceof AppError) return e;
  let message = dockerMessage(e);
  // never let a credential reach a message (and so a log line or an API answer)
  if (scrub) message = message.split(scrub).join('[redacted]');
  const statusCode = statusOf(e);
  return new AppError(code, message, statusCode === undefined ? undefined : { statusCode });
}

/** The error to raise when `signal` fired: its reason if that is already an AppError, else CANCELED. */
export function cancelError(signal: AbortSignal, what: string): AppError {
  const reason: unknown = signal.reason;
  if (reason instanceof AppError) return reason;
  return new AppError('CANCELED', `${what} was canceled`);
}

/** Abortable sleep; resolves false instead of throwing when aborted (callers check the signal). */
export async function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  try {
    await delay(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}

export interface DeadlineOpts {
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * Run `fn` with a deadline and the caller's cancellation. Rejects as soon as either fires
 * (TIMEOUT / CANCELED) without waiting for `fn`; `fn` gets a signal that fires then, so it can
 * stop polling and close streams.
 */
export async function withDeadline<T>(what: string, opts: DeadlineOpts, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  if (opts.signal?.aborted) throw cancelError(opts.signal, what);
  const inner = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    const fail = (err: AppError): void => {
      inner.abort(err);
      reject(err);
    };
    timer = setTimeout(() => fail(new AppError('TIMEOUT', `${what} did not finish within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    const outer = opts.signal;
    if (outer) {
      onAbort = () => fail(cancelError(outer, what));
      outer.addEventListener('abort', onAbort, { once: true });
    }
  });
  try {
    return await Promise.race([fn(inner.signal), stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort) opts.signal?.removeEventListener('abort', onAbort);
    // let whatever `fn` still runs notice that nobody waits for it any more
    if (!inner.signal.aborted) inner.abort(new AppError('CANCELED', `${what} finished`));
  }
}
