import { describe, it, expect } from 'vitest';
import { openDb } from '../../src/db/index.js';
import { insertJob } from '../../src/db/jobs.js';
import { stepsOf } from '../../src/db/steps.js';
import { Worker } from '../../src/engine/worker.js';
import { updateKind } from '../../src/jobs/update.js';
import type { DockerPort } from '../../src/swarm/port.js';
import { fakeService } from '../helpers/api-fixture.js';
import { fakeDocker, makeDeps, tempDbPath } from '../helpers/engine-fixture.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;

/** runs the resolve-image step of an update against a fake registry, and returns its detail */
async function resolveWith(image: string | undefined, current: string, registry: Record<string, string>) {
  const asked: string[] = [];
  const docker: Partial<DockerPort> = {
    getService: async () => fakeService('web', { 'swarm-utils.update.exec-pre': '' }, { image: current }),
    resolveDigest: async (ref) => {
      asked.push(ref);
      const d = registry[ref];
      if (!d) throw new Error(`no ${ref}`);
      return d;
    },
    // the update itself is not under test here: stop the job right after resolve-image
    updateService: async () => {
      throw new Error('stop here');
    },
  };
  const db = openDb(tempDbPath());
  const worker = new Worker(makeDeps(db, fakeDocker(docker)), { update: updateKind }, { concurrency: 1, lockTimeoutMs: 1000, retentionDays: 1 });
  await worker.start();
  const job = insertJob(db, { type: 'update', targetKind: 'service', target: 'web', source: 'api', locks: [], params: image ? { image } : {} });
  worker.wake();
  await worker.waitFor(job.id, 5000);
  await worker.stop(100);
  return { asked, detail: stepsOf(db, job.id).find((s) => s.name === 'resolve-image')!.detail };
}

describe('update: resolve-image', () => {
  it('resolves a given tag to its digest', async () => {
    const r = await resolveWith('reg.example.com/app:v2', `reg.example.com/app:v1@${D1}`, { 'reg.example.com/app:v2': D2 });
    expect(r.detail).toMatchObject({ newImage: `reg.example.com/app:v2@${D2}`, forced: false });
  });

  it('without an image resolves the current tag again; an unchanged digest is a forced restart', async () => {
    const r = await resolveWith(undefined, `reg.example.com/app:v1@${D1}`, { 'reg.example.com/app:v1': D1 });
    expect(r.asked).toEqual(['reg.example.com/app:v1']);
    expect(r.detail).toMatchObject({ newImage: `reg.example.com/app:v1@${D1}`, forced: true });
  });

  it('an image without a tag means latest', async () => {
    const r = await resolveWith('reg.example.com/app', `reg.example.com/app:v1@${D1}`, { 'reg.example.com/app:latest': D2 });
    expect(r.detail.newImage).toBe(`reg.example.com/app:latest@${D2}`);
  });

  it('a digest given in the request is honoured and checked in the registry', async () => {
    const r = await resolveWith(`reg.example.com/app:v2@${D1}`, `reg.example.com/app:v1@${D2}`, { [`reg.example.com/app@${D1}`]: D1 });
    expect(r.asked).toEqual([`reg.example.com/app@${D1}`]);
    expect(r.detail.newImage).toBe(`reg.example.com/app:v2@${D1}`);
  });
});
