import { describe, expect, it } from 'vitest';
import { OFFEN_DEFAULT_FILENAME, offenPattern, parseArchiveKey, parseOffenKey } from '../../src/backups/names.js';
import { pageOf } from '../../src/api/backups-service.js';

const PATTERNS = [OFFEN_DEFAULT_FILENAME, 'nightly-%Y%m%d.{{.Extension}}', 'db-%a.tar.gz'];

describe("offen's archive names", () => {
  it('reads the default BACKUP_FILENAME with each compression and encryption, its time in UTC', () => {
    for (const ext of ['tar.gz', 'tar.zst', 'tar']) {
      expect(parseOffenKey(`p/backup-2026-01-02T03-04-05.${ext}`, 'p', PATTERNS)).toEqual({ time: Date.UTC(2026, 0, 2, 3, 4, 5), encryption: null });
    }
    expect(parseOffenKey('p/backup-2026-01-02T03-04-05.tar.gz.gpg', 'p', PATTERNS)?.encryption).toBe('gpg');
    expect(parseOffenKey('p/backup-2026-01-02T03-04-05.tar.zst.age', 'p', PATTERNS)?.encryption).toBe('age');
  });

  it('reads other BACKUP_FILENAME patterns; one without a date has no time of its own', () => {
    expect(parseOffenKey('nightly-20260102.tar.zst', '', PATTERNS)?.time).toBe(Date.UTC(2026, 0, 2));
    expect(parseOffenKey('db-Mon.tar.gz', '', PATTERNS)).toEqual({ time: null, encryption: null });
    expect(offenPattern('a.b-%%-%Y.tar').re.test('a.b-%-2026.tar')).toBe(true);
    expect(offenPattern('a.b-%Y.tar').re.test('aXb-2026.tar')).toBe(false);
  });

  it('refuses what is not one: another directory, another name, a date that does not exist, our own names', () => {
    expect(parseOffenKey('p/x/backup-2026-01-02T03-04-05.tar.gz', 'p', PATTERNS)).toBeNull();
    expect(parseOffenKey('q/backup-2026-01-02T03-04-05.tar.gz', 'p', PATTERNS)).toBeNull();
    expect(parseOffenKey('p/backup-2026-01-02T03-04-05.zip', 'p', PATTERNS)).toBeNull();
    expect(parseOffenKey('p/backup-2026-02-30T03-04-05.tar.gz', 'p', PATTERNS)?.time).toBeNull();
    const ours = 'p/node-1_vol_2026-01-02T03-04-05Z.tar.gz';
    expect(parseOffenKey(ours, 'p', PATTERNS)).toBeNull();
    expect(parseArchiveKey(ours, 'p')).not.toBeNull();
  });

  it('pages through a listing whose cursor is an offen key', () => {
    const archives = [
      { key: 'p/backup-2026-01-02T03-04-05.tar.gz', time: 3 },
      { key: 'p/n_v_2026-01-02T03-04-04Z.tar.gz', time: 2 },
      { key: 'p/backup-2026-01-02T03-04-03.tar.zst', time: 1 },
    ];
    const first = pageOf(archives, 1);
    expect(first).toEqual({ page: [archives[0]], next: archives[0]!.key });
    expect(pageOf(archives, 5, first.next!).page).toEqual([archives[1], archives[2]]);
  });
});
