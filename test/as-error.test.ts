import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { asError } from '../src/errors/as-error.js';

void test('asError keeps an Error (and its class) as it is and wraps anything else thrown in one', () => {
  const range = new RangeError('bad limit');
  assert.equal(asError(range), range);
  assert.deepEqual([asError('text').message, asError(42).message, asError(undefined).message], ['text', '42', 'undefined']);
  assert.ok(asError({ toString: () => 'object' }) instanceof Error);
});
