import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { describe, it, expect } from 'vitest';
import { migrate, openDb } from '../../src/db/index.js';
import { getJob, insertJob } from '../../src/db/jobs.js';
import { archivesOfChild, recordedCounts, succeededChildServices } from '../../src/db/backups.js';
import { fire } from '../../src/scheduler.js';
import { SubmitBody } from '../../src/api/schemas.js';
import { tokenLabelOf } from '../../src/api/auth.js';
import { archivesOf, encryptionOf, headArchive, newestArchive, parseFor, parseForVolume } from '../../src/backups/archives.js';
import { decryptRefusal } from '../../src/jobs/restore/fetch.js';
import { fakeDocker, makeDeps, tempDbPath, testConfig } from '../helpers/engine-fixture.js';

const MIGRATIONS = fileURLToPath(new URL('../../migrations/', import.meta.url));

describe('migration 0007: restore, drill and migrate job types', () => {
  it('rebuilds the jobs table keeping every row and what refers to it; the new types are accepted, unknown ones still refused', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mig-'));
    for (const f of fs.readdirSync(MIGRATIONS).filter((f) => f < '0006')) fs.copyFileSync(path.join(MIGRATIONS, f), path.join(dir, f));
    const db = new Database(path.join(dir, 'db.sqlite'));
    db.pragma('foreign_keys = ON');
    migrate(db, dir);
    const job = insertJob(db, { type: 'backup', targetKind: 'service', target: 'web', source: 'api', locks: ['backup_service_web'], params: { a: 1 } });
    db.prepare("INSERT INTO steps (job_id, idx, name, state) VALUES (?, 0, 'resolve', 'done')").run(job.id);
    db.prepare('INSERT INTO locks (name, job_id, acquired_at) VALUES (?, ?, 1)').run('backup_service_web', job.id);
    expect(() => insertJob(db, { type: 'drill' as 'backup', targetKind: 'service', target: 'web', source: 'api', locks: [] })).toThrow(/CHECK/);

    fs.copyFileSync(path.join(MIGRATIONS, '0007_restore_types.sql'), path.join(dir, '0007_restore_types.sql'));
    expect(migrate(db, dir)).toEqual([7]);
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(getJob(db, job.id)).toMatchObject({ type: 'backup', target: 'web', params: { a: 1 }, locks: ['backup_service_web'] });
    expect(db.prepare('SELECT COUNT(*) FROM steps WHERE job_id = ?').pluck().get(job.id)).toBe(1);
    expect(db.prepare('SELECT COUNT(*) FROM locks WHERE job_id = ?').pluck().get(job.id)).toBe(1);
    for (const type of ['restore', 'drill', 'migrate'] as const) {
      expect(insertJob(db, { type, targetKind: 'service', target: 'web', source: 'api', locks: [] }).type).toBe(type);
    }
    expect(() => insertJob(db, { type: 'nope' as 'backup', targetKind: 'service', target: 'web', source: 'api', locks: [] })).toThrow(/CHECK/);
    // still cascades: deleting the job deletes its steps; ids go on after the highest one
    const next = insertJob(db, { type: 'drill', targetKind: 'all', target: null, source: 'api', locks: [] });
    expect(next.id).toBeGreaterThan(job.id + 3);
    db.prepare('DELETE FROM locks').run();
    db.prepare('DELETE FROM jobs WHERE id = ?').run(job.id);
    expect(db.prepare('SELECT COUNT(*) FROM steps').pluck().get()).toBe(0);
    db.close();
  });
});

