/** Step 6 of a backup: every archive is in the bucket with a non-zero size; the job result lists them. */
import { AppError } from '../../errors.js';
import type { StepContext, StepOutcome } from '../../engine/types.js';
import { createObjectStore } from '../../s3.js';
import { resolvedOf } from './resolve.js';

export interface Archive {
  node: string;
  volume: string;
  key: string;
  size: number;
}

export async function verify(ctx: StepContext): Promise<StepOutcome> {
  const r = resolvedOf(ctx);
  const { s3 } = ctx.deps.config;
  const store = createObjectStore(s3);
  try {
    const archives: Archive[] = [];
    for (const p of r.pairs) {
      const head = await store.head(p.key, ctx.signal);
      const what = `the archive of volume ${p.volume} on ${p.node}`;
      if (!head) throw new AppError('S3_ERROR', `${what} is not in bucket ${s3.bucket}: no object ${p.key}`);
      if (head.size === 0) throw new AppError('S3_ERROR', `${what} is empty in bucket ${s3.bucket}: ${p.key} has 0 bytes`);
      archives.push({ node: p.node, volume: p.volume, key: p.key, size: head.size });
    }
    ctx.setResult({ archives });
    return { detail: { archives }, output: archives.map((a) => `${a.key}: ${a.size} bytes`).join('\n') };
  } finally {
    store.close();
  }
}
