import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { generateApiKey, hashApiKey, keyMatchesHash, parseApiKey } from '../../../src/domain/tenancy/api-key.js';

void test('a key matches its own stored hash and nothing else: one changed character, a truncated or empty hash, another key', () => {
  const { key, prefix, hash } = generateApiKey();
  assert.equal(hash, hashApiKey(key));
  assert.equal(parseApiKey(key)?.prefix, prefix);
  assert.equal(keyMatchesHash(key, hash), true);
  const last = key.at(-1) === 'A' ? 'B' : 'A';
  assert.equal(keyMatchesHash(key.slice(0, -1) + last, hash), false);
  assert.equal(keyMatchesHash(key, hash.slice(0, -1)), false);
  assert.equal(keyMatchesHash(key, ''), false);
  const flipped = (hash[0] === '0' ? '1' : '0') + hash.slice(1);
  assert.equal(keyMatchesHash(key, flipped), false, 'the first character is compared too');
  assert.equal(keyMatchesHash(generateApiKey().key, hash), false);
});
