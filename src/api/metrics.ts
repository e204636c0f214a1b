import type { Registry } from 'prom-client';
import type { Db } from '../db/index.js';
import type { JobRow } from '../db/jobs.js';
import type { Logger } from '../log.js';
import type { DockerPort } from '../swarm/port.js';
import { type BackupTarget, expectedBackups, lastSuccesses, targetKey } from './backup-freshness.js';
import { drillOutcomes, lastVerified } from '../backups/drills.js';

/** how long a scrape waits for Docker's list of enabled services and their tasks */
const DOCKER_WAIT_MS = 5_000;

export interface MetricsOptions {
  /** with Docker, every enabled service's volumes get a last-success series, 0 before their first backup */
  docker?: Pick<DockerPort, 'listServices' | 'listTasks' | 'listNodes'>;
  log?: Logger;
}

export interface Metrics {
  /** the Prometheus text of a scrape */
  render(): Promise<{ contentType: string; body: string }>;
  observeFinished(job: Pick<JobRow, 'type' | 'state' | 'startedAt' | 'finishedAt'>): void;
}

/**
 * Prometheus metrics; job counts and last backups are read from SQLite at scrape time, so they survive
 * restarts. The client library is loaded at the first scrape or job end, not at start-up (an idle process
 * stays small: README "Benchmarks").
 */
export function createMetrics(db: Db, opts: MetricsOptions = {}): Metrics {
  let built: Promise<Built> | null = null;
  const build = () => (built ??= import('prom-client').then((prom) => buildRegistry(prom, db, opts)));
  return {
    async render() {
      const { registry } = await build();
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
    observeFinished(job) {
      if (!job.startedAt || !job.finishedAt) return;
      const seconds = (job.finishedAt - job.startedAt) / 1000;
      void build().then(({ duration }) => duration.observe({ type: job.type, state: job.state }, seconds));
    },
  };
}

interface Built {
  registry: Registry;
  duration: import('prom-client').Histogram<'type' | 'state'>;
}

function buildRegistry(prom: typeof import('prom-client'), db: Db, opts: MetricsOptions): Built {
  const { Gauge, Histogram, Registry } = prom;
  const registry = new Registry();
  const expectedOrNull = async (): Promise<BackupTarget[] | null> => {
    if (!opts.docker) return null;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        expectedBackups(opts.docker),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`Docker did not answer within ${DOCKER_WAIT_MS} ms`)), DOCKER_WAIT_MS))),
      ]);
    } catch (e) {
      opts.log?.warn({ err: e }, 'metrics: could not list the enabled services; last-success series from the job history only');
      return null;
    } finally {
      clearTimeout(timer);
    }
  };
  // both backup gauges of one scrape share one listing of the enabled services
  let shared: { at: number; expected: Promise<BackupTarget[] | null> } | null = null;
  const expectedOnce = (): Promise<BackupTarget[] | null> => {
    if (!shared || Date.now() - shared.at > 1000) shared = { at: Date.now(), expected: expectedOrNull() };
    return shared.expected;
  };
  new Gauge({
    name: 'swarm_utils_jobs',
    help: 'Jobs in the database by type and state',
    labelNames: ['type', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      const rows = db.prepare('SELECT type, state, COUNT(*) AS n FROM jobs GROUP BY type, state').all() as { type: string; state: string; n: number }[];
      for (const r of rows) this.set({ type: r.type, state: r.state }, r.n);
    },
  });
  const duration = new Histogram({
    name: 'swarm_utils_job_duration_seconds',
    help: 'Duration of finished jobs (since this process started)',
    labelNames: ['type', 'state'],
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800],
    registers: [registry],
  });
  new Gauge({
    name: 'swarm_utils_backup_last_success_timestamp_seconds',
    help: 'End of the last successful backup job that archived this volume on this node (0: never), for every enabled service',
    labelNames: ['service', 'volume', 'node'],
    registers: [registry],
    async collect() {
      const last = lastSuccesses(db);
      const expected = await expectedOnce();
      this.reset();
      // without Docker, what is on record keeps its series, so the alert neither fires nor clears on a hiccup
      const targets = expected ?? [...last.values()].map((l) => l.target);
      for (const t of targets) this.set({ ...t }, (last.get(targetKey(t))?.at ?? 0) / 1000);
    },
  });
  new Gauge({
    name: 'swarm_utils_backup_last_verified_timestamp_seconds',
    help: 'End of the last successful restore drill of an archive of this volume on this node (0: never), for every enabled service',
    labelNames: ['service', 'volume', 'node'],
    registers: [registry],
    async collect() {
      const last = new Map(lastVerified(drillOutcomes(db)).map((v) => [targetKey(v), v]));
      const expected = await expectedOnce();
      this.reset();
      // as the last-success gauge: what a backup would archive now, or (Docker not answering) what is on record
      const targets = expected ?? [...last.values()].map(({ service, volume, node }) => ({ service, volume, node }));
      for (const t of targets) this.set({ ...t }, (last.get(targetKey(t))?.at ?? 0) / 1000);
    },
  });
  return { registry, duration };
}
