import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { testApp } from '../harness/app.js';
import { createKey } from '../harness/fixtures.js';

interface ErrorBody { error: { code: string; details?: Record<string, unknown> } }

describe('rate limits and quotas', () => {
  test('authenticated responses carry RateLimit headers for the key tier', async () => {
    const t = await testApp({ RATE_LIMITS: 'free=5,pro=50,enterprise=500' });
    try {
      const { key } = await createKey(t.keys, 'acme', 'pro', ['read']);
      const res = await t.app.inject({ url: '/v1/agentese/resolve?path=world.house', headers: { 'x-api-key': key } });
      assert.equal(res.headers['ratelimit-limit'], '50');
      assert.equal(res.headers['ratelimit-remaining'], '49');
      assert.ok(Number(res.headers['ratelimit-reset']) >= 0);
    } finally {
      await t.close();
    }
  });

  test('past the per-minute limit a key gets 429 ERR_RATE_LIMITED with Retry-After; other keys are unaffected', async () => {
    const t = await testApp({ RATE_LIMITS: 'free=3,pro=50,enterprise=500' });
    try {
      const a = await createKey(t.keys, 'acme', 'free', ['read']);
      const b = await createKey(t.keys, 'beta', 'free', ['read']);
      const hit = (key: string) => t.app.inject({ url: '/v1/agentese/resolve?path=world.house', headers: { 'x-api-key': key } });
      for (let i = 0; i < 3; i++) assert.equal((await hit(a.key)).statusCode, 200);
      const limited = await hit(a.key);
      assert.equal(limited.statusCode, 429);
      assert.equal(limited.json<ErrorBody>().error.code, 'ERR_RATE_LIMITED');
      assert.ok(Number(limited.headers['retry-after']) >= 1);
      assert.equal(limited.headers['ratelimit-remaining'], '0');
      assert.equal((await hit(b.key)).statusCode, 200);
      const metrics = (await t.app.inject('/metrics')).body;
      assert.match(metrics, /kgents_rate_limit_decisions_total\{[^}]*decision="rate_limited"[^}]*\} 1/);
    } finally {
      await t.close();
    }
  });

  test('the tenant tier wins over the tier stored on the key (a plan change reaches existing keys)', async () => {
    const t = await testApp({ RATE_LIMITS: 'free=5,pro=50,enterprise=500' });
    try {
      const { key } = await createKey(t.keys, 'acme', 'free', ['read']);
      const tenant = t.keys.getTenant('acme');
      assert.ok(tenant);
      await t.keys.putTenant({ ...tenant, tier: 'enterprise' });
      const res = await t.app.inject({ url: '/v1/agentese/resolve?path=world.house', headers: { 'x-api-key': key } });
      assert.equal(res.headers['ratelimit-limit'], '500');
    } finally {
      await t.close();
    }
  });

  test('once the monthly token quota is used up, invoke gets 429 ERR_QUOTA_EXCEEDED but reads still work', async () => {
    const t = await testApp({ TOKEN_QUOTAS: 'free=1,pro=1000,enterprise=1000' });
    try {
      const { key } = await createKey(t.keys, 'acme', 'free', ['read', 'write']);
      const invoke = () => t.app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': key }, payload: { path: 'world.house.manifest' } });
      assert.equal((await invoke()).statusCode, 200);
      const refused = await invoke();
      assert.equal(refused.statusCode, 429);
      const body = refused.json<ErrorBody>();
      assert.equal(body.error.code, 'ERR_QUOTA_EXCEEDED');
      assert.equal(body.error.details?.quota, 1);
      assert.ok(Number(refused.headers['retry-after']) >= 1);
      const read = await t.app.inject({ url: '/v1/agentese/resolve?path=world.house', headers: { 'x-api-key': key } });
      assert.equal(read.statusCode, 200);
    } finally {
      await t.close();
    }
  });
});
