import { strict as assert } from 'node:assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { MemoryLimitStore } from '../../../src/adapters/memory/limit-store.js';
import { closeRedisClient, connectWithin, createRedisClient } from '../../../src/adapters/redis/client.js';
import { LIMITS_BATCH_LUA, RedisLimitStore } from '../../../src/adapters/redis/limit-store.js';
import { limitStoreContract, uniqueKey } from '../memory/contracts.js';
import { startRedis } from '../../harness/servers.js';

let redis: Awaited<ReturnType<typeof startRedis>>;
let client: Redis;

before(async () => {
  redis = await startRedis();
  client = createRedisClient(redis.url, { commandTimeoutMs: 1000 });
  assert.equal(await connectWithin(client, 5000), true);
});

after(async () => {
  await closeRedisClient(client);
  await redis.cleanup();
});

limitStoreContract('redis limit store', {
  make: (options) => Promise.resolve(new RedisLimitStore(client, options)),
  advance: (ms) => sleep(ms),
});

async function evalCalls(): Promise<number> {
  const info = await client.info('commandstats');
  const calls = (name: string): number => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
  return calls('evalsha') + calls('eval');
}

void test('redis limit store: one script call per admission, with keys under kg:rl: and kg:q:', async () => {
  const store = new RedisLimitStore(client);
  const rateKey = uniqueKey('rk');
  const quotaKey = uniqueKey('qk');
  await store.addTokens(quotaKey, 3);
  const before = await evalCalls();
  const admission = await store.admit({ rateKey, limitPerMinute: 60, quotaKey, quotaLimit: 10 });
  assert.equal(await evalCalls(), before + 1);
  assert.equal(admission.quotaUsed, 3);
  const tat = Number(await client.get(`kg:rl:${rateKey}`));
  assert.ok(Math.abs(tat / 1000 - (Date.now() + 1000)) < 500, 'TAT is one interval ahead, in µs');
  const pttl = await client.pttl(`kg:rl:${rateKey}`);
  assert.ok(pttl > 0 && pttl <= 1000, `bucket expires when it is full again (pttl ${pttl})`);
  assert.equal(await client.get(`kg:q:${quotaKey}`), '3');
});

void test('redis limit store: the quota counter gets its ~35 day expiry once, on the first increment', async () => {
  const store = new RedisLimitStore(client);
  const quotaKey = uniqueKey('qk');
  await store.addTokens(quotaKey, 1);
  const ttl = await client.pttl(`kg:q:${quotaKey}`);
  assert.ok(ttl > 34.9 * 86_400_000 && ttl <= 35 * 86_400_000, `pttl ${ttl}`);
  await client.pexpire(`kg:q:${quotaKey}`, 123_456);
  await store.addTokens(quotaKey, 1);
  assert.ok((await client.pttl(`kg:q:${quotaKey}`)) <= 123_456, 'a later increment does not extend it');
  assert.equal(await store.incrementQuota(quotaKey, 5), 7);
});

void test('redis limit store: concurrent admissions from many callers never exceed the burst', async () => {
  const stores = [new RedisLimitStore(client), new RedisLimitStore(client)];
  const rateKey = uniqueKey('rk');
  const now = Date.now();
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) => stores[i % 2]!.admit({ rateKey, limitPerMinute: 100, quotaKey: 'q', quotaLimit: 1e9, now })),
  );
  assert.equal(results.filter((r) => r.allowed).length, 100);
});

void test('redis limit store: keeps working after the server restarts with an empty script cache', async () => {
  const local = await startRedis();
  const c = createRedisClient(local.url, { commandTimeoutMs: 500, maxReconnectDelayMs: 200 });
  try {
    assert.equal(await connectWithin(c, 5000), true);
    const store = new RedisLimitStore(c);
    const req = { rateKey: uniqueKey('rk'), limitPerMinute: 60, quotaKey: uniqueKey('q'), quotaLimit: 10 };
    assert.equal((await store.admit(req)).allowed, true);
    await local.stop();
    while (c.status === 'ready') await sleep(10);
    await local.start();
    assert.equal(await connectWithin(c, 5000), true);
    assert.equal((await store.admit(req)).remaining, 59, 'fresh server, script loaded again');
  } finally {
    await closeRedisClient(c);
    await local.cleanup();
  }
});

