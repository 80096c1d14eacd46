import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { closeRedisClient, connectWithin, createRedisClient, reconnectDelayMs, redactRedisUrl, redactSecrets } from '../../../src/adapters/redis/client.js';
import { startRedis } from '../../harness/servers.js';

void test('redis client: a command while disconnected fails at once instead of queueing', async () => {
  const redis = await startRedis();
  const port = redis.port;
  await redis.cleanup();
  const client = createRedisClient(`redis://127.0.0.1:${port}`, { commandTimeoutMs: 5000 });
  try {
    const started = Date.now();
    assert.equal(await connectWithin(client, 300), false, 'nothing listens on the port');
    assert.ok(Date.now() - started < 1000);
    const t0 = Date.now();
    await assert.rejects(client.get('x'), /enableOfflineQueue|Connection is closed/);
    assert.ok(Date.now() - t0 < 100, `failed after ${Date.now() - t0} ms`);
  } finally {
    await closeRedisClient(client);
  }
});

void test('redis client: a command to a hung server fails after the command timeout', async () => {
  const redis = await startRedis();
  const client = createRedisClient(redis.url, { commandTimeoutMs: 150 });
  try {
    assert.equal(await connectWithin(client, 5000), true);
    redis.pause();
    const t0 = Date.now();
    await assert.rejects(client.get('x'), /timed out/);
    const took = Date.now() - t0;
    assert.ok(took >= 140 && took < 400, `failed after ${took} ms`);
  } finally {
    redis.resume();
    await closeRedisClient(client);
    await redis.cleanup();
  }
});

void test('redis client: keeps reconnecting after a failed first connect and becomes ready when the server appears', async () => {
  const redis = await startRedis();
  await redis.stop();
  const client = createRedisClient(redis.url, { commandTimeoutMs: 500, maxReconnectDelayMs: 200 });
  try {
    assert.equal(await connectWithin(client, 300), false);
    await redis.start();
    assert.equal(await connectWithin(client, 3000), true);
    assert.equal(await client.ping(), 'PONG');
  } finally {
    await closeRedisClient(client);
    await redis.cleanup();
  }
});

void test('redis client: reconnect backoff grows by 100 ms and is capped', () => {
  assert.deepEqual([1, 2, 5, 20, 1000].map((n) => reconnectDelayMs(n)), [100, 200, 500, 2000, 2000]);
  assert.equal(reconnectDelayMs(3, 250), 250);
});

void test('redis client: passwords are redacted from URLs and messages', () => {
  assert.equal(redactRedisUrl('redis://user:s3cret@cache:6379/0'), 'redis://user:***@cache:6379/0');
  assert.equal(redactRedisUrl('rediss://:s3cret@cache:6380'), 'rediss://:***@cache:6380');
  assert.equal(redactRedisUrl('redis://cache:6379'), 'redis://cache:6379');
  assert.equal(redactSecrets('failed to reach redis://:hunter2@h:1 now'), 'failed to reach redis://:***@h:1 now');
});
