// Staging of stop=true backups against the fake Docker port: which pairs are staged, what is committed before
// a helper can act, what happens when a copy may be torn, fails or has no room, and how the staging volumes
// are removed at the job's end and by the sweep. The real helpers are proven on the swarm (test/cluster/backup-stage).
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect } from 'vitest';
import { openDb, type Db } from '../../src/db/index.js';
import { insertJob, markRunning, finishJob, type JobRow } from '../../src/db/jobs.js';
import { orphanStaging, pendingStagingOf, recordStaging } from '../../src/db/staging.js';
import { insertSteps, stepsOf } from '../../src/db/steps.js';
import { Worker } from '../../src/engine/worker.js';
import type { StepContext } from '../../src/engine/types.js';
import { AppError } from '../../src/errors.js';
import { backupKind } from '../../src/jobs/backup.js';
import { archive } from '../../src/jobs/backup/archive.js';
import { archiveStaged, stageThenLaunch } from '../../src/jobs/backup/archive-staged.js';
import { stopJobHelpers } from '../../src/engine/helpers.js';
import { toHelperRef } from '../../src/swarm/docker-map.js';
import { stagingOn, type Resolved } from '../../src/jobs/backup/resolve.js';
import { prepare, stage } from '../../src/jobs/backup/stage.js';
import { parseStagingOutput, stagingHelperSpec, stagingVolume } from '../../src/jobs/backup/staging-helper.js';
import { parseUnstageOutput, sweepStaging, unstage } from '../../src/jobs/backup/unstage.js';
import { verify } from '../../src/jobs/backup/verify.js';
import { helperServiceSpec } from '../../src/swarm/docker-map.js';
import type { HelperResult, HelperSpec, ServiceInfo, TaskInfo } from '../../src/swarm/port.js';
import { captureLog, fakeDocker, makeDeps, noHolds, tempDbPath, testConfig } from '../helpers/engine-fixture.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const env = {
  SWARM_UTILS_S3_DOMAIN: 's3.local:9000',
  SWARM_UTILS_S3_BUCKET_NAME: 'b',
  SWARM_UTILS_S3_ACCESS_KEY: 'AKID',
  SWARM_UTILS_S3_SECRET_ACCESS_KEY: 'the-s3-secret',
};

const resolved: Resolved = {
  serviceId: 'svc1',
  service: 'web',
  stop: true,
  stage: true,
  tasks: [
    { id: 't1', nodeId: 'n1', node: 'w1', containerId: 'c1' },
    { id: 't2', nodeId: 'n2', node: 'w2', containerId: 'c2' },
  ],
  volumes: ['data', 'logs'],
  stamp: 's',
  pairs: [
    { index: 0, nodeId: 'n1', node: 'w1', volume: 'data', filename: 'f0', key: 'k0' },
    { index: 1, nodeId: 'n1', node: 'w1', volume: 'logs', filename: 'f1', key: 'k1' },
    { index: 2, nodeId: 'n2', node: 'w2', volume: 'data', filename: 'f2', key: 'k2' },
  ],
};

const svc: ServiceInfo = {
  id: 'svc1', name: 'web', version: 3, labels: {}, mode: 'replicated', replicas: 2, image: 'app:v1', forceUpdate: 0,
  updateStatus: null, createdAt: '', updatedAt: '', spec: {},
};
const task = (id: string, nodeId: string, containerId: string | null): TaskInfo => ({
  id, serviceId: 'svc1', nodeId, containerId, state: 'shutdown', desiredState: 'shutdown', error: null, message: null,
  exitCode: null, image: '', serviceVersion: null, createdAt: '', updatedAt: '',
});

/** what a staging helper prints for its pairs: `copy` pairs staged with a count, the others without room */
function helperOutput(pairs: number[], copy: (i: number) => boolean): string {
  const lines = pairs.map((i) => (copy(i) ? `swarm-utils-stage pair=${i} room=yes needs 10 KiB, 900 KiB free` : `swarm-utils-stage pair=${i} room=no needs 5000 KiB + 10 KiB kept free, 900 KiB free`));
  lines.push('swarm-utils-stage ready', 'swarm-utils-stage stopped');
  for (const i of pairs.filter(copy)) lines.push(`swarm-utils-count files=${i + 3} bytes=${(i + 1) * 1000}`, `swarm-utils-stage pair=${i} staged`);
  return lines.join('\n') + '\n';
}