void test('redis limit store: admissions and charges issued in one turn go to Redis as one script call, applied in order', async () => {
  const store = new RedisLimitStore(client);
  const quotaKey = uniqueKey('qk');
  const admit = (rateKey: string) => store.admit({ rateKey, limitPerMinute: 60, quotaKey, quotaLimit: 10 });
  const before = await evalCalls();
  const [, first, , second, total] = await Promise.all([
    store.incrementQuota(quotaKey, 5), admit(uniqueKey('rk')), store.incrementQuota(quotaKey, 5), admit(uniqueKey('rk')), store.incrementQuota(quotaKey, 1),
  ]);
  assert.equal(await evalCalls(), before + 1, 'one EVALSHA for five ops');
  assert.deepEqual([first.allowed, first.quotaUsed], [true, 5], 'sees the charge issued before it');
  assert.deepEqual([second.allowed, second.reason, second.quotaUsed], [false, 'quota', 10], 'sees both charges issued before it');
  assert.equal(total, 11);
});

void test('redis limit store: charges of one key issued back to back are one op whose total every caller gets; a charge of another key or an admission in between keeps them apart', async () => {
  const store = new RedisLimitStore(client);
  const [q, other] = [uniqueKey('qk'), uniqueKey('qk')];
  const admit = () => store.admit({ rateKey: uniqueKey('rk'), limitPerMinute: 60, quotaKey: q, quotaLimit: 1e9 });
  const before = await evalCalls();
  const [a, b, c, seen, d, e, f] = await Promise.all([
    store.incrementQuota(q, 1), store.incrementQuota(q, 2), store.incrementQuota(q, 3), admit(),
    store.incrementQuota(q, 4), store.incrementQuota(other, 10), store.incrementQuota(q, 5),
  ]);
  assert.equal(await evalCalls(), before + 1, 'one script call');
  assert.deepEqual([a, b, c], [6, 6, 6], 'the three charges were one increment of 6');
  assert.equal(seen.quotaUsed, 6, 'the admission sees exactly the charges issued before it');
  assert.deepEqual([d, e, f], [10, 10, 15], 'separated by another key, 4 and 5 stay two increments');
  assert.equal(Number(await client.get(`kg:q:${q}`)), 15);
});

void test('redis limit store: a turn with more ops than the batch limit is split into several calls', async () => {
  const store = new RedisLimitStore(client, { maxBatch: 100 });
  const rateKey = uniqueKey('rk');
  const before = await evalCalls();
  const results = await Promise.all(Array.from({ length: 250 }, () => store.admit({ rateKey, limitPerMinute: 200, quotaKey: 'q', quotaLimit: 1e9 })));
  assert.equal(await evalCalls(), before + 3);
  assert.equal(results.filter((r) => r.allowed).length, 200);
});

void test('redis limit store: a failed batch call fails every op in it (the caller falls back), and the next turn works', async () => {
  const local = await startRedis();
  const c = createRedisClient(local.url, { commandTimeoutMs: 300 });
  try {
    assert.equal(await connectWithin(c, 5000), true);
    const store = new RedisLimitStore(c);
    const req = { rateKey: uniqueKey('rk'), limitPerMinute: 60, quotaKey: uniqueKey('q'), quotaLimit: 10 };
    local.pause();
    const outcomes = await Promise.allSettled([store.admit(req), store.incrementQuota(req.quotaKey, 1), store.admit(req)]);
    assert.deepEqual(outcomes.map((o) => o.status), ['rejected', 'rejected', 'rejected']);
    local.resume();
    assert.equal((await store.admit(req)).allowed, true);
  } finally {
    await closeRedisClient(c);
    await local.cleanup();
  }
});

type BatchStep =
  | { readonly kind: 'admit'; readonly rate: number; readonly quota: number; readonly limit: number; readonly quotaLimit: number; readonly atMs: number }
  | { readonly kind: 'charge'; readonly quota: number; readonly tokens: number };

