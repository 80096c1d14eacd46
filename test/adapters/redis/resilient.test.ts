import { strict as assert } from 'node:assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { closeRedisClient, connectWithin, createRedisClient } from '../../../src/adapters/redis/client.js';
import { type LimitBackends, type RedisBackendStatus, type RedisLimitBackend, RedisFailover, ResilientLimitStore, createLimitBackends } from '../../../src/adapters/redis/resilient.js';
import { MemoryLimitStore } from '../../../src/adapters/memory/limit-store.js';
import { uniqueKey } from '../memory/contracts.js';
import { startRedis } from '../../harness/servers.js';

async function waitFor(what: string, check: () => boolean, deadlineMs: number): Promise<number> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > deadlineMs) throw new Error(`${what}: not within ${deadlineMs} ms`);
    await sleep(20);
  }
  return Date.now() - t0;
}

const admission = (rateKey: string, quotaKey = uniqueKey('q')) => ({ rateKey, limitPerMinute: 60, quotaKey, quotaLimit: 1_000_000 });

const fastOptions = { commandTimeoutMs: 150, probeIntervalMs: 200, maxReconnectDelayMs: 200, connectDeadlineMs: 3000 };

void test('resilient stores: without a Redis URL they run on memory with status disabled', async () => {
  const backends = await createLimitBackends({ redisUrl: '' });
  try {
    assert.equal(backends.limits.mode, 'memory');
    assert.equal(backends.idempotency.mode, 'memory');
    assert.equal(backends.status().status, 'disabled');
    assert.equal(backends.status().mode, 'memory');
    assert.equal((await backends.limits.admit(admission(uniqueKey('rk')))).allowed, true);
    assert.equal((await backends.idempotency.begin(uniqueKey('k'), 'fp', 10)).state, 'started');
    assert.equal(backends.limits.journaledKeys, 0, 'nothing to send to a Redis that does not exist');
  } finally {
    await backends.close();
  }
});

void test('resilient stores: Redis stopped mid-test → calls succeed from memory → Redis back on the same port → redis mode again by itself', async () => {
  const redis = await startRedis();
  const backends = await createLimitBackends({ redisUrl: redis.url, ...fastOptions });
  const transitions: RedisBackendStatus[] = [];
  backends.onModeChange((s) => transitions.push(s));
  const raw = createRedisClient(redis.url, { commandTimeoutMs: 1000 });
  try {
    assert.equal(backends.status().status, 'ok');
    assert.equal(backends.limits.mode, 'redis');
    const key = uniqueKey('rk');
    assert.equal((await backends.limits.admit(admission(key))).remaining, 59);
    await connectWithin(raw, 3000);
    assert.notEqual(await raw.get(`kg:rl:${key}`), null, 'the admission went to Redis');

    await redis.stop();
    const t0 = Date.now();
    const during = await backends.limits.admit(admission(key));
    const idem = await backends.idempotency.begin(uniqueKey('idem'), 'fp', 10);
    assert.ok(Date.now() - t0 < 100, `served from memory in ${Date.now() - t0} ms`);
    assert.equal(during.allowed, true);
    assert.equal(during.remaining, 59, 'memory bucket starts empty: limits are per instance during an outage');
    assert.equal(idem.state, 'started');
    assert.equal(backends.limits.mode, 'memory');
    assert.equal(backends.idempotency.mode, 'memory');
    const down = backends.status();
    assert.equal(down.status, 'down');
    assert.equal(typeof down.last_error, 'string');

    await redis.start();
    const took = await waitFor('back to redis mode', () => backends.limits.mode === 'redis', 5000);
    assert.equal(backends.status().status, 'ok');
    assert.equal(backends.status().last_error, undefined);
    const key2 = uniqueKey('rk');
    await backends.limits.admit(admission(key2));
    await connectWithin(raw, 3000);
    assert.notEqual(await raw.get(`kg:rl:${key2}`), null, 'admissions go to Redis again');
    assert.deepEqual(transitions.map((s) => [s.mode, s.status]), [['memory', 'down'], ['redis', 'ok']]);
    assert.ok(took < 5000);
  } finally {
    await closeRedisClient(raw);
    await backends.close();
    await redis.cleanup();
  }
});

