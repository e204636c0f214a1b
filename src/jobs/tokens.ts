import crypto from 'node:crypto';
import { list } from './labels.js';

export const sha256 = (s: string): Buffer => crypto.createHash('sha256').update(s).digest();

/** constant time whatever the lengths: compares fixed-size digests, always against every candidate */
export function tokenMatches(digest: Buffer, candidates: string[]): boolean {
  let found = false;
  for (const c of candidates) found = crypto.timingSafeEqual(digest, sha256(c)) || found;
  return found;
}

/**
 * Who asked, as stored and compared: HMAC-SHA256 under this installation's key (kept in the database)
 * of the token's sha-256 in hex. Keyed, so a stored value cannot be used to guess a token offline;
 * over the sha-256, so a label entry `sha256:<hex>` is matched without the token itself.
 */
export function keyedHash(key: Buffer, sha256Hex: string): string {
  return crypto.createHmac('sha256', key).update(sha256Hex.toLowerCase()).digest('hex');
}

/** the keyed hash of a token */
export const requesterHash = (key: Buffer, token: string): string => keyedHash(key, sha256(token).toString('hex'));

const SHA256_ENTRY = /^sha256:([0-9a-fA-F]{64})$/;

/** a label entry is a token, or `sha256:<64 hex>` of one (see README, Authorization) */
function entryHash(key: Buffer, entry: string): Buffer {
  const m = SHA256_ENTRY.exec(entry);
  return Buffer.from(keyedHash(key, m ? m[1]! : sha256(entry).toString('hex')), 'hex');
}

/**
 * Does a label's token list grant the requester (known only by its keyed hash)? null hash: admin or cron.
 * Every entry is compared, each in constant time.
 */
export function grants(labelValue: string | undefined, tokenHash: string | null, key: Buffer): boolean {
  if (tokenHash === null) return true;
  const digest = Buffer.from(tokenHash, 'hex');
  if (digest.length !== 32) return false;
  let found = false;
  for (const entry of list(labelValue)) found = crypto.timingSafeEqual(digest, entryHash(key, entry)) || found;
  return found;
}
