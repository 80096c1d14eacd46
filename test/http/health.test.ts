import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { testApp, type TestApp } from '../harness/app.js';

describe('health endpoints', () => {
  let t: TestApp;
  before(async () => {
    t = await testApp();
  });
  after(async () => t.close());

  test('GET /health reports ok, the version and uptime without touching dependencies', async () => {
    const res = await t.app.inject('/health');
    assert.equal(res.statusCode, 200);
    const body = res.json<{ status: string; version: string; uptime_s: number }>();
    assert.equal(body.status, 'ok');
    assert.match(body.version, /^\d+\.\d+\.\d+/);
    assert.equal(typeof body.uptime_s, 'number');
  });

  test('every response carries an X-Request-Id, echoing a valid incoming one', async () => {
    const generated = await t.app.inject('/health');
    assert.match(String(generated.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    const echoed = await t.app.inject({ url: '/health', headers: { 'x-request-id': 'trace-abc.123' } });
    assert.equal(echoed.headers['x-request-id'], 'trace-abc.123');
    const invalid = await t.app.inject({ url: '/nope', headers: { 'x-request-id': 'bad id with spaces' } });
    assert.notEqual(invalid.headers['x-request-id'], 'bad id with spaces');
    assert.equal(invalid.json<{ error: { request_id: string } }>().error.request_id, invalid.headers['x-request-id']);
  });

  test('GET /ready is 200 once the app is ready and 503 "draining" after drain starts', async () => {
    const local = await testApp();
    try {
      assert.deepEqual((await local.app.inject('/ready')).json(), { ready: true });
      local.lifecycle.drain();
      const res = await local.app.inject('/ready');
      assert.equal(res.statusCode, 503);
      assert.deepEqual(res.json(), { ready: false, reason: 'draining' });
      assert.equal(res.headers.connection, 'close');
    } finally {
      await local.close();
    }
  });

  test('GET /health/saas is ok when every component is ok and degraded when any is not', async () => {
    const local = await testApp();
    try {
      let redis: { status: 'ok' | 'down'; mode: string } = { status: 'ok', mode: 'redis' };
      local.health.register('redis', () => redis);
      local.health.register('nats', () => ({ status: 'ok', mode: 'jetstream' }));
      const ok = (await local.app.inject('/health/saas')).json<{ status: string; components: Record<string, { status: string }> }>();
      assert.equal(ok.status, 'ok');
      assert.equal(ok.components.redis?.status, 'ok');
      redis = { status: 'down', mode: 'memory' };
      const degraded = (await local.app.inject('/health/saas')).json<{ status: string; components: Record<string, { mode: string }> }>();
      assert.equal(degraded.status, 'degraded');
      assert.equal(degraded.components.redis?.mode, 'memory');
    } finally {
      await local.close();
    }
  });

  test('GET /health/saas answers at once even when a component source throws', async () => {
    const local = await testApp();
    try {
      local.health.register('broken', () => {
        throw new Error('probe exploded');
      });
      const started = performance.now();
      const res = await local.app.inject('/health/saas');
      assert.ok(performance.now() - started < 200);
      assert.equal(res.statusCode, 200);
      assert.equal(res.json<{ status: string }>().status, 'degraded');
    } finally {
      await local.close();
    }
  });

  test('GET /metrics exposes request counts and latency by route and status, and process metrics', async () => {
    await t.app.inject('/health');
    await t.app.inject('/no-such-route');
    const res = await t.app.inject('/metrics');
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /text\/plain/);
    const text = res.body;
    assert.match(text, /kgents_http_requests_total\{[^}]*route="\/health"[^}]*status="200"[^}]*\} \d+/);
    assert.match(text, /kgents_http_requests_total\{[^}]*route="unmatched"[^}]*status="404"/);
    assert.match(text, /kgents_http_request_duration_seconds_bucket\{/);
    assert.match(text, /kgents_process_resident_memory_bytes/);
    assert.match(text, /kgents_nodejs_heap_size_used_bytes/);
    assert.match(text, /kgents_ready\{[^}]*\} 1/);
  });
});
