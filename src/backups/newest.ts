/**
 * The newest of our archives of one node and volume in the bucket: the default of a restore or a drill
 * given no key (README "Listing the archives"). Reads the bucket, never the database.
 */
import type { Config } from '../config.js';
import { openBucket } from './bucket.js';
import { type ParsedArchive, newestFirst, parseArchiveKey } from './names.js';

export async function newestArchive(
  s3: Config['s3'],
  pair: { node: string; volume: string },
  opts: { knownNodes?: readonly string[]; signal?: AbortSignal } = {},
): Promise<(ParsedArchive & { size: number }) | null> {
  const bucket = await openBucket(s3);
  try {
    const objects = await bucket.list(`${pair.node}_${pair.volume}_`, opts.signal);
    const known = [...(opts.knownNodes ?? []), pair.node];
    const ours = objects.flatMap((o) => {
      const a = parseArchiveKey(o.key, s3.path, known);
      return a && a.node === pair.node && a.volume === pair.volume ? [{ ...a, size: o.size }] : [];
    });
    return ours.sort(newestFirst)[0] ?? null;
  } finally {
    bucket.close();
  }
}