describe('cron drill', () => {
  it('SWARM_UTILS_IS_CRON_DRILL: the run ends with a drill all of what its backup made, after the backup', () => {
    const S3 = { SWARM_UTILS_S3_DOMAIN: 's3.example.com', SWARM_UTILS_S3_BUCKET_NAME: 'b', SWARM_UTILS_S3_ACCESS_KEY: 'k', SWARM_UTILS_S3_SECRET_ACCESS_KEY: 's' };
    const deps = makeDeps(openDb(tempDbPath()), fakeDocker(), testConfig({ SWARM_UTILS_IS_CRON_BACKUP: 'true', SWARM_UTILS_IS_CRON_DRILL: 'true', ...S3 }));
    const run = fire(deps, '2026-01-01T03:00:00.000Z')!;
    const drill = getJob(deps.db, run.drill!)!;
    expect([drill.type, drill.targetKind, drill.source, drill.dependsOn, drill.params]).toEqual(['drill', 'all', 'cron', run.backup, { fromJob: run.backup, common: true }]);
    // the archives of the succeeded children of that backup are what the drill children take
    const db = deps.db;
    const child = (service: string, state: 'succeeded' | 'failed') => {
      const j = insertJob(db, { type: 'backup', targetKind: 'service', target: service, source: 'parent', parentId: run.backup!, locks: [] });
      db.prepare('UPDATE jobs SET state = ?, result = ? WHERE id = ?').run(state, JSON.stringify({ archives: [{ node: 'w1', volume: `${service}-v`, key: `p/w1_${service}-v_2026-01-01T03-00-01Z.tar.gz`, size: 9, files: 3, bytes: 7 }] }), j.id);
    };
    child('web', 'succeeded');
    child('db', 'failed');
    expect(succeededChildServices(db, run.backup!)).toEqual(['web']);
    expect(archivesOfChild(db, run.backup!, 'web')).toEqual([{ node: 'w1', volume: 'web-v', key: 'p/w1_web-v_2026-01-01T03-00-01Z.tar.gz', size: 9, files: 3, bytes: 7 }]);
    expect(recordedCounts(db, 'p/w1_web-v_2026-01-01T03-00-01Z.tar.gz')).toEqual({ files: 3, bytes: 7 });
    expect(recordedCounts(db, 'p/w1_db-v_2026-01-01T03-00-01Z.tar.gz')).toBeNull();
  });

  it('needs the cron backup', () => {
    expect(() => testConfig({ SWARM_UTILS_IS_CRON_DRILL: 'true' })).toThrow(/SWARM_UTILS_IS_CRON_BACKUP/);
  });
});

describe('archive names', () => {
  const store = (keys: string[]) => ({
    list: async (prefix: string) => keys.filter((k) => k.startsWith(prefix)).map((key) => ({ key, size: 1 })),
    head: async (key: string) => (keys.includes(key) ? { key, size: 5 } : null),
  });
  const keys = [
    'p/w1_data_2026-01-01T00-00-00Z.tar.gz',
    'p/w1_data_2026-01-02T00-00-00Z.tar.gz.gpg',
    'p/w1_data_other_2026-01-03T00-00-00Z.tar.gz',
    'p/w2_data_2026-01-01T12-00-00Z.tar.gz',
    'p/w1_data_notes.txt',
    'p/nested/w1_data_2026-01-05T00-00-00Z.tar.gz',
    'w1_data_2026-01-06T00-00-00Z.tar.gz',
  ];

  it('parses only our names, under the prefix, with their encryption', () => {
    expect(parseFor('p', keys[1]!, 'w1', 'data')).toMatchObject({ node: 'w1', volume: 'data', stamp: '2026-01-02T00-00-00Z', encrypted: 'gpg' });
    expect(parseFor('p', keys[2]!, 'w1', 'data')).toBeNull();
    expect(parseForVolume('p', keys[2]!, 'data_other')).toMatchObject({ node: 'w1' });
    expect(parseForVolume('p', keys[4]!, 'data')).toBeNull();
    expect(parseForVolume('p', keys[5]!, 'data')).toBeNull();
    expect(parseForVolume('p', keys[6]!, 'data')).toBeNull();
    expect(parseForVolume('', keys[6]!, 'data')).toMatchObject({ node: 'w1' });
    expect(encryptionOf('x.tar.gz.age')).toBe('age');
  });

  it('the newest of a volume from a node; from the only node that has some; several nodes need a choice', async () => {
    expect((await newestArchive(store(keys), 'p', 'data', { preferred: 'w1' })).key).toBe(keys[1]);
    await expect(newestArchive(store(keys), 'p', 'data', { preferred: 'w3', strict: true })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(newestArchive(store(keys.filter((k) => !k.includes('w2_'))), 'p', 'data', { preferred: 'w3' })).resolves.toMatchObject({ key: keys[1] });
    await expect(newestArchive(store(keys), 'p', 'data', {})).rejects.toMatchObject({ code: 'VALIDATION' });
    await expect(newestArchive(store(keys), 'p', 'nothing', {})).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await archivesOf(store(keys), 'p', 'data')).map((a) => a.key)).toEqual([keys[1], keys[3], keys[0]]);
  });

  it('verify finds an archive under its real name: as named, or with .gpg or .age appended', async () => {
    expect(await headArchive(store(keys), 'p/w1_data_2026-01-02T00-00-00Z.tar.gz')).toEqual({ key: keys[1], size: 5 });
    expect(await headArchive(store(keys), 'p/w9_data_2026-01-02T00-00-00Z.tar.gz')).toBeNull();
  });

  it('an encrypted archive without its passphrase configured is refused, naming the variable', () => {
    expect(decryptRefusal({ backupEnv: {} }, 'a.tar.gz')).toBeNull();
    expect(decryptRefusal({ backupEnv: {} }, 'a.tar.gz.gpg')?.message).toContain('SWARM_UTILS_BACKUP_ENV_GPG_PASSPHRASE');
    expect(decryptRefusal({ backupEnv: {} }, 'a.tar.gz.age')?.code).toBe('UNSUPPORTED');
    expect(decryptRefusal({ backupEnv: { AGE_PASSPHRASE: 'x' } }, 'a.tar.gz.age')).toBeNull();
  });
});

