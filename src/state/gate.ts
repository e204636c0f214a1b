/**
 * The state gate (README "Losing its manager"): a step acts only through the Docker port, and before
 * every action the bucket's copy of the database holds every change made so far (the replica count just
 * recorded, a hold, a started swap, the step that creates a helper): the copy is made and awaited first.
 * Otherwise a copy is made every SWARM_UTILS_STATE_COPY_INTERVAL when something changed.
 *
 * One writer: before each copy the bucket's object is read. One written by another process at this
 * generation or later means another instance took over: this process is fenced (it stops at once,
 * without acting). A manager cut off from the swarm's quorum cannot change services (Docker refuses):
 * a call that meets that waits, logged once, while nothing is claimed, until the swarm answers again.
 */
import crypto from 'node:crypto';
import type { Db } from '../db/index.js';
import { anyJobRunning, localGeneration, setLocalGeneration, trackChanges } from '../db/state.js';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import { raceSignal, sleep } from '../engine/limits.js';
import type { StateGate } from '../engine/types.js';
import type { DockerPort } from '../swarm/port.js';
import { snapshot } from './snapshot.js';
import { StateConflict, type StateHead, type StateStore } from './store.js';

/** how often a manager without quorum asks the swarm again */
export const QUORUM_POLL_MS = 3_000;

export interface GateOptions {
  db: Db;
  store: StateStore;
  log: Logger;
  /** reads whether the swarm answers again after a loss of quorum */
  docker: Pick<DockerPort, 'listNodes'>;
  intervalMs: number;
  /** where the copy is made before it is compressed (the database's directory) */
  dir: string;
  /** the object as read at start-up: the one write of another process this process accepts */
  base: StateHead | null;
  restored: { generation: number; at: string; from: string } | null;
  /**
   * start-up did not read the bucket (it did not answer within SWARM_UTILS_STATE_COPY_START_TIMEOUT) and
   * went on from the local database: until a copy succeeds, a step acts without one when the bucket does
   * not answer (a write of another process still fences); docs/upgrading.md "S3 down at start-up"
   */
  unread?: { since: string; lastError: string } | null;
  /** another instance took over: the process must stop at once, without acting */
  onFenced(message: string): void;
  /** the swarm answers again after a loss of quorum */
  onQuorum?(): void;
  /** how often a manager without quorum asks the swarm again (QUORUM_POLL_MS) */
  quorumPollMs?: number;
}

export class BucketGate implements StateGate {
  readonly writer = crypto.randomUUID();
  readonly installation: string;
  private readonly changes: () => number;
  /** the change count the last copy holds */
  private shipped = -1;
  private inflight: Promise<void> | null = null;
  private fencedBy: string | null = null;
  private quorum: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  private failing = false;
  private unread: { since: string; lastError: string } | null;
  private conflicted = false;
  last: { generation: number; etag: string | null; bytes: number; ms: number; at: string } | null = null;

  constructor(private readonly opts: GateOptions) {
    this.unread = opts.unread ?? null;
    this.changes = trackChanges(opts.db);
    this.installation = (opts.db.prepare("SELECT value FROM meta WHERE key = 'instance'").pluck().get() as string | undefined) ?? '';
  }

  get takeover() {
    return this.opts.restored;
  }

  get waiting(): boolean {
    return this.quorum !== null;
  }

  /** the bucket has not been read since start-up (what GET /readyz reports), or null */
  get unreadState(): { since: string; lastError: string } | null {
    return this.unread;
  }

  get fenced(): boolean {
    return this.fencedBy !== null;
  }

