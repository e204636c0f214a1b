import { describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/index.js';
import type { JobRow } from '../../src/db/jobs.js';
import type { StepContext } from '../../src/engine/types.js';
import { keepSet, parseListing, planRemoval, pruneImages, refForms, untilMs, UNTIL_LABEL } from '../../src/jobs/clean-images.js';
import type { HelperSpec, NodeInfo, ServiceInfo } from '../../src/swarm/port.js';
import { captureLog, fakeDocker, makeDeps, noHolds, testConfig } from '../helpers/engine-fixture.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const id = (c: string) => `sha256:${c.repeat(64)}`;

const service = (name: string, image: string, previousImage: string | null = null): ServiceInfo => ({
  id: name, name, version: 1, labels: {}, mode: 'replicated', replicas: 1, image, previousImage,
  forceUpdate: 0, updateStatus: null, createdAt: '', updatedAt: '', spec: {},
});

describe('reference forms', () => {
  it.each([
    ['reg:5000/app:v1', ['reg:5000/app:v1']],
    [`reg:5000/app:v1@${D1}`, ['reg:5000/app:v1', `reg:5000/app@${D1}`]],
    [`reg:5000/app@${D1}`, [`reg:5000/app@${D1}`]],
    ['nginx', ['nginx:latest']],
    [`docker.io/library/nginx:1.27@${D2}`, ['nginx:1.27', `nginx@${D2}`]],
    ['docker.io/offen/docker-volume-backup:v2.48.2', ['offen/docker-volume-backup:v2.48.2']],
  ])('%s is reported by a daemon as %j', (ref, forms) => {
    expect(refForms(ref)).toEqual(forms);
  });
});

describe('keep set', () => {
  it("names each service's current and previous image and the helper images, with why", () => {
    const keep = keepSet(
      [service('web', `reg/app:v2@${D2}`, `reg/app:v1@${D1}`), service('db', 'postgres:16')],
      testConfig({ SWARM_UTILS_DOCKER_CLI_IMAGE_NAME: 'docker:27-cli' }),
    );
    expect(keep.get(`reg/app@${D1}`)).toEqual(['previous image of service web (for a rollback)']);
    expect(keep.get(`reg/app@${D2}`)).toEqual(['image of service web']);
    expect(keep.get('postgres:16')).toEqual(['image of service db']);
    expect(keep.get('docker:27-cli')?.[0]).toContain('helper image');
    expect(keep.get('offen/docker-volume-backup:v2.48.2')?.[0]).toContain('SWARM_UTILS_BACKUP_IMAGE');
  });
});

describe('clean.image.until', () => {
  const node = (v?: string) => ({ hostname: 'w1', labels: (v === undefined ? {} : { [UNTIL_LABEL]: v }) as Record<string, string> });
  it('reads Go durations of hours, minutes and seconds', () => {
    expect(untilMs(node())).toBeNull();
    expect(untilMs(node('168h'))).toBe(168 * 3600_000);
    expect(untilMs(node(' 36h30m '))).toBe((36 * 60 + 30) * 60_000);
    expect(untilMs(node('90s'))).toBe(90_000);
  });
  it.each(['7d', '1 week', '-1h', 'h'])('refuses %j with VALIDATION naming the label', (v) => {
    expect(() => untilMs(node(v))).toThrow(expect.objectContaining({ code: 'VALIDATION', message: expect.stringContaining(UNTIL_LABEL) }));
  });
});

describe('which images go', () => {
  const now = new Date('2026-06-01T00:00:00Z');
  const listing = parseListing(
    [
      `USED ${id('a')}`,
      `IMAGE ${id('a')} 2026-05-31T00:00:00.123456789Z 1000 reg/app:run`,
      `IMAGE ${id('b')} 2026-01-01T00:00:00Z 2000 reg/app@${D1}`,
      `IMAGE ${id('c')} 2026-01-01T00:00:00Z 3000 reg/app:v2 reg/app@${D2}`,
      `IMAGE ${id('d')} 2026-01-01T00:00:00Z 4000 reg/litter:x reg/litter@${id('9')}`,
      `IMAGE ${id('e')} 2026-05-31T12:00:00Z 5000 reg/fresh:x`,
      `IMAGE ${id('f')} 2026-01-01T00:00:00Z 6000`,
      `IMAGE ${id('0')} 2026-01-01T00:00:00Z 7000 docker:27-cli`,
      'END 7',
    ].join('\n'),
  );
  const keep = keepSet([service('web', `reg/app:v2@${D2}`, `reg/app:v1@${D1}`)], testConfig({ SWARM_UTILS_DOCKER_CLI_IMAGE_NAME: 'docker:27-cli' }));

  it('parses the listing and sees that it is complete', () => {
    expect(listing.complete).toBe(true);
    expect(listing.images).toHaveLength(7);
    expect(listing.images[3]).toEqual({ id: id('d'), created: '2026-01-01T00:00:00Z', size: 4000, refs: ['reg/litter:x', `reg/litter@${id('9')}`] });
    expect(parseListing(listing.images.map((i) => `IMAGE ${i.id} ${i.created} ${i.size}`).slice(1).join('\n') + '\nEND 7').complete).toBe(false);
  });

  it('keeps used, named and helper images; removes unrelated and dangling ones', () => {
    const plan = planRemoval(listing, keep, null, now);
    expect(plan.remove.map((i) => i.id)).toEqual([id('d'), id('e'), id('f')]);
    expect(Object.fromEntries(plan.kept.map((k) => [k.image, k.reason]))).toEqual({
      'reg/app:run': 'used by a container',
      [`reg/app@${D1}`]: 'previous image of service web (for a rollback)',
      'reg/app:v2': 'image of service web',
      'docker:27-cli': 'helper image (SWARM_UTILS_DOCKER_CLI_IMAGE_NAME)',
    });
  });

  it('with clean.image.until, keeps unused images created more recently', () => {
    const plan = planRemoval(listing, keep, { ms: 168 * 3600_000, label: '168h' }, now);
    expect(plan.remove.map((i) => i.id)).toEqual([id('d'), id('f')]);
    expect(plan.kept.find((k) => k.id === id('e'))?.reason).toBe(`created less than 168h ago (${UNTIL_LABEL})`);
  });
});

describe('the image-prune step (fake Docker)', () => {
  it('lists on the node, removes only what the manager chose, passed as data, and reports kept and removed', async () => {
    const created: HelperSpec[] = [];
    const listOutput = [`IMAGE ${id('c')} 2026-01-01T00:00:00Z 3000 reg/app:v2`, `IMAGE ${id('d')} 2026-01-01T00:00:00Z 4000 reg/litter:x`, `IMAGE ${id('e')} 2026-01-01T00:00:00Z 10 reg/x:$(reboot)`, 'END 3'].join('\n');
    const docker = fakeDocker({
      listServices: async () => [service('web', 'reg/app:v2')],
      createHelper: async (spec) => {
        created.push(spec);
        return { id: spec.name, name: spec.name, jobId: spec.jobId };
      },
      waitHelper: async (ref) =>
        ref.name.includes('image-list')
          ? { exitCode: 0, state: 'complete', error: null, output: listOutput }
          : { exitCode: 0, state: 'complete', error: null, output: `REMOVED ${id('d')}\nFAILED ${id('e')} conflict: in use\n` },
      removeService: async () => undefined,
    });
    const log = captureLog();
    const ctx = {
      job: { id: 3, target: 'w1' } as JobRow,
      deps: makeDeps({} as Db, docker, testConfig(), log.logger),
      log: log.logger,
      signal: new AbortController().signal,
      detail: {},
      reentered: false,
      save: () => undefined,
      detailOf: () => ({}),
      setResult: () => undefined,
      holds: noHolds,
    } satisfies StepContext;
    const node: NodeInfo = { id: 'nodeid1234567890', hostname: 'w1', role: 'worker', availability: 'active', state: 'ready', labels: {}, addr: null };
    const out = await pruneImages(ctx, node, 60_000);
    expect(created.map((c) => c.name)).toEqual(['swarm-utils-test01-3-image-list-nodeid123456', 'swarm-utils-test01-3-image-remove-nodeid123456']);
    const [list, remove] = created;
    expect(list!.env).toEqual({});
    // the script is fixed; the images are data, and a reference that is not plain text is left out
    expect(remove!.command![2]).not.toContain('litter');
    expect(remove!.env).toEqual({ SWARM_UTILS_IMAGES: `${id('d')} reg/litter:x\n${id('e')}` });
    expect(out.detail).toMatchObject({
      node: 'w1',
      reclaimedBytes: 4000,
      removed: [{ image: 'reg/litter:x', id: id('d'), size: 4000 }],
      kept: [
        { image: 'reg/app:v2', reason: 'image of service web' },
        { image: 'reg/x:$(reboot)', reason: 'docker refused to remove it: conflict: in use' },
      ],
    });
    expect(out.output).toContain('removed 1 image(s)');
    expect(out.output).toContain('reg/app:v2: image of service web');
  });
});
