import crypto from 'node:crypto';
import { list } from './labels.js';

export const sha256 = (s: string): Buffer => crypto.createHash('sha256').update(s).digest();

/** constant time whatever the lengths: compares fixed-size digests, always against every candidate */
export function tokenMatches(digest: Buffer, candidates: string[]): boolean {
  let found = false;
  for (const c of candidates) found = crypto.timingSafeEqual(digest, sha256(c)) || found;
  return found;
}

/** does a label's token list grant the requester (known only by the sha-256 of its token)? null hash: admin or cron */
export function grants(labelValue: string | undefined, tokenHash: string | null): boolean {
  if (tokenHash === null) return true;
  return tokenMatches(Buffer.from(tokenHash, 'hex'), list(labelValue));
}