  start(): void {
    this.timer ??= setInterval(() => void this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  async beforeAct(opts: { strict: boolean; signal?: AbortSignal }): Promise<void> {
    this.throwIfFenced();
    try {
      await (opts.signal ? raceSignal(this.flush(), opts.signal) : this.flush());
    } catch (e) {
      this.throwIfFenced();
      if (opts.signal?.aborted) throw e;
      const why = e instanceof Error ? e.message : String(e);
      if (this.unread && !this.conflicted) {
        this.unread.lastError = why;
        this.opts.log.warn({ err: why }, 'the bucket still does not answer since start-up: acting from the local database without a copy');
        return;
      }
      if (opts.strict) throw new AppError('S3_ERROR', `the state could not be copied to the bucket before acting, so nothing was done: ${why}`);
      this.opts.log.warn({ err: why }, 'the state could not be copied to the bucket before a compensation or a clean-up: it acts all the same');
    }
  }

  /** copies until the bucket holds every change counted now */
  async flush(): Promise<void> {
    const target = this.changes();
    while (this.shipped < target) {
      this.throwIfFenced();
      if (!this.inflight) {
        this.inflight = this.shipOnce().finally(() => (this.inflight = null));
        await this.inflight;
        continue;
      }
      // a copy under way may have started before the change waited for: then one more follows
      await this.inflight;
    }
  }

  async copied(ms: number): Promise<boolean> {
    if (this.fenced) return false;
    try {
      await raceSignal(this.flush(), AbortSignal.timeout(ms));
      return true;
    } catch {
      // the periodic copy tries again
      return false;
    }
  }

  /** the last copy, at most `ms` from now (a graceful stop); false when it did not make it */
  async close(ms: number): Promise<boolean> {
    this.stop();
    const ok = await this.copied(ms);
    if (!ok && !this.fenced) this.opts.log.warn('the last state copy before the exit did not make it: the bucket keeps the one before');
    return ok;
  }

  /** reads the bucket's object and fences this process when another instance took over */
  async check(): Promise<void> {
    this.judge(await this.opts.store.head());
  }

  waitQuorum(signal?: AbortSignal): Promise<void> {
    this.quorum ??= this.quorumLoop().finally(() => {
      this.quorum = null;
      this.opts.onQuorum?.();
    });
    return signal ? raceSignal(this.quorum, signal) : this.quorum;
  }

  private async shipOnce(): Promise<void> {
    const { db, store, log } = this.opts;
    const t0 = Date.now();
    this.conflicted = false;
    const head = await store.head();
    this.judge(head);
    const generation = Math.max(localGeneration(db), head?.generation ?? 0) + 1;
    // the copy carries its own generation; the local database keeps it too (a restart here is not older)
    setLocalGeneration(db, generation);
    const from = this.changes();
    const body = await snapshot(db, this.opts.dir);
    this.throwIfFenced();
    let put: { etag: string | null };
    try {
      put = await store.put(body, { generation, writer: this.writer, installation: this.installation }, { etag: head?.etag ?? null });
    } catch (e) {
      if (!(e instanceof StateConflict)) throw e;
      this.conflicted = true;
      // someone wrote between our read and our write: a newer generation fences us, an older one is overwritten next time
      this.judge(await store.head(), generation);
      throw new AppError('S3_ERROR', `another process wrote ${store.key} at the same moment: the copy is made again`);
    }
    this.shipped = Math.max(this.shipped, from);
    if (this.unread) {
      log.info({ generation, unreadSince: this.unread.since }, 'state copy: the bucket answers again: the copy is written and steps wait for it again');
      this.unread = null;
    }
    this.last = { generation, etag: put.etag, bytes: body.length, ms: Date.now() - t0, at: new Date().toISOString() };
    log.debug({ generation, bytes: body.length, ms: this.last.ms, conditional: store.conditional }, 'state copied to the bucket');
  }

  /** a write of another process at our generation or later: another instance took over */
  private judge(head: StateHead | null, mine = localGeneration(this.opts.db)): void {
    if (!head || head.writer === this.writer) return;
    if (this.opts.base && head.etag !== null && head.etag === this.opts.base.etag) return;
    // started unread from the local database: the bucket's copy at our generation or older is the one we
    // wrote last (or an older process's); it is the base, as if read at start-up. A newer one fences below.
    if (this.unread && head.generation <= mine) {
      if (!this.opts.base) this.opts.base = head;
      return;
    }
    if (head.generation < mine) return; // an older process: our next copy supersedes it, and its next check fences it
    const message =
      `another swarm-utils instance took over: the state copy ${this.opts.store.key} in the bucket is at generation ${head.generation} ` +
      `(written by process ${head.writer || 'unknown'}), this process is at ${mine}; it stops without acting`;
    this.fence(message);
  }

  private fence(message: string): never {
    if (!this.fencedBy) {
      this.fencedBy = message;
      this.stop();
      this.opts.log.fatal({ reason: 'fenced' }, message);
      this.opts.onFenced(message);
    }
    throw new AppError('SHUTTING_DOWN', message);
  }

  private throwIfFenced(): void {
    if (this.fencedBy) throw new AppError('SHUTTING_DOWN', this.fencedBy);
  }

  private async tick(): Promise<void> {
    if (this.fenced || this.inflight || this.ticking) return;
    this.ticking = true;
    try {
      // cut off from the quorum: no copy (the other side may be taking over), only the check
      if (this.quorum) await this.check();
      else if (this.changes() > this.shipped) await this.flush();
      else if (anyJobRunning(this.opts.db)) await this.check();
      if (this.failing) this.opts.log.info('state copy: the bucket answers again');
      this.failing = false;
    } catch (e) {
      if (this.fenced) return;
      if (!this.failing) this.opts.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'state copy failed: tried again every interval');
      this.failing = true;
    } finally {
      this.ticking = false;
    }
  }

  private async quorumLoop(): Promise<void> {
    const { log, docker } = this.opts;
    log.warn('this manager is cut off from the swarm’s quorum (Docker refuses changes): waiting; nothing is claimed and no job is failed for it');
    for (;;) {
      await sleep(this.opts.quorumPollMs ?? QUORUM_POLL_MS);
      // whatever the swarm says, a takeover elsewhere ends this process
      await this.check().catch((e: unknown) => {
        if (this.fenced) throw e;
      });
      try {
        await docker.listNodes();
        break;
      } catch {
        // still cut off (or the daemon does not answer): asked again
      }
    }
    await this.check().catch((e: unknown) => {
      if (this.fenced) throw e;
    });
    log.info('the swarm answers again: going on');
  }
}