/** the pairs a staging helper copies: those of the node of the pair it is named after */
function pairsOf(helper: string): number[] {
  const first = resolved.pairs[Number(/-stage-(\d+)/.exec(helper)![1])]!;
  return resolved.pairs.filter((p) => p.nodeId === first.nodeId).map((p) => p.index);
}

function harness(details: Record<string, Record<string, unknown>>, over: { db?: Db; env?: Record<string, string> } = {}) {
  const db = over.db ?? openDb(tempDbPath());
  const job = insertJob(db, { type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: [], requesterAdmin: true, requester: 'x' });
  const created: HelperSpec[] = [];
  const order: string[] = [];
  const docker = fakeDocker({
    getService: async () => svc,
    listTasks: async (id) => (id === 'svc1' ? [task('t1', 'n1', 'c1'), task('t2', 'n2', 'c2')] : [{ ...task('h', 'n1', 'x'), state: 'running' }]),
    createHelper: async (spec) => {
      order.push(`create ${spec.name}`);
      created.push(spec);
      return { id: spec.name, name: spec.name, jobId: spec.jobId };
    },
    serviceLogs: async (id) => helperOutput(pairsOf(id), () => true).split('\n'),
    waitHelper: async (ref) => ({ exitCode: 0, state: 'complete', error: null, output: helperOutput(pairsOf(ref.name), () => true) }),
    removeService: async (id) => void order.push(`remove ${id}`),
  });
  const log = captureLog();
  const deps = makeDeps(db, docker, testConfig({ ...env, ...over.env }), log.logger);
  function ctx(step: string): StepContext {
    return {
      job: { ...job, id: job.id } as JobRow,
      deps,
      log: log.logger,
      signal: new AbortController().signal,
      detail: details[step] ?? {},
      reentered: false,
      save: (d) => {
        order.push(`save ${step}`);
        details[step] = structuredClone(d);
      },
      detailOf: ((ref: string | { name: string }) => (typeof ref === 'string' ? (details[ref] ?? {}) : (details[ref.name] ?? null))) as StepContext['detailOf'],
      setResult: (r) => void (details.result = r as Record<string, unknown>),
      holds: noHolds,
    };
  }
  return { db, job, docker, created, order, ctx, log, details };
}

describe('staging on or off', () => {
  it('on by default; SWARM_UTILS_BACKUP_STAGE=false turns it off; the service label decides for its service', () => {
    expect(stagingOn({}, { backupStage: true })).toBe(true);
    expect(stagingOn({}, { backupStage: false })).toBe(false);
    expect(stagingOn({ 'swarm-utils.backup.stage': 'false' }, { backupStage: true })).toBe(false);
    expect(stagingOn({ 'swarm-utils.backup.stage': 'true' }, { backupStage: false })).toBe(true);
    expect(stagingOn({ 'swarm-utils.backup.stage': 'maybe' }, { backupStage: true })).toBe(true);
  });

  it('nothing is staged without stop, nor with staging off: prepare, stage and archive-staged skip, archive takes every pair', async () => {
    for (const r of [{ ...resolved, stop: false, stage: false }, { ...resolved, stage: false }, { ...resolved, stage: undefined }]) {
      const h = harness({ resolve: r });
      expect(await prepare(h.ctx('prepare') as never)).toMatchObject({ skipped: true });
      expect(await stage(h.ctx('stage') as never)).toMatchObject({ skipped: true });
      expect(await archiveStaged(h.ctx('archive-staged') as never)).toMatchObject({ skipped: true });
      h.docker.waitHelper = async () => ({ exitCode: 0, state: 'complete', error: null, output: 'backup: finished successfully' });
      await archive(h.ctx('archive') as never);
      expect(h.created.map((c) => [c.name.replace(/.*-/, ''), c.mounts[0]!.source]).sort()).toEqual([['0', 'data'], ['1', 'logs'], ['2', 'data']]);
    }
  });
});