void test('resilient stores: a hung (SIGSTOPped) Redis costs one call the command timeout, later calls go straight to memory, and SIGCONT brings redis mode back', async () => {
  const redis = await startRedis();
  const backends = await createLimitBackends({ redisUrl: redis.url, ...fastOptions });
  try {
    assert.equal(backends.limits.mode, 'redis');
    redis.pause();
    const t0 = Date.now();
    const first = await backends.limits.admit(admission(uniqueKey('rk')));
    const firstMs = Date.now() - t0;
    assert.equal(first.allowed, true);
    assert.ok(firstMs >= 140 && firstMs < 150 + 150, `first call took ${firstMs} ms (timeout 150)`);
    assert.equal(backends.limits.mode, 'memory');
    assert.match(backends.status().last_error ?? '', /timed out/);
    const t1 = Date.now();
    for (let i = 0; i < 20; i++) await backends.limits.admit(admission(uniqueKey('rk')));
    assert.equal((await backends.idempotency.begin(uniqueKey('k'), 'fp', 10)).state, 'started');
    assert.ok(Date.now() - t1 < 100, `21 calls in memory mode took ${Date.now() - t1} ms`);
    await sleep(1000);
    assert.equal(backends.limits.mode, 'memory', 'probes time out while the server is stopped');
    assert.ok(backends.failover.reconnectsForced >= 1, 'the silent connection was replaced');

    redis.resume();
    await waitFor('back to redis mode after SIGCONT', () => backends.limits.mode === 'redis', 3000);
  } finally {
    redis.resume();
    await backends.close();
    await redis.cleanup();
  }
});

void test('resilient stores: a Redis that is down at startup is used once it comes up', async () => {
  const redis = await startRedis();
  await redis.stop();
  const backends = await createLimitBackends({ redisUrl: redis.url, ...fastOptions, connectDeadlineMs: 300 });
  try {
    assert.equal(backends.status().status, 'down');
    assert.equal(backends.limits.mode, 'memory');
    assert.equal((await backends.limits.admit(admission(uniqueKey('rk')))).allowed, true);
    await redis.start();
    await waitFor('redis mode once the server is up', () => backends.limits.mode === 'redis', 5000);
  } finally {
    await backends.close();
    await redis.cleanup();
  }
});

void test('resilient stores: tokens counted during an outage are added to Redis on recovery', async () => {
  const redis = await startRedis();
  const backends = await createLimitBackends({ redisUrl: redis.url, ...fastOptions });
  const raw = createRedisClient(redis.url, { commandTimeoutMs: 1000 });
  try {
    const quotaKey = uniqueKey('tenant:2026-11');
    await backends.limits.addTokens(quotaKey, 700);
    redis.pause();
    await backends.limits.addTokens(quotaKey, 50); // times out → memory, journaled
    await backends.limits.addTokens(quotaKey, 25); // memory mode, journaled
    assert.equal(backends.limits.mode, 'memory');
    assert.equal(backends.limits.journaledKeys, 1);
    // The outage-time quota check starts from the usage last seen in Redis.
    const during = await backends.limits.admit({ rateKey: uniqueKey('rk'), limitPerMinute: 60, quotaKey, quotaLimit: 775 });
    assert.equal(during.quotaUsed, 775);
    assert.equal(during.reason, 'quota');

    redis.resume();
    await waitFor('recovery', () => backends.limits.mode === 'redis', 3000);
    assert.equal(backends.limits.journaledKeys, 0);
    await connectWithin(raw, 3000);
    // 700 + 25 for sure; the timed-out INCRBY of 50 ran when the server resumed, and was journaled too.
    assert.equal(await raw.get(`kg:q:${quotaKey}`), String(700 + 50 + 25 + 50));
  } finally {
    redis.resume();
    await closeRedisClient(raw);
    await backends.close();
    await redis.cleanup();
  }
});

void test('resilient stores: a request begun in memory during an outage and completed after recovery is replayable from Redis', async () => {
  const redis = await startRedis();
  const backends = await createLimitBackends({ redisUrl: redis.url, ...fastOptions });
  try {
    const key = uniqueKey('tenant:idem');
    await redis.stop();
    assert.equal((await backends.idempotency.begin(key, 'fp', 30)).state, 'started');
    assert.equal(backends.idempotency.mode, 'memory');
    await redis.start();
    await waitFor('recovery', () => backends.idempotency.mode === 'redis', 5000);
    await backends.idempotency.complete(key, 'fp', { status: 200, headers: {}, body: '{"done":1}' }, 60);
    assert.deepEqual(await backends.idempotency.begin(key, 'fp', 30), {
      state: 'replay',
      response: { status: 200, headers: {}, body: '{"done":1}' },
    });
    await backends.idempotency.abandon(key);
    assert.equal((await backends.idempotency.begin(key, 'fp', 30)).state, 'replay');
  } finally {
    await backends.close();
    await redis.cleanup();
  }
});

