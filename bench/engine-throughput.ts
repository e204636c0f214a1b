/**
 * Engine overhead: N no-op jobs through the worker (claim in an IMMEDIATE transaction, locks, steps,
 * finish) against a baseline of the same number of bare SQLite insert+update pairs, in one process.
 * Run: npx tsx bench/engine-throughput.ts [jobs]
 */
import { openDb } from '../src/db/index.js';
import { insertJob } from '../src/db/jobs.js';
import { Worker } from '../src/engine/worker.js';
import type { JobKind } from '../src/engine/types.js';
import { fakeDocker, makeDeps, tempDbPath } from '../test/helpers/engine-fixture.js';

const n = Number(process.argv[2] ?? 2000);

function baseline(): number {
  const db = openDb(tempDbPath());
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const id = db.prepare("INSERT INTO jobs (type, state, target_kind, target, source, created_at) VALUES ('clean', 'queued', 'service', ?, 'api', ?)").run(`s${i}`, Date.now()).lastInsertRowid;
    db.prepare("UPDATE jobs SET state = 'succeeded', finished_at = ? WHERE id = ?").run(Date.now(), id);
  }
  return performance.now() - t0;
}

async function engine(): Promise<number> {
  const db = openDb(tempDbPath());
  const kind: JobKind = { type: 'clean', locks: (t) => [`clean_service_${t.name}`], steps: () => [{ name: 'noop', run: async () => undefined }] };
  const worker = new Worker(makeDeps(db, fakeDocker()), { clean: kind }, { concurrency: 4, lockTimeoutMs: 60_000, retentionDays: 30 });
  await worker.start();
  const t0 = performance.now();
  const ids: number[] = [];
  for (let i = 0; i < n; i++) {
    ids.push(insertJob(db, { type: 'clean', targetKind: 'service', target: `s${i % 50}`, source: 'api', locks: [`clean_service_s${i % 50}`] }).id);
    worker.wake();
  }
  await Promise.all(ids.map((id) => worker.waitFor(id, 600_000)));
  const ms = performance.now() - t0;
  await worker.stop(100);
  return ms;
}

const b = baseline();
const e = await engine();
console.log(`baseline: ${n} bare insert+update pairs in ${b.toFixed(0)} ms`);
console.log(`engine:   ${n} no-op jobs (claim, locks, 1 step, finish) in ${e.toFixed(0)} ms (${((n / e) * 1000).toFixed(0)} jobs/s)`);
console.log(`ratio engine/baseline: ${(e / b).toFixed(1)}`);