describe('prepare', () => {
  it('commits the tasks it trusts and every staging volume before any helper exists; one helper per node, mounting its pairs', async () => {
    const h = harness({ resolve: resolved });
    const out = await prepare(h.ctx('prepare') as never);
    expect(h.order[0]).toBe('save prepare');
    expect(h.order[1]).toMatch(/^create /);
    expect(h.details.prepare).toEqual({ knownTasks: ['t1', 't2'], inPlace: {} });
    expect(pendingStagingOf(h.db, h.job.id).map((r) => [r.node, r.volume])).toEqual([
      ['w1', stagingVolume('test01', h.job.id, 0)],
      ['w1', stagingVolume('test01', h.job.id, 1)],
      ['w2', stagingVolume('test01', h.job.id, 2)],
    ]);
    expect(h.created.map((c) => [c.name, c.nodeId, c.env.SWARM_UTILS_PAIRS, c.env.SWARM_UTILS_CONTAINERS])).toEqual([
      [`swarm-utils-test01-${h.job.id}-stage-0`, 'n1', '0 1', 'c1'],
      [`swarm-utils-test01-${h.job.id}-stage-2`, 'n2', '2', 'c2'],
    ]);
    // the volume read-only, its staging volume labelled (the removal finds it by the label), the node's socket
    const spec = h.created[0]!;
    expect(spec.image).toBe(testConfig().dockerCliImage);
    expect(spec.mounts).toContainEqual({ type: 'volume', source: 'data', target: '/swarm-utils/from/0', readOnly: true });
    const staging = spec.mounts.find((m) => m.target === '/swarm-utils/to/0')!;
    expect(staging).toMatchObject({ type: 'volume', source: stagingVolume('test01', h.job.id, 0), readOnly: false });
    expect((helperServiceSpec(spec) as any).TaskTemplate.ContainerSpec.Mounts).toContainEqual({
      Type: 'volume',
      Source: stagingVolume('test01', h.job.id, 0),
      Target: '/swarm-utils/to/0',
      ReadOnly: false,
      VolumeOptions: { Labels: { 'swarm-utils.staging': `test01.${h.job.id}`, 'swarm-utils.staging.origin': 'stage' } },
    });
    expect(out?.output).toContain('[w1] staging helper ready');
  });

  it('a pair without room is archived in place, and says why; a node with nothing to copy keeps no helper', async () => {
    const h = harness({ resolve: resolved });
    h.docker.serviceLogs = async (id) => helperOutput(id.endsWith('-stage-0') ? [0, 1] : [2], (i) => i === 1).split('\n');
    const stopped: string[] = [];
    h.docker.stopHelper = async (ref) => void stopped.push(ref.name);
    const out = await prepare(h.ctx('prepare') as never);
    expect(h.details.prepare!.inPlace).toEqual({
      0: expect.stringContaining('no room on w1 for a copy: needs 5000 KiB'),
      2: expect.stringContaining('no room on w2'),
    });
    expect(out?.output).toContain('data: archived in place while stopped: no room on w1');
    expect(stopped).toEqual([`swarm-utils-test01-${h.job.id}-stage-2`]);
  });
});

