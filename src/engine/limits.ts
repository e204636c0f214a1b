import { AppError } from '../errors.js';

/**
 * Runs `fn` with a signal that aborts at `ms` (reason: TIMEOUT) or when `parent` aborts.
 * The promise rejects with the abort reason even when `fn` ignores its signal.
 */
export async function withLimit<T>(what: string, ms: number, parent: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ctrl = new AbortController();
  const onParent = () => ctrl.abort(parent?.reason);
  if (parent?.aborted) throw abortReason(parent);
  parent?.addEventListener('abort', onParent, { once: true });
  const timer = setTimeout(() => ctrl.abort(new AppError('TIMEOUT', `${what} did not finish within ${ms} ms`)), ms);
  try {
    return await Promise.race([
      fn(ctrl.signal),
      new Promise<never>((_, reject) => ctrl.signal.addEventListener('abort', () => reject(abortReason(ctrl.signal)), { once: true })),
    ]);
  } finally {
    clearTimeout(timer);
    parent?.removeEventListener('abort', onParent);
  }
}

/** abort reason when the process stops: an interrupted step stays `running`, to be re-entered by the next process */
export class ShutdownSignal extends Error {
  constructor() {
    super('swarm-utils is shutting down');
  }
}

/**
 * A signal that aborts when any of `parents` does (with its reason) or `ms` after now (AppError TIMEOUT).
 * `dispose` clears the timer and the listeners.
 */
export function deadline(parents: AbortSignal[], ms: number | null, what: string): { signal: AbortSignal; dispose(): void } {
  const ctrl = new AbortController();
  const listeners = parents.map((p) => {
    const on = () => ctrl.abort(p.reason);
    if (p.aborted) ctrl.abort(p.reason);
    else p.addEventListener('abort', on, { once: true });
    return () => p.removeEventListener('abort', on);
  });
  const timer = ms === null ? null : setTimeout(() => ctrl.abort(new AppError('TIMEOUT', `${what} did not finish within ${ms} ms`)), Math.max(0, ms));
  return {
    signal: ctrl.signal,
    dispose: () => {
      if (timer) clearTimeout(timer);
      for (const off of listeners) off();
    },
  };
}

/** rejects with the signal's reason when it aborts, whatever `work` does: a step that never settles still ends */
export function raceSignal<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signalError(signal));
  let off = () => undefined as void;
  const aborted = new Promise<never>((_, reject) => {
    const on = () => reject(signalError(signal));
    signal.addEventListener('abort', on, { once: true });
    off = () => signal.removeEventListener('abort', on);
  });
  return Promise.race([work, aborted]).finally(off);
}

/** the abort reason as thrown: a ShutdownSignal stays one (the runner tells it apart), anything else becomes an AppError */
const signalError = (signal: AbortSignal): Error => (signal.reason instanceof ShutdownSignal ? signal.reason : abortReason(signal));

export function abortReason(signal: AbortSignal): AppError {
  return signal.reason instanceof AppError ? signal.reason : new AppError('CANCELED', 'the operation was aborted');
}

export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(abortReason(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** A label value in ms (`10_000` allowed), or the fallback when missing; a malformed label is an error, not a silent default. */
export function labelMs(labels: Record<string, string>, key: string, fallback: number): number {
  const raw = labels[key];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw.trim().replace(/_/g, ''));
  if (!Number.isInteger(n) || n <= 0) {
    throw new AppError('VALIDATION', `label ${key} must be a positive integer of milliseconds (got "${raw}")`);
  }
  return n;
}