describe('bodies and rights', () => {
  const issues = (b: unknown) => {
    const r = SubmitBody.safeParse(b);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  it('restore, drill and migrate take their own fields, field by field', () => {
    expect(issues({ type: 'restore', service: 'web', node: 'w1', volume: 'data', key: 'p/w1_data_x.tar.gz', safetyBackup: false })).toEqual([]);
    expect(issues({ type: 'drill', all: true })).toEqual([]);
    expect(issues({ type: 'migrate', service: 'web', to: 'w2' })).toEqual([]);
    expect(issues({ type: 'restore', all: true })[0]).toMatch(/^all: restore takes one service/);
    expect(issues({ type: 'migrate', service: 'web' })).toEqual(['to: migrate needs to: the node to move the service to']);
    expect(issues({ type: 'backup', service: 'web', safetyBackup: true })).toEqual(['safetyBackup: safetyBackup is a parameter of restore jobs only']);
    expect(issues({ type: 'drill', service: 'web', node: 'w1' }).some((i) => i.startsWith('node: node is a target of clean'))).toBe(true);
    expect(issues({ type: 'restore', service: 'web', volume: '../etc' })[0]).toMatch(/^volume:/);
    expect(issues({ type: 'restore', service: 'web', key: 'a\nb' })[0]).toMatch(/^key:/);
    expect(issues({ type: 'drill', all: true, key: 'k' })[0]).toMatch(/^key:/);
  });
  it('the restore token grants restores and drills; no label grants migrate', () => {
    expect(tokenLabelOf('restore')).toBe('swarm-utils.restore.token');
    expect(tokenLabelOf('drill')).toBe('swarm-utils.restore.token');
    expect(tokenLabelOf('backup')).toBe('swarm-utils.backup.token');
    expect(tokenLabelOf('migrate')).toBeNull();
  });
});

const hasGpg = spawnSync('gpg', ['--version']).status === 0;

describe('the stand-in backup image encrypts the way offen does', () => {
  // its encryption functions, run here on a tarball and decrypted by the real tool
  const STAND_IN = fileURLToPath(new URL('../swarm/images/backup/backup.mjs', import.meta.url));
  async function standIn() {
    const src = fs.readFileSync(STAND_IN, 'utf8');
    const code = src.slice(src.indexOf('// ---- encryption'), src.indexOf('// offen: at most one method'));
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'enc-')), 'enc.mjs');
    fs.writeFileSync(file, `import { createCipheriv, createHash, createHmac, hkdfSync, randomBytes, scryptSync } from 'node:crypto';\n${code}\nexport { gpgSymmetric, ageScrypt };`);
    return (await import(file)) as { gpgSymmetric: (p: Buffer, pass: string, name: string) => Buffer };
  }
  it.runIf(hasGpg)('GPG_PASSPHRASE: gpg decrypts it with the passphrase to the same bytes', async () => {
    const { gpgSymmetric } = await standIn();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpg-'));
    const plain = Buffer.concat([Buffer.from('backup/'), fs.readFileSync(STAND_IN)]);
    fs.writeFileSync(path.join(dir, 'x.tar.gz.gpg'), gpgSymmetric(plain, 'pass phrase', 'x.tar.gz'));
    fs.writeFileSync(path.join(dir, 'pw'), 'pass phrase\n');
    fs.mkdirSync(path.join(dir, 'home'), { mode: 0o700 });
    const out = execFileSync('gpg', ['--homedir', path.join(dir, 'home'), '--batch', '--quiet', '--pinentry-mode', 'loopback', '--passphrase-file', path.join(dir, 'pw'), '--decrypt', path.join(dir, 'x.tar.gz.gpg')]);
    expect(out.equals(plain)).toBe(true);
    fs.writeFileSync(path.join(dir, 'pw'), 'wrong\n');
    expect(spawnSync('gpg', ['--homedir', path.join(dir, 'home'), '--batch', '--quiet', '--pinentry-mode', 'loopback', '--passphrase-file', path.join(dir, 'pw'), '--decrypt', path.join(dir, 'x.tar.gz.gpg')]).status).not.toBe(0);
  });
});
