import { strict as assert } from 'node:assert';
import { after, test } from 'node:test';
import { MemoryLimitStore } from '../../../src/adapters/memory/limit-store.js';
import { BoundedTtlMap } from '../../../src/adapters/memory/bounded-map.js';
import { limitStoreContract, uniqueKey } from './contracts.js';

let fakeNow = Date.now();
const clock = (): number => fakeNow;
const stores: MemoryLimitStore[] = [];
after(() => {
  for (const s of stores) s.close();
});

limitStoreContract('memory limit store', {
  make: (options) => {
    const store = new MemoryLimitStore({ clock, ...options });
    stores.push(store);
    return Promise.resolve(store);
  },
  advance: (ms) => {
    fakeNow += ms;
    return Promise.resolve();
  },
});

void test('memory limit store: holds at most maxEntries rate buckets, evicting the least recently used', async () => {
  const store = new MemoryLimitStore({ maxEntries: 1000 });
  stores.push(store);
  const now = Date.now();
  const first = uniqueKey('first');
  await store.admit({ rateKey: first, limitPerMinute: 1, quotaKey: 'q', quotaLimit: 10, now });
  for (let i = 0; i < 5000; i++) {
    await store.admit({ rateKey: `k${i}`, limitPerMinute: 60, quotaKey: 'q', quotaLimit: 10, now });
  }
  assert.ok(store.size.rates <= 1000, `rates: ${store.size.rates}`);
  // The first key was evicted, so its bucket is forgotten: the price of the bound.
  assert.equal((await store.admit({ rateKey: first, limitPerMinute: 1, quotaKey: 'q', quotaLimit: 10, now })).allowed, true);
});

void test('memory limit store: holds at most maxEntries quota counters', async () => {
  const store = new MemoryLimitStore({ maxEntries: 100 });
  stores.push(store);
  for (let i = 0; i < 1000; i++) await store.addTokens(`tenant-${i}:2026-11`, 1);
  assert.ok(store.size.quotas <= 100);
});

void test('memory limit store: a full store drops expired buckets before live ones', () => {
  let now = 1_000_000;
  const store = new MemoryLimitStore({ maxEntries: 10, clock: () => now });
  stores.push(store);
  // Five live buckets with a full minute to go (limit 1/min) and five that expire within 1 s (60/min).
  for (let i = 0; i < 5; i++) store.admitSync({ rateKey: `live${i}`, limitPerMinute: 1, quotaKey: 'q', quotaLimit: 10, now });
  for (let i = 0; i < 5; i++) store.admitSync({ rateKey: `short${i}`, limitPerMinute: 60, quotaKey: 'q', quotaLimit: 10, now });
  now += 2000;
  for (let i = 0; i < 5; i++) store.admitSync({ rateKey: `new${i}`, limitPerMinute: 60, quotaKey: 'q', quotaLimit: 10, now });
  for (let i = 0; i < 5; i++) {
    assert.equal(store.admitSync({ rateKey: `live${i}`, limitPerMinute: 1, quotaKey: 'q', quotaLimit: 10, now }).allowed, false, `live${i} kept`);
  }
});

void test('memory limit store: the periodic sweep drops expired buckets', async () => {
  const store = new MemoryLimitStore({ sweepIntervalMs: 20 });
  stores.push(store);
  store.admitSync({ rateKey: 'short', limitPerMinute: 6000, quotaKey: 'q', quotaLimit: 10 });
  assert.equal(store.size.rates, 1);
  await new Promise((resolve) => setTimeout(resolve, 80));
  assert.equal(store.size.rates, 0);
});

void test('memory limit store: observed quota usage from Redis raises the local counter, never lowers it', async () => {
  const store = new MemoryLimitStore();
  stores.push(store);
  const quotaKey = uniqueKey('observed');
  store.observeQuota(quotaKey, 900);
  await store.addTokens(quotaKey, 50);
  store.observeQuota(quotaKey, 100);
  const a = store.admitSync({ rateKey: uniqueKey('r'), limitPerMinute: 60, quotaKey, quotaLimit: 950 });
  assert.equal(a.quotaUsed, 950);
  assert.equal(a.reason, 'quota');
});

void test('bounded map: byte cap evicts the least recently written entries', () => {
  const map = new BoundedTtlMap<string>({ maxEntries: 100, maxBytes: 100, sizeOf: (_k, v) => v.length });
  for (let i = 0; i < 20; i++) map.set(`k${i}`, 'x'.repeat(10), Number.POSITIVE_INFINITY, 0);
  assert.ok(map.bytes <= 100);
  assert.equal(map.size, 10);
  assert.equal(map.get('k0', 0), undefined);
  assert.equal(map.get('k19', 0), 'x'.repeat(10));
  assert.equal(map.evictions, 10);
  map.set('k10', 'y', Number.POSITIVE_INFINITY, 0);
  assert.equal(map.bytes, 91, 'replacing an entry replaces its size');
});

void test('bounded map: entries read after their expiry are gone', () => {
  const map = new BoundedTtlMap<number>({ maxEntries: 10 });
  map.set('a', 1, 100, 0);
  assert.equal(map.get('a', 99), 1);
  assert.equal(map.get('a', 100), undefined);
  assert.equal(map.size, 0);
});