void test('redis limit store: a turn of mixed admissions and charges on shared keys decides exactly as the in-memory GCRA does op by op, and leaves the same buckets', async () => {
  const step: fc.Arbitrary<BatchStep> = fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('admit' as const), rate: fc.nat(2), quota: fc.nat(1), limit: fc.constantFrom(1, 2, 3, 7, 60), quotaLimit: fc.constantFrom(0, 4, 12, Number.MAX_SAFE_INTEGER), atMs: fc.nat(90_000) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('charge' as const), quota: fc.nat(1), tokens: fc.nat(6) }) },
  );
  await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 40 }), async (steps) => {
    const store = new RedisLimitStore(client);
    const memory = new MemoryLimitStore();
    const rateKeys = [uniqueKey('rk'), uniqueKey('rk'), uniqueKey('rk')];
    const quotaKeys = [uniqueKey('qk'), uniqueKey('qk')];
    const base = Date.now();
    // Request times only move forward, as a turn's requests do.
    let last = 0;
    const requests = steps.map((s) => {
      if (s.kind === 'charge') return s;
      last = Math.max(last, s.atMs);
      return { ...s, req: { rateKey: rateKeys[s.rate] ?? '', limitPerMinute: s.limit, quotaKey: quotaKeys[s.quota] ?? '', quotaLimit: s.quotaLimit, now: base + last } };
    });
    try {
      const before = await evalCalls();
      // All issued in one turn: one script call (none when the turn is only charges of 0 tokens, which need no op).
      const fromRedis = await Promise.all(requests.map((r) => ('req' in r ? store.admit(r.req) : store.incrementQuota(quotaKeys[r.quota] ?? '', r.tokens))));
      const calls = requests.some((r) => 'req' in r || r.tokens > 0) ? 1 : 0;
      assert.equal(await evalCalls(), before + calls, 'one script call for the turn');
      const lastAllowedReset = new Map<string, number>();
      requests.forEach((r, i) => {
        if (!('req' in r)) {
          memory.addTokensSync(quotaKeys[r.quota] ?? '', r.tokens);
          return;
        }
        const expected = memory.admitSync(r.req);
        assert.deepEqual(fromRedis[i], expected, `op ${i}`);
        if (expected.allowed) lastAllowedReset.set(r.req.rateKey, expected.resetMs);
      });
      for (const key of rateKeys) {
        const pttl = await client.pttl(`kg:rl:${key}`);
        const reset = lastAllowedReset.get(key);
        if (reset === undefined) assert.equal(pttl, -2, 'a bucket no request was admitted from is not written');
        else assert.ok(pttl > 0 && pttl <= Math.ceil(reset) && pttl > Math.ceil(reset) - 1000, `bucket expiry ${pttl} ms for a reset of ${reset} ms`);
      }
      // What was stored: the next request of each key and quota is decided alike, a turn of its own each.
      for (const rateKey of rateKeys) {
        for (const quotaKey of quotaKeys) {
          const req = { rateKey, limitPerMinute: 3, quotaKey, quotaLimit: 12, now: base + last + 1 };
          assert.deepEqual(await store.admit(req), memory.admitSync(req), `next admission of ${rateKey} / ${quotaKey}`);
        }
      }
    } finally {
      memory.close();
    }
  }), { numRuns: 40 });
});

void test('redis limits script: an op naming a key position outside KEYS, or with fields missing, is refused whole and writes nothing', async () => {
  const key = `kg:rl:${uniqueKey('rk')}`;
  const quota = `kg:q:${uniqueKey('qk')}`;
  const now = Date.now() * 1000;
  for (const packed of [`a:1:3:${now}:1000:60:10`, `a:1:2:${now}:1000:60`, 't:3:5:1000', 't:1:5', `a:1:2:${now}:1000:60:10;x:1`]) {
    await assert.rejects(client.eval(LIMITS_BATCH_LUA, 2, key, quota, packed), /kgents limits script: (malformed|unknown) op/, packed);
  }
  assert.equal(await client.exists(key, quota), 0);
  assert.deepEqual(await client.eval(LIMITS_BATCH_LUA, 2, key, quota, `t:2:5:100000;a:1:2:${now}:1000000:60:10`), [5, 1, '', 59, 1_000_000, 0, 5]);
});
