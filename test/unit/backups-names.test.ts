import { describe, expect, it } from 'vitest';
import { type ParsedArchive, archiveDir, expiredArchives, newestFirst, parseArchiveKey, parseArchiveName, plainKey } from '../../src/backups/names.js';
import { matches, pageOf } from '../../src/api/backups-service.js';
import { retentionDaysOf } from '../../src/jobs/backup/retention.js';
import { isAppError } from '../../src/errors.js';
import { loadConfig } from '../../src/config.js';

const T = (iso: string) => Date.parse(iso);

describe('archive names', () => {
  it('parses <node>_<volume>_<stamp>.tar.gz, the time in UTC, and the .gpg / .age suffixes', () => {
    expect(parseArchiveName('w1_data_2026-05-04T02-30-00Z.tar.gz')).toEqual({
      node: 'w1',
      volume: 'data',
      stamp: '2026-05-04T02-30-00Z',
      time: T('2026-05-04T02:30:00Z'),
      encryption: null,
    });
    expect(parseArchiveName('w1_data_2026-05-04T02-30-00Z.tar.gz.gpg')?.encryption).toBe('gpg');
    expect(parseArchiveName('w1_data_2026-05-04T02-30-00Z.tar.gz.age')?.encryption).toBe('age');
  });

  it('a volume with underscores (stack volumes) stays whole; a known hostname with an underscore wins', () => {
    expect(parseArchiveName('db-1.example.com_shop_pgdump_2026-05-04T02-30-00Z.tar.gz')).toMatchObject({ node: 'db-1.example.com', volume: 'shop_pgdump' });
    expect(parseArchiveName('odd_host_shop_data_2026-05-04T02-30-00Z.tar.gz', ['odd_host', 'odd'])).toMatchObject({ node: 'odd_host', volume: 'shop_data' });
    // unknown to the swarm: the first underscore ends the node
    expect(parseArchiveName('odd_host_shop_data_2026-05-04T02-30-00Z.tar.gz')).toMatchObject({ node: 'odd', volume: 'host_shop_data' });
  });

  it.each([
    ['notes.txt'],
    ['w1_data_2026-05-04T02-30-00Z.tar'],
    ['w1_data_2026-05-04T02-30-00Z.tar.gz.bak'],
    ['w1_data_2026-05-04T02-30-00Z.zip'],
    ['w1_data_2026-05-04T02:30:00Z.tar.gz'],
    ['w1_data_2026-05-04.tar.gz'],
    ['data_2026-05-04T02-30-00Z.tar.gz'],
    ['_data_2026-05-04T02-30-00Z.tar.gz'],
    ['w1__2026-05-04T02-30-00Z.tar.gz'],
    ['w1_da ta_2026-05-04T02-30-00Z.tar.gz'],
    ['w1_data_2026-02-30T02-30-00Z.tar.gz'],
    ['w1_data_2026-05-04T24-00-00Z.tar.gz'],
    ['w1_data_2026-13-04T02-30-00Z.tar.gz'],
    ['w1_data_2026-05-04T02-30-00Z.tar.gz.gpg.age'],
  ])('%s is not one of ours', (name) => {
    expect(parseArchiveName(name)).toBeNull();
  });

  it('keys: directly under SWARM_UTILS_S3_PATH only (not deeper, not elsewhere), however the path is written', () => {
    expect(archiveDir('/prod/')).toBe('prod/');
    expect(archiveDir('')).toBe('');
    expect(parseArchiveKey('prod/w1_data_2026-05-04T02-30-00Z.tar.gz', '/prod/')).toMatchObject({ key: 'prod/w1_data_2026-05-04T02-30-00Z.tar.gz', node: 'w1' });
    expect(parseArchiveKey('w1_data_2026-05-04T02-30-00Z.tar.gz', '')).toMatchObject({ node: 'w1', volume: 'data' });
    expect(parseArchiveKey('prod/old/w1_data_2026-05-04T02-30-00Z.tar.gz', 'prod')).toBeNull();
    expect(parseArchiveKey('prod/.swarm-utils/state.db.gz', 'prod')).toBeNull();
    expect(parseArchiveKey('staging/w1_data_2026-05-04T02-30-00Z.tar.gz', 'prod')).toBeNull();
    expect(parseArchiveKey('prod/w1_data_2026-05-04T02-30-00Z.tar.gz', '')).toBeNull();
  });

  it('plainKey drops the encryption suffix only', () => {
    expect(plainKey('p/w1_d_2026-05-04T02-30-00Z.tar.gz.gpg')).toBe('p/w1_d_2026-05-04T02-30-00Z.tar.gz');
    expect(plainKey('p/w1_d_2026-05-04T02-30-00Z.tar.gz')).toBe('p/w1_d_2026-05-04T02-30-00Z.tar.gz');
  });
});

