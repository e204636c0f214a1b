import { describe, expect, it } from 'vitest';
import parsePrometheus from 'parse-prometheus-text-format';
import { openDb, type Db } from '../../src/db/index.js';
import { finishJob, insertJob, markRunning, setJobResult } from '../../src/db/jobs.js';
import { type Metrics, createMetrics } from '../../src/api/metrics.js';
import type { TaskInfo } from '../../src/swarm/port.js';
import { captureLog, fakeDocker, tempDbPath } from '../helpers/engine-fixture.js';
import { fakeNode, fakeService } from '../helpers/api-fixture.js';

const METRIC = 'swarm_utils_backup_last_success_timestamp_seconds';

const mounts = (...names: string[]) => ({
  TaskTemplate: { ContainerSpec: { Mounts: names.map((n) => ({ Type: 'volume', Source: n, Target: `/${n}` })) } },
});

function task(serviceId: string, nodeId: string, state = 'running', createdAt = '2026-01-01T00:00:00Z'): TaskInfo {
  return {
    id: `t-${serviceId}-${nodeId}-${state}`,
    serviceId,
    nodeId,
    state,
    desiredState: state === 'running' ? 'running' : 'shutdown',
    containerId: 'c',
    error: null,
    message: null,
    exitCode: null,
    image: '',
    serviceVersion: null,
    createdAt,
    updatedAt: createdAt,
  };
}

const services = [
  // two tasks on two nodes, two volumes, one selected
  fakeService('db', { 'swarm-utils.backup.enable': 'true', 'swarm-utils.backup.volume-list': 'db-data' }, { spec: mounts('db-data', 'db-cache') }),
  // no running task: the node of its most recent one
  fakeService('crashed', { 'swarm-utils.backup.enable': 'true' }, { spec: mounts('crashed-data') }),
  // a volume-list item it does not mount: the backup fails, the series stays (at 0)
  fakeService('typo', { 'swarm-utils.backup.enable': 'true', 'swarm-utils.backup.volume-list': 'nope' }, { spec: mounts('typo-data') }),
  fakeService('off', {}, { spec: mounts('off-data') }),
];
const tasks: Record<string, TaskInfo[]> = {
  'id-db': [task('id-db', 'id-w1'), task('id-db', 'id-w2')],
  'id-crashed': [task('id-crashed', 'id-w1', 'failed', '2026-01-01T00:00:00Z'), task('id-crashed', 'id-w2', 'failed', '2026-01-02T00:00:00Z')],
  'id-typo': [task('id-typo', 'id-w1')],
  'id-off': [task('id-off', 'id-w1')],
};

function backupJob(db: Db, service: string, archives: { node: string; volume: string }[], finishedAt: number, state: 'succeeded' | 'failed' = 'succeeded') {
  const job = insertJob(db, { type: 'backup', targetKind: 'service', target: service, source: 'api', locks: [] });
  markRunning(db, job.id, 'boot', finishedAt - 1000);
  setJobResult(db, job.id, { archives: archives.map((a) => ({ ...a, key: `${a.node}_${a.volume}_x.tar.gz`, size: 1 })) });
  finishJob(db, job.id, state, finishedAt);
}

async function series(metrics: Metrics): Promise<Record<string, number>> {
  const family = parsePrometheus((await metrics.render()).body).find((f) => f.name === METRIC);
  expect(family?.type).toBe('GAUGE');
  return Object.fromEntries(family!.metrics.map((m) => [`${m.labels!.service}/${m.labels!.volume}/${m.labels!.node}`, Number(m.value)]));
}

describe(`/metrics: ${METRIC}`, () => {
  const docker = fakeDocker({
    listServices: async () => services,
    listNodes: async () => [fakeNode('w1'), fakeNode('w2')],
    listTasks: async (id) => tasks[id] ?? [],
  });

  it('0 for every enabled service’s volume on every node that holds it, before any backup', async () => {
    const metrics = createMetrics(openDb(tempDbPath()), { docker });
    expect(await series(metrics)).toEqual({
      'db/db-data/w1': 0,
      'db/db-data/w2': 0,
      'crashed/crashed-data/w2': 0,
      'typo/nope/w1': 0,
    });
  });

  it('the end of the last successful job that archived it; failed jobs and other services do not count', async () => {
    const db = openDb(tempDbPath());
    const t1 = Date.parse('2026-03-01T03:00:00Z');
    const t2 = Date.parse('2026-03-02T03:00:00Z');
    backupJob(db, 'db', [{ node: 'w1', volume: 'db-data' }, { node: 'w2', volume: 'db-data' }], t1);
    backupJob(db, 'db', [{ node: 'w1', volume: 'db-data' }], t2);
    backupJob(db, 'db', [{ node: 'w2', volume: 'db-data' }], t2 + 5000, 'failed');
    backupJob(db, 'off', [{ node: 'w1', volume: 'off-data' }], t2);
    const metrics = createMetrics(db, { docker });
    expect(await series(metrics)).toEqual({
      'db/db-data/w1': t2 / 1000,
      'db/db-data/w2': t1 / 1000,
      'crashed/crashed-data/w2': 0,
      'typo/nope/w1': 0,
    });
  });

  it('Docker unreachable: the series on record stay, and the scrape still answers', async () => {
    const db = openDb(tempDbPath());
    const t1 = Date.parse('2026-03-01T03:00:00Z');
    backupJob(db, 'db', [{ node: 'w1', volume: 'db-data' }], t1);
    const log = captureLog();
    const down = fakeDocker({ listServices: () => Promise.reject(new Error('connect ENOENT /var/run/docker.sock')) });
    const metrics = createMetrics(db, { docker: down, log: log.logger });
    expect(await series(metrics)).toEqual({ 'db/db-data/w1': t1 / 1000 });
    expect(log.text()).toContain('could not list the enabled services');
  });
});