describe('stage', () => {
  function staged(h: ReturnType<typeof harness>) {
    h.details.prepare = { knownTasks: ['t1', 't2'], inPlace: {} };
    h.docker.findHelper = async (name) => ({ id: name, name, jobId: h.job.id });
    return h;
  }

  it('records each copy with its counts; archive-staged archives the staging volumes, verify lists files and bytes', async () => {
    const h = staged(harness({ resolve: resolved }));
    const out = await stage(h.ctx('stage') as never);
    expect(out?.output).toContain('3 of 3 volume(s) staged');
    expect(h.details.stage!.pairs).toEqual({
      0: { staged: true, node: 'w1', volume: 'data', stagingVolume: stagingVolume('test01', h.job.id, 0), files: 3, bytes: 1000 },
      1: { staged: true, node: 'w1', volume: 'logs', stagingVolume: stagingVolume('test01', h.job.id, 1), files: 4, bytes: 2000 },
      2: { staged: true, node: 'w2', volume: 'data', stagingVolume: stagingVolume('test01', h.job.id, 2), files: 5, bytes: 3000 },
    });
    expect(h.order.filter((o) => o.startsWith('remove')).sort()).toEqual([`remove swarm-utils-test01-${h.job.id}-stage-0`, `remove swarm-utils-test01-${h.job.id}-stage-2`]);

    h.created.length = 0;
    h.docker.waitHelper = async () => ({ exitCode: 0, state: 'complete', error: null, output: 'backup: finished successfully' });
    expect(await archive(h.ctx('archive') as never)).toMatchObject({ skipped: true });
    await archiveStaged(h.ctx('archive-staged') as never);
    // each node's staging removal starts first, to wait there for that node's archives
    const removals = h.created.filter((c) => c.name.includes('-unstage-'));
    expect(removals.map((c) => [c.name, c.nodeId, c.env.SWARM_UTILS_AFTER, c.env.SWARM_UTILS_VOLUMES])).toEqual([
      [`swarm-utils-test01-${h.job.id}-unstage-n1`, 'n1', `swarm-utils-test01-${h.job.id}-archive-0 swarm-utils-test01-${h.job.id}-archive-1`, [0, 1].map((i) => stagingVolume('test01', h.job.id, i)).join(' ')],
      [`swarm-utils-test01-${h.job.id}-unstage-n2`, 'n2', `swarm-utils-test01-${h.job.id}-archive-2`, stagingVolume('test01', h.job.id, 2)],
    ]);
    expect(h.order.indexOf(`create ${removals[1]!.name}`)).toBeLessThan(h.order.indexOf(`create swarm-utils-test01-${h.job.id}-archive-0`));
    h.created.splice(0, h.created.length, ...h.created.filter((c) => c.name.includes('-archive-')));
    h.created.sort((a, b) => a.name.localeCompare(b.name));
    expect(h.created.map((c) => [c.name, c.mounts])).toEqual(
      [0, 1, 2].map((i) => [
        `swarm-utils-test01-${h.job.id}-archive-${i}`,
        [{
          type: 'volume',
          source: stagingVolume('test01', h.job.id, i),
          target: `/backup/${resolved.pairs[i]!.volume}`,
          readOnly: true,
          // Docker gives these labels only to a volume it has to make: the copy was gone
          labels: { 'swarm-utils.staging': `test01.${h.job.id}`, 'swarm-utils.staging.origin': 'archive' },
        }],
      ]),
    );
    expect(h.created.map((c) => c.env.BACKUP_FILENAME)).toEqual(['f0', 'f1', 'f2']);
  });

  it('the end of stage launches each node’s staging removal and the job’s secrets, no upload; a give-back stops every helper of the job but the removals', async () => {
    const h = staged(harness({ resolve: resolved }));
    await stageThenLaunch(h.ctx('stage') as never);
    expect(h.created.map((c) => c.name)).toEqual([`swarm-utils-test01-${h.job.id}-unstage-n1`, `swarm-utils-test01-${h.job.id}-unstage-n2`]);
    expect(h.docker.secrets.map((x) => x.name).sort()).toEqual([`swarm-utils-test01-${h.job.id}-AWS_ACCESS_KEY_ID`, `swarm-utils-test01-${h.job.id}-AWS_SECRET_ACCESS_KEY`]);
    const removal = h.created[0]!;
    expect(removal.worksOnCopy).toBe(true);
    const raw = helperServiceSpec(removal) as { Name: string; Labels: Record<string, string> };
    expect(raw.Labels).toEqual({ 'swarm-utils.helper': String(h.job.id), 'swarm-utils.helper.works-on': 'copy' });
    expect(toHelperRef({ ID: 'x', Spec: raw } as never)).toEqual({ id: 'x', name: raw.Name, jobId: h.job.id, worksOnCopy: true });
    // what the runner does before `start`: the removal goes on, a helper that reads the volume does not
    h.docker.listHelpers = async () => [
      { id: 'r', name: removal.name, jobId: h.job.id, worksOnCopy: true },
      { id: 's', name: `swarm-utils-test01-${h.job.id}-stage-0`, jobId: h.job.id },
    ];
    const stopped: string[] = [];
    h.docker.stopHelper = async (ref) => void stopped.push(ref.id);
    await stopJobHelpers(h.ctx('start').deps, h.job.id, undefined, { sparingCopies: true });
    expect(stopped).toEqual(['s']);
    await stopJobHelpers(h.ctx('start').deps, h.job.id);
    expect(stopped).toEqual(['s', 'r', 's']);
  });

  it('a task of the service that started on a node after the helpers were launched: that node is copied again', async () => {
    const h = staged(harness({ resolve: resolved }));
    h.docker.listTasks = async () => [task('t1', 'n1', 'c1'), task('t2', 'n2', 'c2'), task('t3', 'n1', 'c3')];
    await stage(h.ctx('stage') as never);
    expect(h.created.map((c) => c.name)).toEqual([`swarm-utils-test01-${h.job.id}-stage-0-again`]);
    expect(h.log.text()).toContain('copying again');
  });

  it('a failed copy, a helper that never ran or a wait that failed: those volumes are archived in place, with the reason', async () => {
    const h = staged(harness({ resolve: resolved }));
    const said = 'swarm-utils-stage ready\nswarm-utils-stage stopped\nswarm-utils-stage pair=0 failed cp: write error: No space left on device\n';
    h.docker.serviceLogs = async (id) => {
      if (id.endsWith('-stage-2')) throw new AppError('DOCKER_ERROR', 'the manager went away');
      return said.split('\n');
    };
    // the helper of w1 ended without a word on pair 1: its whole output is read from its end
    const listTasks = h.docker.listTasks;
    h.docker.listTasks = async (id) => (id === 'svc1' ? listTasks(id) : [{ ...task('h', 'n1', 'x'), state: 'complete' }]);
    h.docker.waitHelper = async (): Promise<HelperResult> => ({ exitCode: 0, state: 'complete', error: null, output: said });
    const out = await stage(h.ctx('stage') as never);
    expect(h.details.stage!.pairs).toMatchObject({
      0: { staged: false, reason: 'the copy failed: cp: write error: No space left on device' },
      1: { staged: false, reason: expect.stringContaining('without a copy') },
      2: { staged: false, reason: 'staging failed: the manager went away' },
    });
    expect(out?.output).toContain('0 of 3 volume(s) staged');
    h.created.length = 0;
    h.docker.waitHelper = async () => ({ exitCode: 0, state: 'complete', error: null, output: 'backup: finished successfully' });
    await archive(h.ctx('archive') as never);
    expect(h.created.map((c) => [c.name.replace(/.*-/, ''), c.mounts[0]!.source]).sort()).toEqual([['0', 'data'], ['1', 'logs'], ['2', 'data']]);
  });

  it('pairs prepare found no room for are not waited for; a resumed stage keeps the copies it recorded', async () => {
    const h = staged(harness({ resolve: resolved }));
    h.details.prepare = { knownTasks: ['t1', 't2'], inPlace: { 2: 'no room on w2 for a copy: …' } };
    h.details.stage = { pairs: { 0: { staged: true, node: 'w1', volume: 'data', stagingVolume: 'v0', files: 1, bytes: 2 } } };
    await stage(h.ctx('stage') as never);
    expect(h.details.stage!.pairs).toMatchObject({
      0: { staged: true, files: 1, bytes: 2 },
      1: { staged: true, files: 4 },
      2: { staged: false, reason: 'no room on w2 for a copy: …' },
    });
  });

  it('the staging helper output is read pair by pair', () => {
    const r = parseStagingOutput(helperOutput([0, 1], (i) => i === 0) + 'not a count\nswarm-utils-stage pair=5 staged\n');
    expect(r.ready).toBe(true);
    expect(r.stopped).toBe(true);
    expect(r.pairs.get(0)).toEqual({ kind: 'staged', count: { files: 3, bytes: 1000 } });
    expect(r.pairs.get(1)).toEqual({ kind: 'room', ok: false, text: 'needs 5000 KiB + 10 KiB kept free, 900 KiB free' });
    expect(r.pairs.get(5)).toEqual({ kind: 'failed', text: 'the copy was not counted' });
    expect(parseStagingOutput('swarm-utils-stage pair=0 room=yes x').ready).toBe(false);
  });

  it('values reach the staging script only through its environment', () => {
    const spec = stagingHelperSpec({ instance: 'i', jobId: 1, nodeId: 'n', image: 'cli', serviceId: '$(rm -rf /)', containers: ['`x`'], pairs: resolved.pairs.slice(0, 1) });
    expect(spec.command![2]).not.toContain('rm -rf /)');
    expect(spec.command![2]).not.toContain('`x`');
    expect(spec.env).toMatchObject({ SWARM_UTILS_SERVICE_ID: '$(rm -rf /)', SWARM_UTILS_CONTAINERS: '`x`' });
  });
});

