import { type Config, exitOnInvalidConfig, loadConfig } from './config.js';
import { instanceId, isWritable, openDb } from './db/index.js';
import { acquireProcessLock } from './db/lockfile.js';
import { type Logger, createLogger } from './log.js';
import { BucketGate } from './state/gate.js';
import { copyDir } from './state/snapshot.js';
import { type StateStore, createStateStore } from './state/store.js';
import { SchemaTooNew, checkLocalSchema, takeOver } from './state/takeover.js';
import { CALL_TIMEOUT_MS, createDockerPort } from './swarm/dockerode.js';
import { Worker } from './engine/worker.js';
import { JOB_KINDS } from './jobs/index.js';
import { buildApp } from './api/app.js';
import { startStartingServer } from './api/starting.js';
import { createAuthorizer } from './api/auth.js';
import { createJobsService } from './api/jobs-service.js';
import { createStatusService } from './api/status-service.js';
import { createServicesService } from './api/services-service.js';
import { createBackupsService } from './api/backups-service.js';
import { createMetrics } from './api/metrics.js';
import type { Deps } from './engine/types.js';
import { startScheduler } from './scheduler.js';
import { createNotifier } from './notify/notifier.js';
import { exitOnOldNode } from './node-version.js';
import { SWEEP_EVERY_MS, sweepStaging } from './jobs/backup/unstage.js';
import { ShutdownSignal } from './engine/limits.js';
import { releaseStartupMemory } from './memory.js';
import { buildInfo } from './version.js';

/** after this long the start-up's garbage is collected (the first Docker calls and sweeps are done by then) */
const STARTUP_SETTLE_MS = 2000;
/** what the graceful stop keeps for closing the database and exiting once the jobs settled */
const EXIT_MARGIN_MS = 500;
/** what it keeps for the last copy of the state to the bucket */
const LAST_COPY_MS = 2_000;
/** exit code of a process that found that another instance took over (README "Losing its manager") */
const EXIT_FENCED = 3;

/** the copy of the database in the bucket: with S3 configured, unless SWARM_UTILS_STATE_COPY=false */
function stateStoreOf(config: Config, log: Logger): StateStore | null {
  const s3 = config.s3;
  const why = !s3.domain ? 'S3 is not configured' : !config.stateCopy.enabled ? 'SWARM_UTILS_STATE_COPY=false' : config.dbPath === ':memory:' ? 'the database is in memory' : null;
  if (why) {
    log.info({ reason: why }, 'state copy to the bucket: off');
    return null;
  }
  const store = createStateStore(s3);
  log.info({ key: store.key, intervalMs: config.stateCopy.intervalMs }, 'state copy to the bucket: on');
  return store;
}