void test('resilient stores: caller mistakes are rethrown and do not switch to memory', async () => {
  const redis = await startRedis();
  let backends: LimitBackends | undefined;
  try {
    backends = await createLimitBackends({ redisUrl: redis.url, ...fastOptions });
    await assert.rejects(backends.limits.admit({ ...admission(uniqueKey('rk')), limitPerMinute: 0 }), RangeError);
    await assert.rejects(backends.idempotency.begin(uniqueKey('k'), 'fp', -1), RangeError);
    assert.equal(backends.limits.mode, 'redis');
  } finally {
    await backends?.close();
    await redis.cleanup();
  }
});

void test('resilient stores: 50 concurrent begins with one key start once, in redis mode and in memory mode', async () => {
  const redis = await startRedis();
  const backends = await createLimitBackends({ redisUrl: redis.url, ...fastOptions });
  try {
    const race = async (): Promise<number> => {
      const key = uniqueKey('race');
      const results = await Promise.all(Array.from({ length: 50 }, () => backends.idempotency.begin(key, 'fp', 30)));
      return results.filter((r) => r.state === 'started').length;
    };
    assert.equal(await race(), 1);
    await redis.stop();
    await backends.limits.admit(admission(uniqueKey('rk')));
    assert.equal(backends.idempotency.mode, 'memory');
    assert.equal(await race(), 1);
  } finally {
    await backends.close();
    await redis.cleanup();
  }
});

void test('resilient limits: a Redis backend that throws instead of rejecting falls back to memory like one that rejects; a caller mistake still reaches the caller', async () => {
  const redis = await startRedis();
  const client = createRedisClient(redis.url, { commandTimeoutMs: 1000 });
  const failover = new RedisFailover(client, { probeIntervalMs: 60_000 });
  const memory = new MemoryLimitStore();
  let behaviour: 'throw' | 'caller-mistake' | 'work' = 'throw';
  const act = <T>(value: T): Promise<T> => {
    if (behaviour === 'throw') throw new Error('socket gone');
    if (behaviour === 'caller-mistake') throw new RangeError('limitPerMinute must be positive');
    return Promise.resolve(value);
  };
  const backend: RedisLimitBackend = {
    mode: 'redis',
    admit: () => act({ allowed: true, limit: 60, remaining: 59, resetS: 1, retryAfterS: 0, quotaUsed: 0, resetMs: 1000, retryAfterMs: 0 }),
    addTokens: () => act(undefined),
    incrementQuota: (_key, tokens) => act(tokens),
  };
  try {
    assert.equal(await connectWithin(client, 5000), true);
    assert.equal(await failover.probeNow(), true);
    const limits = new ResilientLimitStore(backend, memory, failover);
    const quotaKey = uniqueKey('qk');
    await limits.addTokens(quotaKey, 5);
    assert.equal(failover.mode, 'memory', 'the throw counted as a Redis failure');
    const decided = await limits.admit({ ...admission(uniqueKey('rk')), quotaKey });
    assert.deepEqual([decided.allowed, decided.quotaUsed], [true, 5], 'answered from memory, with the tokens charged there');
    assert.equal(limits.journaledKeys, 1, 'the tokens wait to be added to Redis');
    behaviour = 'work';
    assert.equal(await failover.probeNow(), true);
    assert.equal(limits.journaledKeys, 0, 'added to Redis on recovery');
    behaviour = 'caller-mistake';
    await assert.rejects(limits.admit(admission(uniqueKey('rk'))), RangeError);
    await assert.rejects(limits.addTokens(quotaKey, 1), RangeError);
    assert.equal(failover.mode, 'redis', 'a caller mistake says nothing about Redis');
  } finally {
    failover.close();
    memory.close();
    await closeRedisClient(client);
    await redis.cleanup();
  }
});
