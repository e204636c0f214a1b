/**
 * The copy of the database in the bucket (README "Losing its manager"): one object,
 * `<SWARM_UTILS_S3_PATH>/.swarm-utils/state.db.gz`, whose metadata names its generation, the process that
 * wrote it and the installation. Writes are conditional (`If-Match` on the ETag read before, `If-None-Match: *`
 * when there was none) where the store honours that; a store that refuses the headers is written without
 * them, and one that ignores them is covered by the read-check-write of the caller (gate.ts).
 * Error messages name the endpoint, bucket and key, never a credential.
 */
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import { S3_CALL_TIMEOUT_MS, lazyS3Client, s3Endpoint } from '../s3.js';

import { knownSchemaVersion } from '../db/index.js';

export const STATE_OBJECT = '.swarm-utils/state.db.gz';

/** what the object's metadata says */
export interface StateHead {
  generation: number;
  /** the process that wrote it (a random id per process start) */
  writer: string;
  /** the installation id of the database (migrations/0002_meta.sql) */
  installation: string;
  /** the schema version (highest migration) of the build that wrote it; 0 for copies written before 1.0.0 */
  schema?: number;
  etag: string | null;
  size: number;
}

export interface StateMeta {
  generation: number;
  writer: string;
  installation: string;
  /** the writer's schema version: an older build refuses a newer copy (docs/upgrading.md) */
  schema?: number;
}

/** another writer changed the object since it was read: a conditional write was refused */
export class StateConflict extends Error {}

export interface StateStore {
  /** `<prefix>/.swarm-utils/state.db.gz`, for messages */
  readonly key: string;
  /** whether the last write was sent with conditional headers (null: none written yet) */
  readonly conditional: boolean | null;
  head(signal?: AbortSignal): Promise<StateHead | null>;
  get(signal?: AbortSignal): Promise<{ head: StateHead; body: Buffer } | null>;
  /** throws StateConflict when the store refused the condition (someone else wrote meanwhile) */
  put(body: Buffer, meta: StateMeta, expect: { etag: string | null }, signal?: AbortSignal): Promise<{ etag: string | null }>;
  close(): void;
}

/** `<SWARM_UTILS_S3_PATH>/.swarm-utils/state.db.gz`, without doubled slashes */
export function stateKey(path: string): string {
  const prefix = path.split('/').filter(Boolean).join('/');
  return prefix ? `${prefix}/${STATE_OBJECT}` : STATE_OBJECT;
}

const statusOf = (e: unknown): number | undefined => (e as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
const nameOf = (e: unknown): string => (e as { name?: string; Code?: string } | null)?.name ?? '';

function headOf(meta: Record<string, string> | undefined, etag: string | undefined, size: number | undefined): StateHead {
  const generation = Number(meta?.generation ?? NaN);
  return {
    generation: Number.isSafeInteger(generation) && generation > 0 ? generation : 0,
    writer: meta?.writer ?? '',
    installation: meta?.installation ?? '',
    schema: Number.isSafeInteger(Number(meta?.schema)) ? Number(meta?.schema) : 0,
    etag: etag ?? null,
    size: size ?? 0,
  };
}

export function createStateStore(s3: Config['s3']): StateStore {
  const { domain, bucket, accessKey, secretAccessKey } = s3;
  if (!domain || !bucket || !accessKey || !secretAccessKey) throw new AppError('UNSUPPORTED', 'S3 is not configured');
  const key = stateKey(s3.path);
  const where = `s3://${bucket}/${key} at ${s3Endpoint(s3)}`;
  const lazy = lazyS3Client(s3, { accessKeyId: accessKey, secretAccessKey });
  const scrub = (text: string) => [secretAccessKey, accessKey].reduce((t, s) => t.split(s).join('[redacted]'), text);
  /** whether the last write carried the conditional headers (null: nothing written yet) */
  let conditional: boolean | null = null;
  /** the store answered that it does not implement them: written without them from then on */
  let refusesConditions = false;

  type Sdk = Awaited<ReturnType<typeof lazy.get>>;
  async function send<T>(what: string, signal: AbortSignal | undefined, fn: (signal: AbortSignal, s3: Sdk) => Promise<T>): Promise<T> {
    const limit = AbortSignal.timeout(S3_CALL_TIMEOUT_MS);
    try {
      return await fn(signal ? AbortSignal.any([signal, limit]) : limit, await lazy.get());
    } catch (e) {
      if (e instanceof StateConflict) throw e;
      const why = limit.aborted ? `no answer within ${S3_CALL_TIMEOUT_MS} ms` : describe(e);
      throw new AppError('S3_ERROR', scrub(`could not ${what} ${where}: ${why}`));
    }
  }

  return {
    key,
    get conditional() {
      return conditional;
    },
    head: (signal) =>
      send('read', signal, async (abortSignal, { sdk, client }) => {
        try {
          const out = await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal });
          return headOf(out.Metadata, out.ETag, out.ContentLength);
        } catch (e) {
          if (statusOf(e) === 404 || nameOf(e) === 'NotFound') return null;
          throw e;
        }
      }),
    get: (signal) =>
      send('read', signal, async (abortSignal, { sdk, client }) => {
        try {
          const out = await client.send(new sdk.GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal });
          const body = Buffer.from(await out.Body!.transformToByteArray());
          return { head: headOf(out.Metadata, out.ETag, body.length), body };
        } catch (e) {
          if (statusOf(e) === 404 || nameOf(e) === 'NoSuchKey') return null;
          throw e;
        }
      }),
    put: (body, meta, expect, signal) =>
      send('write', signal, async (abortSignal, { sdk, client }) => {
        const base = {
          Bucket: bucket,
          Key: key,
          Body: body,
          ContentType: 'application/gzip',
          Metadata: { generation: String(meta.generation), writer: meta.writer, installation: meta.installation, schema: String(meta.schema ?? knownSchemaVersion()) },
        };
        const condition = expect.etag ? { IfMatch: expect.etag } : { IfNoneMatch: '*' };
        if (!refusesConditions) {
          try {
            const out = await client.send(new sdk.PutObjectCommand({ ...base, ...condition }), { abortSignal });
            conditional = true;
            return { etag: out.ETag ?? null };
          } catch (e) {
            // 412: the object is not the one read before; 409: a concurrent conditional write (AWS)
            if (statusOf(e) === 412 || statusOf(e) === 409 || nameOf(e) === 'PreconditionFailed') throw new StateConflict(describe(e));
            if (!refusesCondition(e)) throw e;
            refusesConditions = true;
          }
        }
        const out = await client.send(new sdk.PutObjectCommand(base), { abortSignal });
        conditional = false;
        return { etag: out.ETag ?? null };
      }),
    close: () => lazy.destroy(),
  };
}

/** a store that does not implement conditional writes and says so (instead of ignoring the headers) */
function refusesCondition(e: unknown): boolean {
  const status = statusOf(e);
  return status === 501 || nameOf(e) === 'NotImplemented' || (status === 400 && /if-(none-)?match|conditional/i.test(describe(e)));
}

function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const status = statusOf(e);
  const code = (e as { code?: string }).code;
  return [e.name, status ? `HTTP ${status}` : null, code ?? null, e.message].filter(Boolean).join(': ');
}