describe('verify', () => {
  it('the result lists {node, volume, key, size} per archive, with files and bytes for the staged ones', async () => {
    // a bucket that answers every HEAD with 100 bytes
    const heads: string[] = [];
    const bucket = http.createServer((req, res) => {
      heads.push(`${req.method} ${req.url}`);
      res.writeHead(200, { 'content-length': '100', etag: '"x"' }).end();
    });
    await new Promise<void>((r) => bucket.listen(0, '127.0.0.1', r));
    try {
      const port = (bucket.address() as AddressInfo).port;
      const h = harness({ resolve: resolved }, { env: { SWARM_UTILS_S3_DOMAIN: `127.0.0.1:${port}`, SWARM_UTILS_S3_HTTPS: 'false' } });
      h.details.stage = {
        pairs: {
          0: { staged: true, node: 'w1', volume: 'data', stagingVolume: 'v0', files: 7, bytes: 70 },
          1: { staged: false, node: 'w1', volume: 'logs', reason: 'no room' },
        },
      };
      await verify(h.ctx('verify') as never);
      expect(heads).toEqual(['HEAD /b/k0', 'HEAD /b/k1', 'HEAD /b/k2']);
      expect(h.details.result).toEqual({
        archives: [
          { node: 'w1', volume: 'data', key: 'k0', size: 100, files: 7, bytes: 70 },
          { node: 'w1', volume: 'logs', key: 'k1', size: 100 },
          { node: 'w2', volume: 'data', key: 'k2', size: 100 },
        ],
      });
    } finally {
      bucket.close();
    }
  });
});

