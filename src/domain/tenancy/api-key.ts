import * as crypto from 'node:crypto';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** kg_<8-char prefix>_<43-char base64url secret (32 random bytes)>. */
const KEY_PATTERN = /^kg_([A-Za-z0-9]{8})_([A-Za-z0-9_-]{43,128})$/;
const PREFIX_ALPHABET = 'abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';

export interface ParsedKey {
  readonly prefix: string;
  readonly secret: string;
}

export function parseApiKey(raw: string): ParsedKey | undefined {
  const match = KEY_PATTERN.exec(raw);
  if (!match || !match[1] || !match[2]) return undefined;
  return { prefix: match[1], secret: match[2] };
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

type OneShotHash = (algorithm: string, data: string, encoding: 'buffer') => Buffer;
/** crypto.hash (Node >= 20.12): a one-shot digest without a Hash object, several times cheaper per key. */
const oneShot = (crypto as { hash?: OneShotHash }).hash;
const sha256 = oneShot ? (data: string): Buffer => oneShot('sha256', data, 'buffer') : (data: string): Buffer => createHash('sha256').update(data).digest();

/** Constant-time comparison of a presented key with a stored hash. */
export function keyMatchesHash(key: string, storedHashHex: string): boolean {
  const presented = sha256(key);
  const stored = Buffer.from(storedHashHex, 'hex');
  return stored.length === presented.length && timingSafeEqual(presented, stored);
}

export function generateApiKey(): { key: string; prefix: string; hash: string } {
  const bytes = randomBytes(8);
  let prefix = '';
  for (const b of bytes) prefix += PREFIX_ALPHABET[b % PREFIX_ALPHABET.length];
  const key = `kg_${prefix}_${randomBytes(32).toString('base64url')}`;
  return { key, prefix, hash: hashApiKey(key) };
}
