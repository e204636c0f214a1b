/**
 * The last-good-backup alert's series (README "Monitoring"): /metrics of the real server, parsed with a
 * Prometheus text-format parser, for services on the real swarm.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import parsePrometheus from 'parse-prometheus-text-format';
import { startServer, type RunningServer } from '../helpers/server.js';
import { createAppService, hostnameOf, removeServices, runningTasks, serverEnv, uid } from '../helpers/cluster.js';
import { deleteS3Prefix, instanceOf, removeHelperContainers, removeVolumes, s3Env } from '../helpers/leftovers.js';

const METRIC = 'swarm_utils_backup_last_success_timestamp_seconds';
const id = uid();
const PREFIX = `mt-${id}`;
const NEW = `mt-new-${id}`;
const TWO = `mt-two-${id}`;
const OFF = `mt-off-${id}`;
const VOL = { new: `mt-new-data-${id}`, two: `mt-two-data-${id}`, off: `mt-off-data-${id}` };

let s: RunningServer;
const vol = (name: string) => ({ Type: 'volume' as const, Source: name, Target: '/data' });

/** value by "service volume node" of every series of the metric whose service is one of ours */
async function lastSuccess(): Promise<Map<string, number>> {
  const r = await fetch(`${s.url}/metrics`, { headers: { authorization: 'Bearer cluster-admin-token' } });
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toContain('text/plain');
  const family = parsePrometheus(await r.text()).find((f) => f.name === METRIC);
  expect(family?.type).toBe('GAUGE');
  return new Map(
    family!.metrics
      .filter((m) => m.labels?.service?.endsWith(id))
      .map((m) => [`${m.labels!.service} ${m.labels!.volume} ${m.labels!.node}`, Number(m.value)]),
  );
}

beforeAll(async () => {
  [s] = await Promise.all([
    startServer(serverEnv(s3Env(PREFIX, `s3-secret-${id}`))),
    createAppService(NEW, { constraints: ['node.hostname==su-worker-2'], mounts: [vol(VOL.new)], labels: { 'swarm-utils.backup.enable': 'true' } }),
    createAppService(TWO, { replicas: 2, onWorkers: true, mounts: [vol(VOL.two)], labels: { 'swarm-utils.backup.enable': 'true' } }),
    createAppService(OFF, { onWorkers: true, mounts: [vol(VOL.off)] }),
  ]);
});

afterAll(async () => {
  const instance = s ? instanceOf(s) : null;
  await s?.stop();
  await removeServices(NEW, TWO, OFF);
  if (instance) await removeHelperContainers([instance]);
  await removeVolumes(Object.values(VOL));
  await deleteS3Prefix(PREFIX).catch(() => undefined);
});

describe(`/metrics ${METRIC}`, () => {
  it('0 for a new enabled service on the node of its task, one series per node for a service on two nodes, none for a service without backup.enable', async () => {
    const twoNodes = await Promise.all((await runningTasks(TWO)).map((t) => hostnameOf(t.NodeID)));
    expect(twoNodes.sort()).toEqual(['su-worker-1', 'su-worker-2']);
    expect(Object.fromEntries(await lastSuccess())).toEqual({
      [`${NEW} ${VOL.new} su-worker-2`]: 0,
      [`${TWO} ${VOL.two} su-worker-1`]: 0,
      [`${TWO} ${VOL.two} su-worker-2`]: 0,
    });
  });

  it('after a backup: the time the job ended, for that service only', async () => {
    const r = await s.api('POST', '/jobs', { type: 'backup', service: NEW, waitRes: true });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const ended = Date.parse(r.json.finishedAt) / 1000;
    expect(ended).toBeGreaterThan(Date.now() / 1000 - 600);
    expect(Object.fromEntries(await lastSuccess())).toEqual({
      [`${NEW} ${VOL.new} su-worker-2`]: ended,
      [`${TWO} ${VOL.two} su-worker-1`]: 0,
      [`${TWO} ${VOL.two} su-worker-2`]: 0,
    });
    // and it survives a restart: read from the job rows
    await s.stop();
    s = await startServer(serverEnv(s3Env(PREFIX, `s3-secret-${id}`)), { dbPath: s.dbPath, port: s.port });
    expect((await lastSuccess()).get(`${NEW} ${VOL.new} su-worker-2`)).toBe(ended);
  });
});
