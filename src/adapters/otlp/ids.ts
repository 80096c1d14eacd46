import { randomFillSync } from 'node:crypto';

/**
 * Random trace and span ids. One crypto fill serves hundreds of ids: a randomBytes call per span
 * would be the largest cost of starting one.
 */
const pool = Buffer.alloc(4096);
let offset = pool.length;

function hex(bytes: number): string {
  if (offset + bytes > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const out = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
  return out;
}

const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

export function newTraceId(): string {
  const id = hex(16);
  return id === ZERO_TRACE ? newTraceId() : id;
}

export function newSpanId(): string {
  const id = hex(8);
  return id === ZERO_SPAN ? newSpanId() : id;
}
