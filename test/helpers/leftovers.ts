// Clean-up of what a cluster test's backups leave: the helpers' stopped containers, the volumes tasks and
// helpers created on each node, and the test's objects in the bucket.
import Database from 'better-sqlite3';
import { DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { S3, dockerFor } from './testbed.js';
import type { RunningServer } from './server.js';

const NODES = ['manager', 'su-worker-1', 'su-worker-2'];

export const s3Client = new S3Client({
  endpoint: S3.url,
  region: S3.region,
  forcePathStyle: true,
  credentials: { accessKeyId: S3.accessKey, secretAccessKey: S3.secretKey },
});

/** the installation id a server keeps in its database: it prefixes its helpers' names */
export function instanceOf(server: Pick<RunningServer, 'dbPath'>): string {
  const db = new Database(server.dbPath, { readonly: true });
  try {
    return db.prepare("SELECT value FROM meta WHERE key = 'instance'").pluck().get() as string;
  } finally {
    db.close();
  }
}

/** stopped containers of removed replicated-job helpers stay on Docker 20.10 (moby/moby#44312) */
export async function removeHelperContainers(instances: Iterable<string>): Promise<void> {
  for (const d of NODES.map((n) => dockerFor(n))) {
    for (const inst of instances) {
      for (const c of await d.listContainers({ all: true, filters: { name: [`swarm-utils-${inst}-`] } })) {
        await d.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
      }
    }
  }
}

/** our volumes on every node, after the containers that still mount them */
export async function removeVolumes(names: string[]): Promise<void> {
  const end = Date.now() + 30_000;
  for (const d of NODES.map((n) => dockerFor(n))) {
    for (const name of names) {
      for (;;) {
        for (const c of await d.listContainers({ all: true, filters: { volume: [name] } })) {
          await d.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
        }
        const err = await d.getVolume(name).remove().then(() => null, (e: any) => e);
        if (!err || err.statusCode === 404 || Date.now() > end) break;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }
}

export async function deleteS3Prefix(prefix: string): Promise<void> {
  const out = await s3Client.send(new ListObjectsV2Command({ Bucket: S3.bucket, Prefix: `${prefix}/` }));
  const keys = (out.Contents ?? []).map((o) => o.Key!);
  if (keys.length) await s3Client.send(new DeleteObjectsCommand({ Bucket: S3.bucket, Delete: { Objects: keys.map((Key) => ({ Key })) } }));
}

/** the env of a server that backs up into bucket prefix `prefix` with S3 secret `secret` (s3rver checks no signature) */
export function s3Env(prefix: string, secret: string): Record<string, string> {
  return {
    SWARM_UTILS_S3_DOMAIN: S3.endpoint,
    SWARM_UTILS_S3_HTTPS: 'false',
    SWARM_UTILS_S3_BUCKET_NAME: S3.bucket,
    SWARM_UTILS_S3_ACCESS_KEY: S3.accessKey,
    SWARM_UTILS_S3_SECRET_ACCESS_KEY: secret,
    SWARM_UTILS_S3_PATH: prefix,
  };
}