/** start-up: config → lock → db → docker → worker → scheduler → api; SIGTERM/SIGINT stop in the reverse order */
async function main(): Promise<void> {
  exitOnOldNode();
  // the image sets SWARM_UTILS_DB_PATH=/data/swarm-utils.db itself (Dockerfile)
  const loaded = loadConfig(process.env);
  const config = exitOnInvalidConfig(loaded);
  const log = createLogger(config.logLevel);
  // the first line says what runs (docs/install.md "Version"), then what the configuration ignored
  log.info({ version: buildInfo().version, revision: buildInfo().revision }, `swarm-utils ${buildInfo().version} starting`);
  for (const warning of loaded.ok ? loaded.warnings : []) log.warn({ variable: warning.split(':')[0] }, warning);
  // one process per database file: a second one would resume the first one's running jobs
  const lock = acquireProcessLock(config.dbPath);
  if (!lock) {
    process.stderr.write(
      `swarm-utils: another swarm-utils process is using the database ${config.dbPath} (its lock file ${config.dbPath}.lock is held); ` +
        'only one process may use a database file: stop the other one first\n',
    );
    process.exit(1);
  }
  // a database written by a newer version (a rollback): refused before it is opened, migrated or replaced
  try {
    checkLocalSchema(config.dbPath);
  } catch (e) {
    if (!(e instanceof SchemaTooNew)) throw e;
    process.stderr.write(`swarm-utils: ${e.message}\n`);
    process.exit(2);
  }
  // README "Losing its manager": a missing or older local database is replaced by the bucket's copy first
  const store = stateStoreOf(config, log);
  // while the bucket is read the port answers already: /healthz, /readyz naming the wait, 503 for jobs
  const starting = store ? await startStartingServer(config, buildInfo().version) : null;
  const takeover = store
    ? await takeOver({ dbPath: config.dbPath, store, log, readBucketMs: config.stateCopy.startTimeoutMs, onWait: (w) => starting?.waiting(w) }).catch(async (e: unknown) => {
        await starting?.close();
        if (e instanceof SchemaTooNew) {
          process.stderr.write(`swarm-utils: ${e.message}\n`);
          process.exit(2);
        }
        throw e;
      })
    : null;
  const db = openDb(config.dbPath);
  // no single Engine API call may take longer than one command may run
  const docker = createDockerPort({ logger: log, callTimeoutMs: Math.min(CALL_TIMEOUT_MS, config.lockMaxExecutionMs) });
  const instance = instanceId(db);
  let worker: Worker | null = null;
  const state =
    store && takeover
      ? new BucketGate({
          db,
          store,
          log,
          docker,
          intervalMs: config.stateCopy.intervalMs,
          dir: copyDir(config.dbPath),
          base: takeover.base,
          restored: takeover.restored,
          unread: takeover.unread ?? null,
          // another instance took over: exit at once, acting on nothing (no compensation: its jobs are the other's now)
          onFenced: (message) => {
            process.stderr.write(`swarm-utils: ${message}\n`);
            process.exit(EXIT_FENCED);
          },
          onQuorum: () => worker?.wake(),
        })
      : undefined;
  const deps: Deps = { db, docker, config, log, instance, state };

  worker = new Worker(deps, JOB_KINDS, {
    concurrency: config.concurrency,
    lockTimeoutMs: config.lockTimeoutMs,
    retentionDays: config.jobRetentionDays,
  });
  const metrics = createMetrics(db, { docker, log });
  worker.events.on('finished', (job) => metrics.observeFinished(job));
  // README "Notifications": derived from the job rows, so it also runs for jobs that ended before a crash
  const notifier = createNotifier(deps);
  worker.events.on('finished', () => notifier.wake());
  // a compensation left to the operator is derived from its row by the notifier's sweep; this only hurries it
  worker.events.on('compensation', () => notifier.wake());
  notifier.start();
  await worker.start();
  state?.start();
  const scheduler = startScheduler(deps, worker);
  // README "Staging: the downtime of a stop=true backup": staging volumes whose job is over (a crash, a node that was down) are removed
  const sweeps = new AbortController();
  let sweeping: Promise<void> | null = null;
  const sweep = () => {
    sweeping ??= sweepStaging(deps, sweeps.signal)
      .catch((e: unknown) => log.warn({ err: e }, 'staging sweep failed'))
      .finally(() => (sweeping = null));
  };
  sweep();
  const sweepTimer = setInterval(sweep, SWEEP_EVERY_MS).unref();

  const auth = createAuthorizer(deps);
  const jobs = createJobsService(deps, worker, auth, JOB_KINDS);
  const app = await buildApp({
    log,
    auth,
    jobs,
    status: createStatusService(deps, auth),
    services: createServicesService(deps, auth, JOB_KINDS),
    backups: createBackupsService(deps, auth),
    metrics,
    waitLimitMs: config.lockTimeoutMs + config.lockMaxOccupationMs + 30_000,
    config,
    listServices: () => docker.listServices(),
    ready: async () => {
      const dbOk = isWritable(db);
      let dockerCheck: { ok: boolean; message?: string };
      try {
        const self = await docker.self();
        dockerCheck = self.isManager ? { ok: true } : { ok: false, message: 'the Docker daemon is not a swarm manager' };
      } catch (e) {
        dockerCheck = { ok: false, message: e instanceof Error ? e.message : String(e) };
      }
      const checks: Record<string, { ok: boolean; message?: string }> = { database: { ok: dbOk }, docker: dockerCheck };
      // started from the local database without reading the bucket: not ready until a copy is written
      const unread = state?.unreadState;
      if (state) {
        checks.stateCopy = unread
          ? { ok: false, message: `started from the local database without the bucket (it did not answer within SWARM_UTILS_STATE_COPY_START_TIMEOUT); waiting for the bucket since ${unread.since}, last error: ${unread.lastError}` }
          : { ok: true };
      }
      return { ok: dbOk && dockerCheck.ok && !unread, checks };
    },
  });
  app.server.requestTimeout = 0; // waitRes requests may legitimately wait for minutes
  await starting?.close();
  await app.listen({ host: config.host, port: config.port });
  log.info({ port: config.port, boot: worker.bootId }, 'swarm-utils started');
  // once start-up has settled, what it allocated and left behind is given back (README "Benchmarks")
  setTimeout(() => {
    const before = process.memoryUsage().rss;
    if (releaseStartupMemory()) log.debug({ rssBefore: before, rssAfter: process.memoryUsage().rss }, 'start-up memory released');
  }, STARTUP_SETTLE_MS).unref();

  let stopping = false;
  /**
   * Shutdown (README "How jobs run"): stop claiming, answer open waitRes requests at once (503), give back
   * every service a job holds scaled down, leave the other helpers running for the next process, and exit
   * within SWARM_UTILS_SHUTDOWN_TIMEOUT whatever happens.
   */
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    const budget = config.shutdownTimeoutMs;
    setTimeout(() => {
      log.error({ budgetMs: budget }, 'shutdown did not finish in time: exiting now');
      process.exit(1);
    }, budget).unref();
    log.info({ signal, budgetMs: budget, heldServicesGivenBack: true }, 'stopping: running jobs resume at the next start');
    scheduler.stop();
    clearInterval(sweepTimer);
    sweeps.abort(new ShutdownSignal()); // its helpers are left to the next process, like a job's
    const settled = worker!.stop(budget - EXIT_MARGIN_MS - (state ? LAST_COPY_MS : 0)); // wakes every waitRes request at once
    const closed = app.close().catch(() => undefined);
    await settled;
    // answers are out by now: keep-alive connections of clients must not hold the exit
    app.server.closeAllConnections();
    await closed;
    await notifier.stop();
    // what the jobs did up to here (a service given back, a step to take up again) reaches the bucket
    if (state) await state.close(LAST_COPY_MS);
    db.close();
    lock.release();
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((e: unknown) => {
  // config problems exit earlier with their own list; this is Docker or the database failing at start-up
  process.stderr.write(`swarm-utils: start-up failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