describe('unstage and the sweep', () => {
  const removal = (lines: string[], exitCode = 0): HelperResult => ({ exitCode, state: exitCode === 0 ? 'complete' : 'failed', error: null, output: lines.join('\n') });
  /** removal helpers that say `said(name)`: in their log (read while they run) and at their end */
  function removals(h: { docker: ReturnType<typeof fakeDocker> }, said: (name: string) => HelperResult, seen: string[] = []) {
    h.docker.waitHelper = async (ref) => said(ref.name);
    h.docker.serviceLogs = async (id) => {
      seen.push(id);
      return said(id).output.split('\n');
    };
  }

  it('removes the job’s staging volumes node by node; what a node could not remove stays for the sweep', async () => {
    const h = harness({ resolve: resolved });
    for (const p of resolved.pairs) recordStaging(h.db, { jobId: h.job.id, nodeId: p.nodeId, node: p.node, volume: stagingVolume('test01', h.job.id, p.index) });
    const [v0, v1, v2] = [0, 1, 2].map((i) => stagingVolume('test01', h.job.id, i));
    removals(h, (name) =>
      name.endsWith('-n1')
        ? removal([`swarm-utils-unstage removed ${v0} origin=stage`, `swarm-utils-unstage gone ${v1}`])
        : removal([`swarm-utils-unstage kept ${v2} Error response from daemon: remove ${v2}: volume is in use`], 1),
    );
    const out = await unstage(h.ctx('unstage') as never);
    expect(h.created.map((c) => [c.name, c.nodeId, c.env.SWARM_UTILS_VOLUMES, c.env.SWARM_UTILS_LABEL, c.env.SWARM_UTILS_AFTER])).toEqual([
      [`swarm-utils-test01-${h.job.id}-unstage-now-n1`, 'n1', `${v0} ${v1}`, `swarm-utils.staging=test01.${h.job.id}`, undefined],
      [`swarm-utils-test01-${h.job.id}-unstage-now-n2`, 'n2', v2, `swarm-utils.staging=test01.${h.job.id}`, undefined],
    ]);
    expect(out?.output).toContain('[w1] 2 staging volume(s) removed');
    expect(out?.output).toContain('[w2] 0 of 1 staging volume(s) removed; the others are removed by the sweep');
    expect(pendingStagingOf(h.db, h.job.id).map((r) => r.volume)).toEqual([v2]);
    // the job is over: the sweep finds the volume, and this time the node removes it
    finishJob(h.db, h.job.id, 'succeeded');
    expect(orphanStaging(h.db).map((r) => r.volume)).toEqual([v2]);
    removals(h, () => removal([`swarm-utils-unstage removed ${v2} origin=stage`]));
    await sweepStaging(makeDeps(h.db, h.docker, testConfig(env)), new AbortController().signal);
    expect(orphanStaging(h.db)).toEqual([]);
  });

  it('the removal started with the archives is awaited when they all succeeded, and stopped (then done by the step) when not', async () => {
    for (const succeeded of [true, false]) {
      const h = harness({ resolve: { ...resolved, pairs: resolved.pairs.slice(0, 1) } });
      const v0 = stagingVolume('test01', h.job.id, 0);
      recordStaging(h.db, { jobId: h.job.id, nodeId: 'n1', node: 'w1', volume: v0 });
      h.details.stage = { pairs: { 0: { staged: true, node: 'w1', volume: 'data', stagingVolume: v0, files: 1, bytes: 1 } } };
      h.details['archive-staged'] = succeeded ? { done: { 0: { node: 'w1', volume: 'data', key: 'k0', finishedAt: 'x' } } } : { done: {} };
      const early = `swarm-utils-test01-${h.job.id}-unstage-n1`;
      h.docker.findHelper = async (name) => (name === early ? { id: name, name, jobId: h.job.id } : null);
      const stopped: string[] = [];
      h.docker.stopHelper = async (ref) => void stopped.push(ref.name);
      const waited: string[] = [];
      removals(h, () => removal([`swarm-utils-unstage removed ${v0} origin=stage`]), waited);
      await unstage(h.ctx('unstage') as never);
      expect(pendingStagingOf(h.db, h.job.id)).toEqual([]);
      if (succeeded) {
        expect(waited).toEqual([early]);
        expect(h.created).toEqual([]);
      } else {
        expect(stopped).toEqual([early]);
        expect(waited).toEqual([`swarm-utils-test01-${h.job.id}-unstage-now-n1`]);
      }
    }
  });

  it('a staging volume Docker made at the archive’s mount (the copy was gone) fails the job with the archive’s key', async () => {
    const h = harness({ resolve: resolved });
    const v0 = stagingVolume('test01', h.job.id, 0);
    recordStaging(h.db, { jobId: h.job.id, nodeId: 'n1', node: 'w1', volume: v0 });
    removals(h, () => removal([`swarm-utils-unstage removed ${v0} origin=archive`]));
    const err = await unstage(h.ctx('unstage') as never).catch((e: unknown) => e as AppError);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).message).toContain('k0');
    expect(pendingStagingOf(h.db, h.job.id)).toEqual([]);
  });

  it('the sweep leaves the staging volumes of running jobs to them; no row, no helper', async () => {
    const db = openDb(tempDbPath());
    const running = insertJob(db, { type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: [], requesterAdmin: true, requester: 'x' });
    markRunning(db, running.id, 'boot');
    recordStaging(db, { jobId: running.id, nodeId: 'n1', node: 'w1', volume: 'v-running' });
    recordStaging(db, { jobId: 9999, nodeId: 'n1', node: 'w1', volume: 'v-deleted-job' });
    expect(orphanStaging(db).map((r) => r.volume)).toEqual(['v-deleted-job']);
    const docker = fakeDocker();
    await sweepStaging(makeDeps(openDb(tempDbPath()), docker, testConfig(env)), new AbortController().signal); // no rows: no Docker call
    expect(parseUnstageOutput('swarm-utils-unstage removed a origin=\nswarm-utils-unstage gone b\nswarm-utils-unstage kept c busy\nnoise')).toEqual({
      removed: ['a', 'b'],
      emptied: [],
      kept: ['c'],
    });
  });
});

