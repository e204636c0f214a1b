import { exitOnInvalidConfig, loadConfig } from './config.js';
import { instanceId, isWritable, openDb } from './db/index.js';
import { createLogger } from './log.js';
import { createDockerPort } from './swarm/dockerode.js';
import { Worker } from './engine/worker.js';
import { JOB_KINDS } from './jobs/index.js';
import { buildApp } from './api/app.js';
import { createAuthorizer } from './api/auth.js';
import { createJobsService } from './api/jobs-service.js';
import { createStatusService } from './api/status-service.js';
import { createServicesService } from './api/services-service.js';
import { createMetrics } from './api/metrics.js';
import type { Deps } from './engine/types.js';
import { startScheduler } from './scheduler.js';
import { createNotifier } from './notify/notifier.js';
import { exitOnOldNode } from './node-version.js';

/** start-up: config → db → docker → worker → scheduler → api; SIGTERM/SIGINT stop in the reverse order */
async function main(): Promise<void> {
  exitOnOldNode();
  // the image sets SWARM_UTILS_DB_PATH=/data/swarm-utils.db itself (Dockerfile)
  const config = exitOnInvalidConfig(loadConfig(process.env));
  const log = createLogger(config.logLevel);
  const db = openDb(config.dbPath);
  const docker = createDockerPort({ logger: log }); // the port adds component: 'docker' itself
  const deps: Deps = { db, docker, config, log, instance: instanceId(db) };

  const worker = new Worker(deps, JOB_KINDS, {
    concurrency: config.concurrency,
    lockTimeoutMs: config.lockTimeoutMs,
    retentionDays: config.jobRetentionDays,
  });
  const metrics = createMetrics(db, { docker, log });
  worker.events.on('finished', (job) => metrics.observeFinished(job));
  // README "Notifications": derived from the job rows, so it also runs for jobs that ended before a crash
  const notifier = createNotifier(deps);
  worker.events.on('finished', () => notifier.wake());
  notifier.start();
  await worker.start();
  const scheduler = startScheduler(deps, worker);

  const auth = createAuthorizer(deps);
  const jobs = createJobsService(deps, worker, auth, JOB_KINDS);
  const app = await buildApp({
    log,
    auth,
    jobs,
    status: createStatusService(deps, auth),
    services: createServicesService(deps, auth, JOB_KINDS),
    metrics,
    waitLimitMs: config.lockTimeoutMs + config.lockMaxOccupationMs + 30_000,
    ready: async () => {
      const dbOk = isWritable(db);
      let dockerCheck: { ok: boolean; message?: string };
      try {
        const self = await docker.self();
        dockerCheck = self.isManager ? { ok: true } : { ok: false, message: 'the Docker daemon is not a swarm manager' };
      } catch (e) {
        dockerCheck = { ok: false, message: e instanceof Error ? e.message : String(e) };
      }
      return { ok: dbOk && dockerCheck.ok, checks: { database: { ok: dbOk }, docker: dockerCheck } };
    },
  });
  app.server.requestTimeout = 0; // waitRes requests may legitimately wait for minutes
  await app.listen({ host: config.host, port: config.port });
  log.info({ port: config.port, boot: worker.bootId }, 'swarm-utils started');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: running jobs resume at the next start');
    scheduler.stop();
    await app.close().catch(() => undefined);
    await worker.stop();
    await notifier.stop();
    db.close();
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
