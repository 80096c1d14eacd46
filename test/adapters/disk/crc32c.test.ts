import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import { crc32c } from '../../../src/adapters/disk/crc32c.js';

/** Bit-at-a-time CRC-32C, the definition the table-driven version must match. */
function reference(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

void test('crc32c matches the published CRC-32C check value and the RFC 3720 test vectors', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(crc32c(Buffer.alloc(32, 0)), 0x8a9136aa);
  assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 0x46dd794e);
  assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i))), 0x113fdb5c);
  assert.equal(crc32c(Buffer.alloc(0)), 0);
});

void test('crc32c equals the bitwise definition for any bytes, ranges and chaining', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(), (data, a, b) => {
    const start = data.length === 0 ? 0 : a % (data.length + 1);
    const end = start + (b % (data.length - start + 1));
    assert.equal(crc32c(data), reference(data));
    assert.equal(crc32c(data, start, end), reference(data.subarray(start, end)));
    assert.equal(crc32c(data, end, data.length, crc32c(data, 0, end)), reference(data));
  }), { numRuns: 300 });
});
