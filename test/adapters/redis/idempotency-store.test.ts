import { strict as assert } from 'node:assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { Redis } from 'ioredis';
import { closeRedisClient, connectWithin, createRedisClient } from '../../../src/adapters/redis/client.js';
import { RedisIdempotencyStore } from '../../../src/adapters/redis/idempotency-store.js';
import { TRICKY_BODY, idempotencyStoreContract, uniqueKey } from '../memory/contracts.js';
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

idempotencyStoreContract('redis idempotency store', {
  make: () => Promise.resolve(new RedisIdempotencyStore(client)),
  advance: (ms) => sleep(ms),
});

void test('redis idempotency store: records are hashes under kg:idem: with the lock TTL, then the response TTL', async () => {
  const store = new RedisIdempotencyStore(client);
  const key = uniqueKey('tenant-a:idem');
  await store.begin(key, 'fp', 30);
  assert.deepEqual(await client.hgetall(`kg:idem:${key}`), { state: 'in_progress', fp: 'fp' });
  const lockTtl = await client.pttl(`kg:idem:${key}`);
  assert.ok(lockTtl > 29_000 && lockTtl <= 30_000, `lock pttl ${lockTtl}`);
  await store.complete(key, 'fp', { status: 200, headers: { a: 'b' }, body: TRICKY_BODY }, 86_400);
  const stored = await client.hgetall(`kg:idem:${key}`);
  assert.equal(stored.state, 'done');
  assert.equal(stored.headers, '{"a":"b"}');
  assert.equal(stored.body, TRICKY_BODY);
  assert.ok((await client.pttl(`kg:idem:${key}`)) > 86_399_000);
});

void test('redis idempotency store: concurrent begins from separate connections start exactly once', async () => {
  const clients = Array.from({ length: 5 }, () => createRedisClient(redis.url, { commandTimeoutMs: 1000 }));
  try {
    for (const c of clients) assert.equal(await connectWithin(c, 5000), true);
    const stores = clients.map((c) => new RedisIdempotencyStore(c));
    const key = uniqueKey('race');
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => stores[i % stores.length]!.begin(key, 'fp', 30)));
    assert.equal(results.filter((r) => r.state === 'started').length, 1);
  } finally {
    await Promise.all(clients.map((c) => closeRedisClient(c)));
  }
});
