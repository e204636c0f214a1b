import crypto from 'node:crypto';
import { list } from './labels.js';

/** does a label's token list grant the requester (known only by the sha-256 of its token)? null hash: admin or cron */
export function grants(labelValue: string | undefined, tokenHash: string | null): boolean {
  if (tokenHash === null) return true;
  const want = Buffer.from(tokenHash, 'hex');
  return list(labelValue).some((t) => {
    const h = crypto.createHash('sha256').update(t).digest();
    return h.length === want.length && crypto.timingSafeEqual(h, want);
  });
}
