/** Step 6 of a backup: every archive is in the bucket with a non-zero size; the job result lists them. */
import { z } from 'zod';
import { AppError } from '../../errors.js';
import { type StepContext, type StepOutcome, stepRef } from '../../engine/types.js';
import { createObjectStore } from '../../s3.js';
import { headArchive } from '../../backups/archives.js';
import { resolvedOf } from './resolve.js';

const ArchiveSchema = z.object({ node: z.string(), volume: z.string(), key: z.string(), size: z.number() });
export type Archive = z.infer<typeof ArchiveSchema>;
export const VerifyDetail = z.object({ archives: z.array(ArchiveSchema) });
export const VERIFY = stepRef('verify', VerifyDetail);

export async function verify(ctx: StepContext<z.infer<typeof VerifyDetail>>): Promise<StepOutcome<z.infer<typeof VerifyDetail>>> {
  const r = resolvedOf(ctx);
  const { s3 } = ctx.deps.config;
  const store = createObjectStore(s3);
  try {
    const archives: Archive[] = [];
    for (const p of r.pairs) {
      // under its real name: offen appends .gpg or .age when it encrypts
      const head = await headArchive(store, p.key, ctx.signal);
      const what = `the archive of volume ${p.volume} on ${p.node}`;
      if (!head) throw new AppError('S3_ERROR', `${what} is not in bucket ${s3.bucket}: no object ${p.key} (nor ${p.key}.gpg, ${p.key}.age)`);
      if (head.size === 0) throw new AppError('S3_ERROR', `${what} is empty in bucket ${s3.bucket}: ${head.key} has 0 bytes`);
      archives.push({ node: p.node, volume: p.volume, key: head.key, size: head.size });
    }
    ctx.setResult({ archives });
    return { detail: { archives }, output: archives.map((a) => `${a.key}: ${a.size} bytes`).join('\n') };
  } finally {
    store.close();
  }
}
