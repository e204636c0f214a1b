/**
 * Step 6 of a backup: every archive is in the bucket with a non-zero size; the job result lists them, with
 * the file count and byte total of the staging copy for the pairs that were staged.
 */
import { z } from 'zod';
import { AppError } from '../../errors.js';
import { type StepContext, type StepOutcome, stepRef } from '../../engine/types.js';
import { headArchive } from '../../backups/archives.js';
import { resolvedOf } from './resolve.js';
import { stagedPairs } from './stage.js';

const ArchiveSchema = z.object({
  node: z.string(),
  volume: z.string(),
  key: z.string(),
  size: z.number(),
  /** of the staging copy the archive was made from (absent when archived in place) */
  files: z.number().optional(),
  bytes: z.number().optional(),
});
export type Archive = z.infer<typeof ArchiveSchema>;
export const VerifyDetail = z.object({ archives: z.array(ArchiveSchema) });
export const VERIFY = stepRef('verify', VerifyDetail);

export async function verify(ctx: StepContext<z.infer<typeof VerifyDetail>>): Promise<StepOutcome<z.infer<typeof VerifyDetail>>> {
  const r = resolvedOf(ctx);
  const { s3 } = ctx.deps.config;
  const staged = stagedPairs(ctx, r);
  // the S3 client is loaded when a backup first needs it, not at start-up (README "Benchmarks": idle memory)
  const { createObjectStore } = await import('../../s3.js');
  const store = createObjectStore(s3);
  try {
    const archives: Archive[] = [];
    for (const p of r.pairs) {
      // under its real name: offen appends .gpg or .age when it encrypts
      const head = await headArchive(store, p.key, ctx.signal);
      const what = `the archive of volume ${p.volume} on ${p.node}`;
      if (!head) throw new AppError('S3_ERROR', `${what} is not in bucket ${s3.bucket}: no object ${p.key} (nor ${p.key}.gpg, ${p.key}.age)`);
      if (head.size === 0) throw new AppError('S3_ERROR', `${what} is empty in bucket ${s3.bucket}: ${head.key} has 0 bytes`);
      const copy = staged.get(p.index);
      archives.push({ node: p.node, volume: p.volume, key: head.key, size: head.size, ...(copy ? { files: copy.files, bytes: copy.bytes } : {}) });
    }
    ctx.setResult({ archives });
    const counts = (a: Archive) => (a.files !== undefined ? ` (${a.files} files, ${a.bytes} bytes staged)` : '');
    return { detail: { archives }, output: archives.map((a) => `${a.key}: ${a.size} bytes${counts(a)}`).join('\n') };
  } finally {
    store.close();
  }
}
