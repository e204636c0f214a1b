/**
 * The bucket's archives as swarm-utils reads and prunes them: a paged listing of the objects directly
 * under `SWARM_UTILS_S3_PATH` (ListObjectsV2 with a `/` delimiter, so `.swarm-utils/` and other folders
 * stay out), and the deletion of one object. Same client options as the verify step (src/s3.ts); the SDK
 * is loaded on first use. Every call has a limit; errors name the endpoint, bucket and key, never a
 * credential.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import { S3_CALL_TIMEOUT_MS, describe, s3ClientConfig, s3Endpoint } from '../s3.js';
import { archiveDir } from './names.js';

export interface BucketObject {
  key: string;
  size: number;
}

export interface Bucket {
  /** every object directly under the archives' directory whose name starts with `start` (all pages) */
  list(start?: string, signal?: AbortSignal): Promise<BucketObject[]>;
  /** deletes one object (a missing one is no error) */
  remove(key: string, signal?: AbortSignal): Promise<void>;
  close(): void;
}

/** one listing page: S3's own maximum */
const PAGE = 1000;

export const S3_NOT_CONFIGURED = 'the archives are in S3, which is not configured: set SWARM_UTILS_S3_DOMAIN, SWARM_UTILS_S3_BUCKET_NAME, SWARM_UTILS_S3_ACCESS_KEY, SWARM_UTILS_S3_SECRET_ACCESS_KEY';

export async function openBucket(s3: Config['s3'], opts: { pageSize?: number } = {}): Promise<Bucket> {
  const { domain, bucket, accessKey, secretAccessKey } = s3;
  if (!domain || !bucket || !accessKey || !secretAccessKey) throw new AppError('UNSUPPORTED', S3_NOT_CONFIGURED);
  const sdk = await import('@aws-sdk/client-s3');
  const client: S3Client = new sdk.S3Client(s3ClientConfig(s3, { accessKeyId: accessKey, secretAccessKey }));
  const endpoint = s3Endpoint(s3);
  const dir = archiveDir(s3.path);
  const scrub = (text: string) => [secretAccessKey, accessKey].reduce((t, s) => t.split(s).join('[redacted]'), text);

  /** one SDK call under the call limit (and the caller's signal) */
  async function call<T>(what: string, send: (abortSignal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const limit = AbortSignal.timeout(S3_CALL_TIMEOUT_MS);
    try {
      return await send(signal ? AbortSignal.any([signal, limit]) : limit);
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      const why = limit.aborted ? `no answer within ${S3_CALL_TIMEOUT_MS} ms` : describe(e);
      throw new AppError('S3_ERROR', scrub(`could not ${what} at ${endpoint}: ${why}`));
    }
  }

  return {
    async list(start = '', signal) {
      const out: BucketObject[] = [];
      let token: string | undefined;
      do {
        const page = await call(
          `list s3://${bucket}/${dir}${start}`,
          (abortSignal) =>
            client.send(
              new sdk.ListObjectsV2Command({ Bucket: bucket, Prefix: `${dir}${start}`, Delimiter: '/', MaxKeys: opts.pageSize ?? PAGE, ContinuationToken: token }),
              { abortSignal },
            ),
          signal,
        );
        for (const o of page.Contents ?? []) if (o.Key) out.push({ key: o.Key, size: o.Size ?? 0 });
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return out;
    },
    async remove(key, signal) {
      await call(`delete s3://${bucket}/${key}`, (abortSignal) => client.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal }), signal);
    },
    close: () => client.destroy(),
  };
}