const archive = (node: string, volume: string, stamp: string, suffix = ''): ParsedArchive => {
  const key = `p/${node}_${volume}_${stamp}.tar.gz${suffix}`;
  return parseArchiveKey(key, 'p')!;
};

describe('retention: which archives expire', () => {
  const old1 = archive('w1', 'data', '2026-01-01T00-00-00Z');
  const old2 = archive('w1', 'data', '2026-01-02T00-00-00Z', '.gpg');
  const recent = archive('w1', 'data', '2026-03-01T00-00-00Z');
  const newest = archive('w1', 'data', '2026-03-05T00-00-00Z');
  const otherVolume = archive('w1', 'data_old', '2026-01-01T00-00-00Z');
  const otherNode = archive('w2', 'data', '2026-01-01T00-00-00Z');
  const all = [old1, old2, recent, newest, otherVolume, otherNode];
  const pair = { node: 'w1', volume: 'data' };

  it('older than the cutoff, of that node and volume only, newest first', () => {
    expect(expiredArchives(all, pair, T('2026-02-01T00:00:00Z')).map((a) => a.key)).toEqual([old2.key, old1.key]);
  });

  it('never the newest, even when every archive is past the cutoff', () => {
    expect(expiredArchives(all, pair, T('2027-01-01T00:00:00Z')).map((a) => a.key)).toEqual([recent.key, old2.key, old1.key]);
    expect(expiredArchives([newest], pair, T('2027-01-01T00:00:00Z'))).toEqual([]);
  });

  it('never the newest second: two archives of the same second are both kept', () => {
    const twin = parseArchiveKey(`${newest.key}.age`, 'p')!;
    expect(expiredArchives([newest, twin, old1], pair, T('2027-01-01T00:00:00Z')).map((a) => a.key)).toEqual([old1.key]);
  });

  it('never an archive of the job itself, under either spelling', () => {
    expect(expiredArchives(all, pair, T('2027-01-01T00:00:00Z'), new Set([recent.key, plainKey(old2.key)])).map((a) => a.key)).toEqual([old1.key]);
  });

  it('nothing for a pair with no archive', () => {
    expect(expiredArchives(all, { node: 'w9', volume: 'data' }, T('2027-01-01T00:00:00Z'))).toEqual([]);
  });
});

