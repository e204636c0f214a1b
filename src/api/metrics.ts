import { Gauge, Histogram, Registry } from 'prom-client';
import type { Db } from '../db/index.js';
import type { JobRow } from '../db/jobs.js';

/** Prometheus metrics; job counts and last backups are read from SQLite at scrape time, so they survive restarts. */
export function createMetrics(db: Db) {
  const registry = new Registry();
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
    name: 'swarm_utils_last_successful_backup_timestamp_seconds',
    help: 'End of the last successful backup archive per service, volume and node',
    labelNames: ['service', 'volume', 'node'],
    registers: [registry],
    collect() {
      this.reset();
      const rows = db
        .prepare("SELECT target, result, finished_at AS at FROM jobs WHERE type = 'backup' AND state = 'succeeded' AND target_kind = 'service' ORDER BY id DESC LIMIT 1000")
        .all() as { target: string; result: string | null; at: number }[];
      const seen = new Set<string>();
      for (const r of rows) {
        const archives = (JSON.parse(r.result ?? 'null') as { archives?: { node: string; volume: string }[] } | null)?.archives ?? [];
        for (const a of archives) {
          const key = `${r.target}\0${a.volume}\0${a.node}`;
          if (seen.has(key)) continue;
          seen.add(key);
          this.set({ service: r.target, volume: a.volume, node: a.node }, r.at / 1000);
        }
      }
    },
  });
  return {
    registry,
    observeFinished(job: Pick<JobRow, 'type' | 'state' | 'startedAt' | 'finishedAt'>) {
      if (job.startedAt && job.finishedAt) duration.observe({ type: job.type, state: job.state }, (job.finishedAt - job.startedAt) / 1000);
    },
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
