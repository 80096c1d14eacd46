import * as crypto from 'node:crypto';
import { createHash, randomBytes } from 'node:crypto';

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

type OneShotHash = (algorithm: string, data: string, encoding: 'hex') => string;
/** crypto.hash (Node >= 20.12): a one-shot digest without a Hash object, several times cheaper per key. */
const oneShot = (crypto as { hash?: OneShotHash }).hash;
// Hex output: crypto.hash's 'buffer' output measured ~3x slower than 'hex' (0.84 vs 2.6 µs per key).
const sha256Hex = oneShot ? (data: string): string => oneShot('sha256', data, 'hex') : hashApiKey;

/**
 * Constant-time comparison of a presented key with a stored hash: every character of the two hex
 * digests is compared, whatever differs, so the time does not depend on where they differ.
 */
export function keyMatchesHash(key: string, storedHashHex: string): boolean {
  const presented = sha256Hex(key);
  if (presented.length !== storedHashHex.length) return false;
  let diff = 0;
  for (let i = 0; i < presented.length; i++) diff |= presented.charCodeAt(i) ^ storedHashHex.charCodeAt(i);
  return diff === 0;
}

export function generateApiKey(): { key: string; prefix: string; hash: string } {
  const bytes = randomBytes(8);
  let prefix = '';
  for (const b of bytes) prefix += PREFIX_ALPHABET[b % PREFIX_ALPHABET.length];
  const key = `kg_${prefix}_${randomBytes(32).toString('base64url')}`;
  return { key, prefix, hash: hashApiKey(key) };
}