describe('retention: days from the label, else the configuration', () => {
  const config = (v?: string) => {
    const r = loadConfig(v === undefined ? {} : { SWARM_UTILS_BACKUP_RETENTION_DAYS: v });
    if (!r.ok) throw new Error(r.problems.join('\n'));
    return r.config;
  };

  it('SWARM_UTILS_BACKUP_RETENTION_DAYS: days, fractions and _ separators; 0 or unset keeps everything', () => {
    expect(config().backupRetentionDays).toBeNull();
    expect(config('30').backupRetentionDays).toBe(30);
    expect(config('0.5').backupRetentionDays).toBe(0.5);
    expect(config('1_000').backupRetentionDays).toBe(1000);
    expect(config('0').backupRetentionDays).toBeNull();
  });

  it.each(['-1', '7d', 'forever', '1e3', '99999'])('SWARM_UTILS_BACKUP_RETENTION_DAYS=%s is refused at start-up, naming the variable', (v) => {
    const r = loadConfig({ SWARM_UTILS_BACKUP_RETENTION_DAYS: v });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems.join('\n')).toMatch(/^SWARM_UTILS_BACKUP_RETENTION_DAYS: must be a number of days/m);
  });

  it('the label overrides the configuration; 0 turns it off for that service', () => {
    const label = (v: string) => ({ 'swarm-utils.backup.retention-days': v });
    expect(retentionDaysOf({}, config('30'))).toBe(30);
    expect(retentionDaysOf(label('7'), config('30'))).toBe(7);
    expect(retentionDaysOf(label('7'), config())).toBe(7);
    expect(retentionDaysOf(label('0'), config('30'))).toBeNull();
    expect(retentionDaysOf(label(' '), config('30'))).toBe(30);
  });

  it('a malformed label is a VALIDATION error that names it and says nothing was deleted', () => {
    try {
      retentionDaysOf({ 'swarm-utils.backup.retention-days': 'two weeks' }, config('30'));
      expect.unreachable();
    } catch (e) {
      expect(isAppError(e) && e.code).toBe('VALIDATION');
      expect((e as Error).message).toContain('swarm-utils.backup.retention-days');
      expect((e as Error).message).toContain('"two weeks"');
      expect((e as Error).message).toContain('no archive was deleted');
    }
  });
});

describe('listing: order, pages and filters', () => {
  const a = archive('w1', 'data', '2026-01-01T00-00-00Z');
  const b1 = archive('w1', 'data', '2026-01-02T00-00-00Z');
  const b2 = archive('w1', 'logs', '2026-01-02T00-00-00Z');
  const b3 = archive('w2', 'data', '2026-01-02T00-00-00Z');
  const c = archive('w2', 'data', '2026-01-03T00-00-00Z', '.gpg');
  const all = [a, b3, c, b1, b2];

  it('newest first; archives of the same second in key order', () => {
    expect([...all].sort(newestFirst).map((x) => x.key)).toEqual([c.key, b1.key, b2.key, b3.key, a.key]);
  });

  it('pages follow `next` to the end, each archive once, whatever the page size', () => {
    for (const limit of [1, 2, 3, 5, 10]) {
      const seen: string[] = [];
      let before: string | undefined;
      for (let i = 0; i < 10; i++) {
        const { page, next } = pageOf(all, limit, before);
        seen.push(...page.map((x) => x.key));
        expect(page.length).toBeLessThanOrEqual(limit);
        if (next === null) break;
        expect(next).toBe(page.at(-1)!.key);
        before = next;
      }
      expect(seen).toEqual([c.key, b1.key, b2.key, b3.key, a.key]);
    }
    expect(pageOf(all, 5).next).toBeNull();
    expect(pageOf([], 5)).toEqual({ page: [], next: null });
  });

  it('a cursor whose archive was deleted meanwhile still pages on from its place', () => {
    const { next } = pageOf(all, 2);
    expect(next).toBe(b1.key);
    expect(pageOf(all.filter((x) => x !== b1), 2, next!).page.map((x) => x.key)).toEqual([b2.key, b3.key]);
  });

  it('filters: visible volumes, the service’s volumes, volume, node', () => {
    const none = { visible: null, service: null };
    expect(all.filter((x) => matches(x, none))).toHaveLength(5);
    expect(all.filter((x) => matches(x, { ...none, visible: new Set(['logs']) })).map((x) => x.key)).toEqual([b2.key]);
    expect(all.filter((x) => matches(x, { ...none, service: new Set(['data']) }))).toHaveLength(4);
    expect(all.filter((x) => matches(x, { visible: new Set(['logs']), service: new Set(['data']) }))).toEqual([]);
    expect(all.filter((x) => matches(x, { ...none, volume: 'data', node: 'w2' })).map((x) => x.key)).toEqual([b3.key, c.key]);
  });
});