describe('jobs recorded before staging', () => {
  it('resume: their `restore` row runs as `start`, no staging step runs, and unstage is added and skips', async () => {
    const db = openDb(tempDbPath());
    const job = insertJob(db, { type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: ['backup_service_web'], requesterAdmin: true, requester: 'x' });
    markRunning(db, job.id, 'dead-process');
    const old = { ...resolved, stage: undefined } as Record<string, unknown>;
    delete old.stage;
    insertSteps(db, job.id, [{ name: 'resolve' }, { name: 'exec' }, { name: 'stop' }, { name: 'archive' }, { name: 'restore', always: true }, { name: 'verify' }]);
    db.prepare("UPDATE steps SET state = 'done', detail = ? WHERE job_id = ? AND name = 'resolve'").run(JSON.stringify(old), job.id);
    db.prepare("UPDATE steps SET state = 'done' WHERE job_id = ? AND name IN ('exec', 'stop', 'archive')").run(job.id);
    db.prepare("UPDATE steps SET detail = ? WHERE job_id = ? AND name = 'stop'").run(JSON.stringify({ replicas: 2 }), job.id);
    const replicas = { n: 0 };
    const docker = fakeDocker({
      getService: async () => ({ ...svc, replicas: replicas.n }),
      listTasks: async () => Array.from({ length: replicas.n }, (_, i) => ({ ...task(`t${i}`, 'n1', `c${i}`), state: 'running', desiredState: 'running' })),
      updateService: async (_id, _v, spec) => void (replicas.n = (spec as any).Mode.Replicated.Replicas),
    });
    const worker = new Worker(makeDeps(db, docker, testConfig(env)), { backup: backupKind }, { concurrency: 1, lockTimeoutMs: 1000, retentionDays: 30 });
    await worker.start();
    await worker.waitFor(job.id, 10_000);
    await worker.stop();
    expect(replicas.n).toBe(2);
    expect(stepsOf(db, job.id).map((s) => [s.name, s.state])).toEqual([
      ['resolve', 'done'],
      ['exec', 'done'],
      ['stop', 'done'],
      ['archive', 'done'],
      ['restore', 'done'],
      ['verify', 'failed'], // nothing listens at s3.local: what matters is that start ran and unstage followed
      ['unstage', 'skipped'],
    ]);
  });
});

describe('idle memory', () => {
  it('nothing that start-up imports loads the S3 client: a backup loads it when it first needs it', () => {
    const seen = new Set<string>();
    const offenders: string[] = [];
    const walk = (file: string, chain: string[]) => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = fs.readFileSync(file, 'utf8');
      // static imports only (`import … from`, `export … from`); `await import()` is the lazy way, and
      // `import type` is erased by the compiler
      for (const m of text.matchAll(/^(?:import|export)\s(?!type\s)[^;]*?from\s+'([^']+)'/gms)) {
        const spec = m[1]!;
        if (spec.startsWith('@aws-sdk/')) offenders.push([...chain, file, spec].map((f) => path.relative(ROOT, f)).join(' → '));
        if (!spec.startsWith('.')) continue;
        walk(path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')), [...chain, file]);
      }
    };
    walk(path.join(ROOT, 'src/main.ts'), []);
    expect(seen.size).toBeGreaterThan(30);
    expect(offenders).toEqual([]);
  });
});
