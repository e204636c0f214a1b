import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { Writable } from 'node:stream';
import { openDb, type Db } from '../../src/db/index.js';
import { createLogger } from '../../src/log.js';
import { loadConfig, type Config } from '../../src/config.js';
import type { Deps } from '../../src/engine/types.js';
import type { DockerPort, HelperRef, SecretRef } from '../../src/swarm/port.js';

/** a real SQLite file in a temp dir (WAL needs a file) */
export function tempDbPath(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swarm-utils-test-'));
  return path.join(dir, 'test.db');
}

export function testConfig(env: Record<string, string> = {}): Config {
  const r = loadConfig({ SWARM_UTILS_ADMIN_TOKEN_LIST: 'admin-token', SWARM_UTILS_LOG_LEVEL: 'silent', ...env });
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return r.config;
}

/** collects log lines, to assert what never appears in them */
export function captureLog() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { lines, text: () => lines.join(''), logger: createLogger('debug', stream) };
}

/** A DockerPort whose methods fail unless a test provides them: the engine's logic is tested without Docker. */
export function fakeDocker(over: Partial<DockerPort> = {}): DockerPort & { helpers: HelperRef[]; secrets: (SecretRef & { data: string })[] } {
  const helpers: HelperRef[] = [];
  const secrets: (SecretRef & { data: string })[] = [];
  const missing = (name: string) => () => Promise.reject(new Error(`fake docker: ${name} not provided by this test`));
  return {
    helpers,
    secrets,
    self: async () => ({ nodeId: 'node-self', isManager: true, apiVersion: '1.41' }),
    ping: async () => undefined,
    getService: async () => null,
    listServices: async () => [],
    listTasks: async () => [],
    getNode: async () => null,
    listNodes: async () => [],
    updateService: missing('updateService'),
    resolveDigest: missing('resolveDigest'),
    serviceLogs: async () => [],
    execLocal: missing('execLocal'),
    createHelper: missing('createHelper'),
    listHelpers: async (jobId?: number) => helpers.filter((h) => jobId === undefined || h.jobId === jobId),
    findHelper: async (name: string) => helpers.find((h) => h.name === name) ?? null,
    waitHelper: missing('waitHelper'),
    removeService: async (id: string) => {
      const i = helpers.findIndex((h) => h.id === id);
      if (i >= 0) helpers.splice(i, 1);
    },
    createSecret: async ({ name, jobId, data }) => {
      const found = secrets.find((s) => s.name === name);
      if (found) return { id: found.id, name, jobId: found.jobId };
      secrets.push({ id: `secret-${name}`, name, jobId, data });
      return { id: `secret-${name}`, name, jobId };
    },
    listSecrets: async (jobId?: number) =>
      secrets.filter((s) => jobId === undefined || s.jobId === jobId).map(({ id, name, jobId: j }) => ({ id, name, jobId: j })),
    removeSecret: async (id: string) => {
      const i = secrets.findIndex((s) => s.id === id);
      if (i >= 0) secrets.splice(i, 1);
    },
    stopHelper: async (ref: HelperRef) => {
      const i = helpers.findIndex((h) => h.id === ref.id);
      if (i >= 0) helpers.splice(i, 1);
    },
    ...over,
  };
}

export function makeDeps(db: Db, docker: DockerPort, config = testConfig(), logger = captureLog().logger): Deps {
  return { db, docker, config, log: logger, instance: 'test01' };
}

export { openDb };

/** a StepContext's holds that record nothing: for unit tests of steps that neither stop services nor prune */
export const noHolds: import('../../src/engine/types.js').Holds = {
  holdService: async () => undefined,
  setVersion: () => undefined,
  releaseService: () => undefined,
  isHeld: () => false,
  holdNode: async () => undefined,
};
