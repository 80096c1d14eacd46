import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConfigVarName } from '../../src/config/schema.js';
import { startApi, type ApiInstance } from '../harness/api-instance.js';
import { createKey } from '../harness/fixtures.js';
import { startNats, startRedis, tempDir } from '../harness/servers.js';

type Instance = ApiInstance;

function instance(name: string, env: Partial<Record<ConfigVarName, string>>): Promise<ApiInstance> {
  return startApi(env, name);
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, deadlineMs: number): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  for (;;) {
    const value = await fn();
    if (value !== undefined) return { value, ms: performance.now() - start };
    if (performance.now() - start > deadlineMs) throw new Error(`${what}: not within ${deadlineMs} ms`);
    await sleep(20);
  }
}

describe('the service on real nats-server and redis-server', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let redis: Awaited<ReturnType<typeof startRedis>>;
  let a: Instance;
  let b: Instance;
  const dirs: { remove: () => void }[] = [];

  before(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    const env = (dir: string) => ({ NATS_URLS: nats.url, REDIS_URL: redis.url, DATA_DIR: dir, RATE_LIMITS: 'free=5,pro=1000,enterprise=100000' });
    const da = tempDir();
    const db = tempDir();
    dirs.push(da, db);
    a = await instance('api-a', env(da.dir));
    b = await instance('api-b', env(db.dir));
  });

  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await Promise.all([nats?.cleanup(), redis?.cleanup()]);
    for (const d of dirs) d.remove();
  });

  const resolve = (inst: Instance, key: string) => inst.app.inject({ url: '/v1/agentese/resolve?path=world.house', headers: { 'x-api-key': key } });

  test('/health/saas reports NATS on JetStream and Redis in redis mode', async () => {
    const body = (await a.app.inject('/health/saas')).json<{ status: string; components: { nats: { status: string; mode: string }; redis: { mode: string }; key_store: { backend: string } } }>();
    assert.equal(body.status, 'ok');
    assert.equal(body.components.nats.mode, 'jetstream');
    assert.equal(body.components.redis.mode, 'redis');
    assert.equal(body.components.key_store.backend, 'nats');
  });

  test('a key created through one instance authenticates on the other', async () => {
    const { key } = await createKey(a.services.keys, 'acme', 'pro', ['read', 'write']);
    const { ms } = await until('key visible on b', async () => ((await resolve(b, key)).statusCode === 200 ? true : undefined), 2000);
    console.log(`# key creation reached the second instance in ${ms.toFixed(0)} ms`);
  });

  test('a key revoked through one instance is refused by every instance within 1 s', async () => {
    const { key, prefix } = await createKey(a.services.keys, 'acme', 'pro', ['read']);
    await until('key visible on b', async () => ((await resolve(b, key)).statusCode === 200 ? true : undefined), 2000);
    await a.services.keys.revokeKey(prefix);
    const { ms } = await until('revocation on b', async () => {
      const res = await resolve(b, key);
      return res.statusCode === 401 && res.json<{ error: { code: string } }>().error.code === 'ERR_AUTH_REVOKED_KEY' ? true : undefined;
    }, 1000);
    console.log(`# revocation reached the second instance in ${ms.toFixed(0)} ms`);
    assert.ok(ms < 1000);
  });

  test('rate limits are shared across instances through Redis', async () => {
    const { key } = await createKey(a.services.keys, 'small', 'free', ['read']);
    await until('key visible on b', async () => ((await resolve(b, key)).statusCode !== 401 ? true : undefined), 2000);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await resolve(i % 2 === 0 ? a : b, key)).statusCode);
    // One request was already spent making sure b could see the key.
    assert.deepEqual(statuses.filter((s) => s === 429).length >= 2, true, statuses.join(','));
    assert.equal(statuses.filter((s) => s === 200).length, 4, statuses.join(','));
  });

  test('an idempotent request made on one instance is replayed byte-identical by the other', async () => {
    const { key } = await createKey(a.services.keys, 'acme', 'pro', ['read', 'write']);
    await until('key visible on b', async () => ((await resolve(b, key)).statusCode === 200 ? true : undefined), 2000);
    const req = { method: 'POST' as const, url: '/v1/agentese/invoke', headers: { 'x-api-key': key, 'idempotency-key': 'cross-1' }, payload: { path: 'world.house.manifest' } };
    const first = await a.app.inject(req);
    const second = await b.app.inject(req);
    assert.equal(first.statusCode, 200);
    assert.equal(second.headers['idempotent-replayed'], 'true');
    assert.equal(second.body, first.body);
  });

  test('Redis stopped mid-test: requests keep succeeding from memory, health says so, and Redis is used again once it returns', async () => {
    const { key } = await createKey(a.services.keys, 'acme', 'pro', ['read', 'write']);
    assert.equal((await resolve(a, key)).statusCode, 200);
    await redis.stop();
    const during: number[] = [];
    for (let i = 0; i < 10; i++) during.push((await resolve(a, key)).statusCode);
    assert.deepEqual([...new Set(during)], [200]);
    const health = (await a.app.inject('/health/saas')).json<{ status: string; components: { redis: { status: string; mode: string } } }>();
    assert.equal(health.status, 'degraded');
    assert.equal(health.components.redis.mode, 'memory');
    assert.ok(a.logs.text.includes('fall back to per-instance memory'));
    const idem = await a.app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': key, 'idempotency-key': 'during-outage' }, payload: { path: 'world.house.manifest' } });
    assert.equal(idem.statusCode, 200);
    await redis.start();
    const { ms } = await until('back on redis', async () => {
      await resolve(a, key);
      const h = (await a.app.inject('/health/saas')).json<{ components: { redis: { mode: string } } }>();
      return h.components.redis.mode === 'redis' ? true : undefined;
    }, 10_000);
    console.log(`# switched back to Redis ${ms.toFixed(0)} ms after redis-server restarted`);
    assert.equal((await resolve(a, key)).statusCode, 200);
    const metrics = (await a.app.inject('/metrics')).body;
    assert.match(metrics, /kgents_dependency_mode\{[^}]*component="redis"[^}]*mode="redis"[^}]*\} 1/);
    // The outage stays visible after it ended: one switch each way.
    assert.match(metrics, /kgents_dependency_mode_switches_total\{[^}]*component="redis"[^}]*to="memory"[^}]*\} 1\n/);
    assert.match(metrics, /kgents_dependency_mode_switches_total\{[^}]*component="redis"[^}]*to="redis"[^}]*\} 1\n/);
  });
});

describe('the service with neither NATS nor Redis', () => {
  test('starts on its fallbacks: file key store, memory limits, /health/saas degraded', async () => {
    const d = tempDir();
    const inst = await instance('solo', { DATA_DIR: d.dir });
    try {
      const body = (await inst.app.inject('/health/saas')).json<{ status: string; components: { nats: { status: string; mode: string }; redis: { status: string; mode: string }; key_store: { backend: string } } }>();
      assert.equal(body.status, 'degraded');
      assert.equal(body.components.nats.mode, 'fallback');
      assert.equal(body.components.redis.status, 'disabled');
      assert.equal(body.components.redis.mode, 'memory');
      assert.equal(body.components.key_store.backend, 'file');
      const { key } = await createKey(inst.services.keys, 'solo', 'pro', ['read']);
      assert.equal((await inst.app.inject({ url: '/v1/agentese/resolve?path=world.house', headers: { 'x-api-key': key } })).statusCode, 200);
    } finally {
      await inst.close();
      d.remove();
    }
  });
});
