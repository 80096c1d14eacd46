import { strict as assert } from 'node:assert';
import { after, test } from 'node:test';
import { MemoryIdempotencyStore } from '../../../src/adapters/memory/idempotency-store.js';
import { idempotencyStoreContract } from './contracts.js';

let fakeNow = Date.now();
const stores: MemoryIdempotencyStore[] = [];
after(() => {
  for (const s of stores) s.close();
});

idempotencyStoreContract('memory idempotency store', {
  make: () => {
    const store = new MemoryIdempotencyStore({ clock: () => fakeNow });
    stores.push(store);
    return Promise.resolve(store);
  },
  advance: (ms) => {
    fakeNow += ms;
    return Promise.resolve();
  },
});

void test('memory idempotency store: holds at most maxEntries records', async () => {
  const store = new MemoryIdempotencyStore({ maxEntries: 500 });
  stores.push(store);
  for (let i = 0; i < 5000; i++) await store.begin(`key-${i}`, 'fp', 60);
  assert.equal(store.size, 500);
  // The newest records survive, the oldest were evicted.
  assert.equal((await store.begin('key-4999', 'fp', 60)).state, 'in_progress');
  assert.equal((await store.begin('key-0', 'fp', 60)).state, 'started');
});

void test('memory idempotency store: stored responses are capped by bytes', async () => {
  const store = new MemoryIdempotencyStore({ maxBytes: 1024 * 1024 });
  stores.push(store);
  const body = 'b'.repeat(64 * 1024);
  for (let i = 0; i < 100; i++) {
    await store.begin(`big-${i}`, 'fp', 60);
    await store.complete(`big-${i}`, 'fp', { status: 200, headers: {}, body }, 60);
  }
  assert.ok(store.bytes <= 1024 * 1024, `bytes: ${store.bytes}`);
  assert.ok(store.size < 20, `size: ${store.size}`);
  assert.equal((await store.begin('big-99', 'fp', 60)).state, 'replay');
});

void test('memory idempotency store: the periodic sweep drops expired records', async () => {
  const store = new MemoryIdempotencyStore({ sweepIntervalMs: 20 });
  stores.push(store);
  await store.begin('short', 'fp', 0.01);
  await new Promise((resolve) => setTimeout(resolve, 80));
  assert.equal(store.size, 0);
});
