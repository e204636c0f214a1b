import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/api/app.js';
import { createAuthorizer } from '../../src/api/auth.js';
import { createJobsService } from '../../src/api/jobs-service.js';
import { createStatusService } from '../../src/api/status-service.js';
import { createServicesService } from '../../src/api/services-service.js';
import { createBackupsService } from '../../src/api/backups-service.js';
import { createMetrics } from '../../src/api/metrics.js';
import { Worker } from '../../src/engine/worker.js';
import type { JobKind } from '../../src/engine/types.js';
import type { SubmitCheck } from '../../src/api/jobs-service.js';
import type { DockerPort, ServiceInfo, NodeInfo } from '../../src/swarm/port.js';
import type { Db } from '../../src/db/index.js';
import { captureLog, fakeDocker, makeDeps, openDb, tempDbPath, testConfig } from './engine-fixture.js';

export function fakeService(name: string, labels: Record<string, string> = {}, over: Partial<ServiceInfo> = {}): ServiceInfo {
  return {
    id: `id-${name}`,
    name,
    version: 1,
    labels,
    mode: 'replicated',
    replicas: 1,
    image: 'registry.example.com/app:v1',
    forceUpdate: 0,
    updateStatus: null,
    createdAt: new Date().toISOString(),
    updatedAt: new Date().toISOString(),
    spec: {},
    ...over,
  };
}

export function fakeNode(hostname: string, labels: Record<string, string> = {}): NodeInfo {
  return { id: `id-${hostname}`, hostname, role: 'worker', availability: 'active', state: 'ready', labels, addr: null };
}

export interface ApiFixture {
  app: FastifyInstance;
  db: Db;
  worker: Worker;
  logText: () => string;
  close: () => Promise<void>;
}

/** the real app, engine and SQLite file, with a fake Docker port and the given job kinds */
export async function apiFixture(opts: {
  services?: ServiceInfo[];
  nodes?: NodeInfo[];
  kinds: Record<string, JobKind & SubmitCheck>;
  docker?: Partial<DockerPort>;
  env?: Record<string, string>;
  waitLimitMs?: number;
}): Promise<ApiFixture> {
  const services = opts.services ?? [];
  const nodes = opts.nodes ?? [];
  const docker = fakeDocker({
    getService: async (n) => services.find((s) => s.name === n || s.id === n) ?? null,
    listServices: async () => services,
    getNode: async (n) => nodes.find((x) => x.hostname === n || x.id === n) ?? null,
    listNodes: async () => nodes,
    ...opts.docker,
  });
  const log = captureLog();
  const config = testConfig(opts.env);
  const deps = makeDeps(openDb(tempDbPath()), docker, config, log.logger);
  const worker = new Worker(deps, opts.kinds, { concurrency: 4, lockTimeoutMs: config.lockTimeoutMs, retentionDays: 30 });
  await worker.start();
  const auth = createAuthorizer(deps);
  const app = await buildApp({
    log: log.logger,
    auth,
    jobs: createJobsService(deps, worker, auth, opts.kinds),
    status: createStatusService(deps, auth),
    services: createServicesService(deps, auth, opts.kinds),
    backups: createBackupsService(deps, auth),
    metrics: createMetrics(deps.db),
    ready: async () => ({ ok: true, checks: {} }),
    waitLimitMs: opts.waitLimitMs ?? 5000,
    config,
    listServices: () => docker.listServices(),
  });
  return {
    app,
    db: deps.db,
    worker,
    logText: log.text,
    close: async () => {
      await app.close();
      await worker.stop(100);
    },
  };
}
