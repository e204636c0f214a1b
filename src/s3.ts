/**
 * The object store where backups land, as far as swarm-utils itself reads it: does an object exist,
 * and how big is it. Region, addressing style and an extra CA come from the configuration (README
 * "S3 providers"), the same the backup helpers get.
 * Error messages name the endpoint, bucket and key, never a credential.
 */
import { rootCertificates } from 'node:tls';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import type { Config } from './config.js';
import { AppError } from './errors.js';

export interface ObjectInfo {
  key: string;
  size: number;
  /** ISO time, when the listing says (not from head) */
  lastModified?: string | null;
}

export interface ObjectStore {
  /** the object's size, or null when the bucket has no such key */
  head(key: string, signal?: AbortSignal): Promise<ObjectInfo | null>;
  /**
   * every object whose key starts with `prefix` (ListObjectsV2, all pages); with `directOnly`, only those with
   * no further `/` after the prefix (a `/` delimiter: deeper "folders" stay out)
   */
  list(prefix: string, signal?: AbortSignal, opts?: { directOnly?: boolean; pageSize?: number }): Promise<ObjectInfo[]>;
  /** deletes one object; a missing one is no error */
  remove(key: string, signal?: AbortSignal): Promise<void>;
  /**
   * A URL that lets its holder GET one object for `expiresS` seconds, with no credential of its own (so a
   * node helper can fetch an archive while no S3 secret reaches the node). The URL is itself a credential:
   * it travels as a Docker secret and never appears in a spec, a log or a response.
   */
  presignGet(key: string, expiresS: number): Promise<string>;
  close(): void;
}

/** the limit of one S3 call, its retries included: an endpoint that accepts and never answers fails the step */
export const S3_CALL_TIMEOUT_MS = 60_000;

export const s3Endpoint = (s3: Pick<Config['s3'], 'domain' | 'https'>): string => `${s3.https ? 'https' : 'http'}://${s3.domain ?? ''}`;

/** The SDK client's options; `credentials` is the only secret part. */
export function s3ClientConfig(s3: Config['s3'], credentials: { accessKeyId: string; secretAccessKey: string }): S3ClientConfig {
  return {
    endpoint: s3Endpoint(s3),
    region: s3.region,
    forcePathStyle: s3.pathStyle,
    credentials,
    maxAttempts: 3,
    requestHandler: {
      // an unreachable endpoint must fail the step, not hang it
      connectionTimeout: 5_000,
      requestTimeout: 30_000,
      // added to the public roots, not instead of them
      ...(s3.caCert ? { httpsAgent: { ca: [...rootCertificates, s3.caCert] } } : {}),
    },
  };
}

/**
 * The AWS SDK, loaded when S3 is first used rather than at start-up (an idle process stays small: README
 * "Benchmarks"), once per process.
 */
let sdk: Promise<typeof import('@aws-sdk/client-s3')> | null = null;
export const loadS3Sdk = (): Promise<typeof import('@aws-sdk/client-s3')> => (sdk ??= import('@aws-sdk/client-s3'));

/** one SDK client made on first use, with the SDK; `destroy` is a no-op when none was made */
export function lazyS3Client(s3: Config['s3'], credentials: { accessKeyId: string; secretAccessKey: string }) {
  let made: Promise<{ sdk: typeof import('@aws-sdk/client-s3'); client: S3Client }> | null = null;
  let client: S3Client | null = null;
  return {
    get: () =>
      (made ??= loadS3Sdk().then((m) => {
        client = new m.S3Client(s3ClientConfig(s3, credentials));
        return { sdk: m, client };
      })),
    destroy: () => client?.destroy(),
  };
}

export function createObjectStore(s3: Config['s3']): ObjectStore {
  const { domain, bucket, accessKey, secretAccessKey } = s3;
  if (!domain || !bucket || !accessKey || !secretAccessKey) throw new AppError('UNSUPPORTED', 'S3 is not configured');
  const endpoint = s3Endpoint(s3);
  const lazy = lazyS3Client(s3, { accessKeyId: accessKey, secretAccessKey });
  const scrub = (text: string) => [secretAccessKey, accessKey].reduce((t, s) => t.split(s).join('[redacted]'), text);
  return {
    async head(key, signal) {
      const limit = AbortSignal.timeout(S3_CALL_TIMEOUT_MS);
      try {
        const { sdk: m, client } = await lazy.get();
        const out = await client.send(new m.HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal ? AbortSignal.any([signal, limit]) : limit });
        return { key, size: out.ContentLength ?? 0 };
      } catch (e) {
        if (statusOf(e) === 404 || (e as { name?: string } | null)?.name === 'NotFound') return null;
        const why = limit.aborted ? `no answer within ${S3_CALL_TIMEOUT_MS} ms` : describe(e);
        throw new AppError('S3_ERROR', scrub(`could not read s3://${bucket}/${key} at ${endpoint}: ${why}`));
      }
    },
    async list(prefix, signal, opts = {}) {
      const out: ObjectInfo[] = [];
      let token: string | undefined;
      do {
        const limit = AbortSignal.timeout(S3_CALL_TIMEOUT_MS);
        try {
          const { sdk: m, client } = await lazy.get();
          const query = { Bucket: bucket, Prefix: prefix, ContinuationToken: token, ...(opts.directOnly ? { Delimiter: '/' } : {}), ...(opts.pageSize ? { MaxKeys: opts.pageSize } : {}) };
          const page = await client.send(new m.ListObjectsV2Command(query), {
            abortSignal: signal ? AbortSignal.any([signal, limit]) : limit,
          });
          for (const o of page.Contents ?? []) if (o.Key) out.push({ key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified?.toISOString() ?? null });
          token = page.IsTruncated ? page.NextContinuationToken : undefined;
        } catch (e) {
          const why = limit.aborted ? `no answer within ${S3_CALL_TIMEOUT_MS} ms` : describe(e);
          throw new AppError('S3_ERROR', scrub(`could not list s3://${bucket}/${prefix} at ${endpoint}: ${why}`));
        }
      } while (token);
      return out;
    },
    async remove(key, signal) {
      const limit = AbortSignal.timeout(S3_CALL_TIMEOUT_MS);
      try {
        const { sdk: m, client } = await lazy.get();
        await client.send(new m.DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal ? AbortSignal.any([signal, limit]) : limit });
      } catch (e) {
        if (statusOf(e) === 404) return;
        const why = limit.aborted ? `no answer within ${S3_CALL_TIMEOUT_MS} ms` : describe(e);
        throw new AppError('S3_ERROR', scrub(`could not delete s3://${bucket}/${key} at ${endpoint}: ${why}`));
      }
    },
    async presignGet(key, expiresS) {
      // SigV4 allows at most 7 days
      const expiresIn = Math.max(60, Math.min(Math.ceil(expiresS), 7 * 24 * 3600));
      const [{ sdk: m, client }, { getSignedUrl }] = await Promise.all([lazy.get(), import('@aws-sdk/s3-request-presigner')]);
      return getSignedUrl(client, new m.GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn });
    },
    close: () => lazy.destroy(),
  };
}

export const statusOf = (e: unknown): number | undefined => (e as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;

/** an SDK error as one line: name, HTTP status, code, message (never a credential: the SDK does not put them in errors) */
export function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const status = statusOf(e);
  const code = (e as { code?: string }).code;
  return [e.name, status ? `HTTP ${status}` : null, code ?? null, e.message].filter(Boolean).join(': ');
}
