/**
 * No secret in a helper's spec: the S3 credentials and secret backup variables reach the backup helper
 * as Docker secrets of the job, read by the (stand-in) offen through <NAME>_FILE, and the secrets are
 * gone when the job ends, also after a kill -9 of the server. The S3 endpoint is a pausable proxy in
 * front of the test S3 server, so the helper can be held in its upload while it is inspected.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import Database from 'better-sqlite3';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { REGISTRY_AUTH, S3, dockerFor } from '../helpers/testbed.js';
import { deleteS3Prefix, instanceOf, removeHelperContainers, removeVolumes, s3Client as s3 } from '../helpers/leftovers.js';
import { startServer, waitJob, type RunningServer } from '../helpers/server.js';
import { createAppService, hostnameOf, manager, removeServices, serverEnv, uid } from '../helpers/cluster.js';
import { tcpProxy, type TcpProxy } from '../helpers/proxies.js';

const id = uid();
const PREFIX = `bks-${id}`;
// s3rver checks the access key id (S3RVER) but not the signature: a unique secret lets the test prove it never shows
const SECRET = `s3-secret-${id}-never-in-a-spec`;
const ACCESS = S3.accessKey;
const PASSPHRASE = `gpg passphrase ${id} never in a spec`;
const SVC = `bks-svc-${id}`;
const VOL = `bks-data-${id}`;
const W1 = 'su-worker-1';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bks-'));
const passphraseFile = path.join(tmp, 'gpg');
// written with a newline, like `echo … > file`: swarm-utils takes it off, the helper gets the value exactly
fs.writeFileSync(passphraseFile, `${PASSPHRASE}\n`);


let proxy: TcpProxy;
let env: Record<string, string>;
let s: RunningServer;
const instances = new Set<string>();

beforeAll(async () => {
  const [host, port] = S3.endpoint.split(':');
  proxy = await tcpProxy(host!, { host: host!, port: Number(port) });
  env = serverEnv({
    SWARM_UTILS_S3_DOMAIN: `${host}:${proxy.port}`,
    SWARM_UTILS_S3_HTTPS: 'false',
    SWARM_UTILS_S3_BUCKET_NAME: S3.bucket,
    SWARM_UTILS_S3_ACCESS_KEY: ACCESS,
    SWARM_UTILS_S3_SECRET_ACCESS_KEY: SECRET,
    SWARM_UTILS_S3_PATH: PREFIX,
    SWARM_UTILS_BACKUP_ENV_GPG_PASSPHRASE_FILE: passphraseFile,
    SWARM_UTILS_BACKUP_ENV_BACKUP_RETENTION_DAYS: '7',
  });
  s = await startServer(env);
  instances.add(instanceOf(s));
  await createAppService(SVC, {
    constraints: [`node.hostname==${W1}`],
    mounts: [{ Type: 'volume', Source: VOL, Target: '/data' }],
    labels: { 'swarm-utils.backup.enable': 'true' },
  });
});

afterAll(async () => {
  proxy?.resume();
  await s?.stop();
  await removeServices(SVC);
  await removeLeftovers();
  await proxy?.close();
  await deleteS3Prefix(PREFIX).catch(() => undefined);
  fs.rmSync(tmp, { recursive: true, force: true });
});

// a test that failed midway leaves its job held by the paused proxy: let it end, so the next test
// does not meet its lock
afterEach(async () => {
  proxy?.resume();
  const list = await s.api('GET', '/jobs').catch(() => null);
  const items: any[] = Array.isArray(list?.json) ? list!.json : (list?.json?.items ?? list?.json?.jobs ?? []);
  for (const j of items) if (j.state === 'queued' || j.state === 'running') await waitJob(s, j.id).catch(() => undefined);
});

describe('backup helpers hold no secret in their spec', () => {
  it('while the helper runs and after: neither `docker service inspect` nor `docker inspect` on the worker shows the S3 secret or the passphrase; the job’s secrets are gone at its end', async () => {
    proxy.pause();
    const start = await s.api('POST', '/jobs', { type: 'backup', service: SVC });
    expect(start.status, JSON.stringify(start.json)).toBe(202);
    const jobId = start.json.id;
    const { helper, task } = await runningHelper(jobId);

    // the helper's service spec: file paths and secret references only
    const spec = await manager.getService(helper.ID).inspect();
    expectClean(spec);
    const containerSpec = spec.Spec.TaskTemplate.ContainerSpec;
    expect(containerSpec.Env).toEqual(
      expect.arrayContaining([
        'AWS_SECRET_ACCESS_KEY_FILE=/run/secrets/AWS_SECRET_ACCESS_KEY',
        'AWS_ACCESS_KEY_ID_FILE=/run/secrets/AWS_ACCESS_KEY_ID',
        'GPG_PASSPHRASE_FILE=/run/secrets/GPG_PASSPHRASE',
        'BACKUP_RETENTION_DAYS=7',
      ]),
    );
    expect(containerSpec.Secrets.map((x: any) => x.File.Name).sort()).toEqual(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'GPG_PASSPHRASE']);
    // its container on the worker
    const worker = dockerFor(await hostnameOf(task.NodeID));
    const container = worker.getContainer(task.Status.ContainerStatus.ContainerID);
    expectClean(await container.inspect());
    // the helper read the passphrase through its file, exactly (without the newline of swarm-utils' file)
    // (the task is running before its first line is written: wait for the line, not for a fixed time)
    const line = `GPG_PASSPHRASE is set (${PASSPHRASE.length} characters)`;
    let logs = '';
    await until(async () => (logs = await helperLogs(worker, task.Status.ContainerStatus.ContainerID)).includes(line), 30_000, 'the helper logs its passphrase check').catch(() => undefined);
    expect(logs).toContain(line);
    // the job's secrets exist while it runs, labelled with it
    expect((await secretsOf(jobId)).sort()).toEqual([
      `swarm-utils-${instanceOf(s)}-${jobId}-AWS_ACCESS_KEY_ID`,
      `swarm-utils-${instanceOf(s)}-${jobId}-AWS_SECRET_ACCESS_KEY`,
      `swarm-utils-${instanceOf(s)}-${jobId}-GPG_PASSPHRASE`,
    ]);

    // held in its upload by the paused proxy
    expect((await s.api('GET', `/jobs/${jobId}`)).json.state).toBe('running');
    proxy.resume();
    const job = await waitJob(s, jobId);
    expect(job.state, JSON.stringify(job)).toBe('succeeded');
    // the S3 credentials arrived through their files too: the upload happened
    expect(job.steps.find((x: any) => x.name === 'archive').output).toContain('1 archive(s) uploaded');
    expect(await listKeys()).toContain(job.result.archives[0].key);
    // after: no secret of the job left, and the stopped container (Docker 20.10 keeps it) shows none either
    expect(await secretsOf(jobId)).toEqual([]);
    const after = await container.inspect().catch((e: any) => (e.statusCode === 404 ? null : Promise.reject(e)));
    if (after) expectClean(after);
    expectClean(job);
    expect(s.output()).not.toContain(SECRET);
    expect(s.output()).not.toContain(PASSPHRASE);
  });

  it('kill -9 while the helper runs: the secrets stay for it, the restarted process reattaches and removes them at the end', async () => {
    proxy.pause();
    const start = await s.api('POST', '/jobs', { type: 'backup', service: SVC });
    const jobId = start.json.id;
    const { helper } = await runningHelper(jobId);
    await s.kill9();
    expect(await secretsOf(jobId)).toHaveLength(3);
    expectClean(await manager.getService(helper.ID).inspect());
    s = await startServer(env, { dbPath: s.dbPath, port: s.port });
    proxy.resume();
    const job = await waitJob(s, jobId);
    expect(job.state, JSON.stringify(job)).toBe('succeeded');
    expect(s.output()).toContain('step re-entered after restart');
    // the same helper, reattached: still one archive, and no secret left
    expect(job.result.archives).toHaveLength(1);
    await until(async () => (await secretsOf(jobId)).length === 0, 15_000, 'secrets removed');
    await until(async () => (await helpersOf(jobId)).length === 0, 15_000, 'helper removed');
    expectClean(job);
  });

  it('kill -9, and the job ended meanwhile (the process died between its end and its sweep): the start-up sweep removes helper and secrets', async () => {
    proxy.pause();
    const start = await s.api('POST', '/jobs', { type: 'backup', service: SVC });
    const jobId = start.json.id;
    await runningHelper(jobId);
    await s.kill9();
    const db = new Database(s.dbPath);
    db.prepare("UPDATE jobs SET state = 'failed', finished_at = ?, owner = NULL WHERE id = ?").run(Date.now(), jobId);
    db.prepare('DELETE FROM locks WHERE job_id = ?').run(jobId);
    db.close();
    expect(await secretsOf(jobId)).toHaveLength(3);
    s = await startServer(env, { dbPath: s.dbPath, port: s.port });
    proxy.resume();
    expect(await helpersOf(jobId)).toEqual([]);
    expect(await secretsOf(jobId)).toEqual([]);
    expect(s.output()).toContain('removing orphan Docker secret');
  });
});

/** waits until the job's archive helper has a running task; returns the service and the task */
async function runningHelper(jobId: number): Promise<{ helper: any; task: any }> {
  const end = Date.now() + 60_000;
  for (;;) {
    const [helper] = await helperServices(jobId);
    if (helper) {
      const tasks = await manager.listTasks({ filters: { service: [helper.ID] } });
      const task = tasks.find((t: any) => t.Status?.State === 'running' && t.Status?.ContainerStatus?.ContainerID);
      if (task) return { helper, task };
    }
    if (Date.now() > end) throw new Error(`no running helper for job ${jobId}: ${JSON.stringify((await s.api('GET', `/jobs/${jobId}`)).json)}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function helperServices(jobId: number): Promise<any[]> {
  const list = await manager.listServices({ filters: { label: [`swarm-utils.helper=${jobId}`] } });
  return list.filter((x: any) => x.Spec.Name.startsWith(`swarm-utils-${instanceOf(s)}-${jobId}-`));
}
const helpersOf = async (jobId: number) => (await helperServices(jobId)).map((x: any) => x.Spec.Name as string);

async function secretsOf(jobId: number): Promise<string[]> {
  const list = await manager.listSecrets({ filters: { label: [`swarm-utils.helper=${jobId}`] } });
  return list.map((x: any) => x.Spec.Name as string).filter((n) => n.startsWith(`swarm-utils-${instanceOf(s)}-${jobId}-`));
}

function expectClean(x: unknown): void {
  const text = JSON.stringify(x);
  expect(text).not.toContain(SECRET);
  expect(text).not.toContain(ACCESS);
  expect(text).not.toContain(PASSPHRASE);
  expect(text).not.toContain(Buffer.from(SECRET).toString('base64'));
  // the helper image is pulled with the registry's credentials: they are not in the spec either
  expect(text).not.toContain(REGISTRY_AUTH.password);
}

async function helperLogs(d: ReturnType<typeof dockerFor>, containerId: string): Promise<string> {
  const buf = (await d.getContainer(containerId).logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
  return buf.toString('utf8');
}

async function until(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function listKeys(): Promise<string[]> {
  const out = await s3.send(new ListObjectsV2Command({ Bucket: S3.bucket, Prefix: `${PREFIX}/` }));
  return (out.Contents ?? []).map((o) => o.Key!);
}

/** the stopped helper containers Docker 20.10 leaves behind, our secrets if a test failed midway, the volume */
async function removeLeftovers(): Promise<void> {
  for (const inst of instances) {
    for (const sec of await manager.listSecrets({ filters: { name: [`swarm-utils-${inst}-`] } })) {
      await manager.getSecret(sec.ID).remove().catch(() => undefined);
    }
  }
  await removeHelperContainers(instances);
  await removeVolumes([VOL]);
}
