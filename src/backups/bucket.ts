/**
 * The bucket's archives as swarm-utils reads and prunes them: the objects directly under
 * `SWARM_UTILS_S3_PATH` (a `/` delimiter, so `.swarm-utils/` and other folders stay out), and the deletion
 * of one object. A view of the one S3 client of src/s3.ts (its limits, its error messages that name the
 * endpoint, bucket and key and never a credential).
 */
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import { type ObjectInfo, createObjectStore } from '../s3.js';
import { archiveDir } from './names.js';

export type BucketObject = ObjectInfo;

export interface Bucket {
  /** every object directly under the archives' directory whose name starts with `start` (all pages) */
  list(start?: string, signal?: AbortSignal): Promise<BucketObject[]>;
  /** deletes one object (a missing one is no error) */
  remove(key: string, signal?: AbortSignal): Promise<void>;
  close(): void;
}

export const S3_NOT_CONFIGURED = 'the archives are in S3, which is not configured: set SWARM_UTILS_S3_DOMAIN, SWARM_UTILS_S3_BUCKET_NAME, SWARM_UTILS_S3_ACCESS_KEY, SWARM_UTILS_S3_SECRET_ACCESS_KEY';

export async function openBucket(s3: Config['s3'], opts: { pageSize?: number } = {}): Promise<Bucket> {
  const { domain, bucket, accessKey, secretAccessKey } = s3;
  if (!domain || !bucket || !accessKey || !secretAccessKey) throw new AppError('UNSUPPORTED', S3_NOT_CONFIGURED);
  const store = createObjectStore(s3);
  const dir = archiveDir(s3.path);
  return {
    list: (start = '', signal) => store.list(`${dir}${start}`, signal, { directOnly: true, pageSize: opts.pageSize }),
    remove: (key, signal) => store.remove(key, signal),
    close: () => store.close(),
  };
}
