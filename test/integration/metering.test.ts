import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import type { ConfigVarName } from '../../src/config/schema.js';
import { startApi, type ApiInstance } from '../harness/api-instance.js';
import { createKey } from '../harness/fixtures.js';
import { startOpenMeterStandIn } from '../harness/openmeter-standin.js';
import { startNats, tempDir } from '../harness/servers.js';
import { readAllUsage, tally } from '../harness/usage.js';


function api(env: Partial<Record<ConfigVarName, string>>): Promise<ApiInstance> {
  return startApi({ RATE_LIMITS: 'free=60,pro=600,enterprise=1000000', ...env }, 'metering');
}

interface LoadResult {
  readonly ok: string[];
  readonly refused: Map<string, number>;
  readonly other: string[];
}

/** Sends invoke calls with unique request ids from `workers` concurrent loops until stop() resolves. */
function steadyLoad(app: FastifyInstance, key: string, workers: number): { stop(): Promise<LoadResult> } {
  const result: LoadResult = { ok: [], refused: new Map(), other: [] };
  let running = true;
  let n = 0;
  const loops = Array.from({ length: workers }, async (_, w) => {
    while (running) {
      const id = `w${w}-${n++}`;
      const res = await app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': key, 'x-request-id': id }, payload: { path: 'world.house.manifest' } });
      if (res.statusCode === 200) result.ok.push(id);
      else if (res.statusCode === 503) {
        const code = res.json<{ error: { code: string } }>().error.code;
        result.refused.set(code, (result.refused.get(code) ?? 0) + 1);
      } else result.other.push(`${res.statusCode} ${res.body}`);
      await sleep(2);
    }
  });
  return { stop: async () => {
    running = false;
    await Promise.all(loops);
    return result;
  } };
}

function assertExactlyOnce(label: string, answered: readonly string[], events: readonly { data: { request_id: string } }[]): void {
  const ids = events.map((e) => e.data.request_id);
  const { unique, duplicates } = tally(ids);
  const missing = answered.filter((id) => !ids.includes(id));
  console.log(`# ${label}: ${answered.length} answered 2xx, ${events.length} events in USAGE, ${duplicates.length} duplicated, ${missing.length} missing`);
  assert.deepEqual(duplicates, [], 'no event is in USAGE twice');
  assert.deepEqual(missing, [], 'every 2xx-answered call has its event');
  assert.equal(unique, answered.length, 'no event without a 2xx answer');
}

describe('metering proofs on real nats-server', () => {
  test('proof 1: N billable calls with NATS healthy leave exactly N events in USAGE, and OpenMeter receives exactly N', async () => {
    const nats = await startNats();
    const dir = tempDir();
    const openmeter = await startOpenMeterStandIn({ apiKey: 'om-test-key' });
    const a = await api({ NATS_URLS: nats.url, DATA_DIR: dir.dir, OPENMETER_URL: openmeter.url, OPENMETER_API_KEY: 'om-test-key' });
    try {
      const { key } = await createKey(a.services.keys, 'acme', 'enterprise', ['write']);
      const answered: string[] = [];
      await Promise.all(Array.from({ length: 300 }, async (_, i) => {
        const res = await a.app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': key, 'x-request-id': `p1-${i}` }, payload: { path: 'world.house.manifest' } });
        assert.equal(res.statusCode, 200, res.body);
        answered.push(`p1-${i}`);
      }));
      const events = await readAllUsage(nats.url);
      assertExactlyOnce('proof 1', answered, events);
      const e = events[0];
      assert.ok(e);
      assert.equal(e.specversion, '1.0');
      assert.equal(e.subject, 'acme');
      assert.equal(e.type, 'agentese.invoke');
      assert.equal(e.source, 'kgents-api');
      assert.ok(e.data.tokens >= 1);
      const metrics = (await a.app.inject('/metrics')).body;
      assert.match(metrics, /kgents_usage_events_total\{[^}]*outcome="published"[^}]*\} 300/);
      const deadline = Date.now() + 20_000;
      while (openmeter.received().length < 300 && Date.now() < deadline) await sleep(50);
      const exported = openmeter.received();
      console.log(`# proof 1: OpenMeter stand-in holds ${exported.length} unique events from ${openmeter.deliveries} deliveries`);
      assert.equal(exported.length, 300);
      assert.deepEqual(new Set(exported.map((e) => e.id)), new Set(events.map((e) => e.id)));
      const health = (await a.app.inject('/health/saas')).json<{ status: string; components: { exporter: { status: string } } }>();
      assert.equal(health.components.exporter.status, 'ok');
    } finally {
      await a.close();
      await openmeter.close();
      await nats.cleanup();
      dir.remove();
    }
  });

  test('GET /v1/usage aggregates the calling tenant\'s events exactly as the stream holds them', async () => {
    const nats = await startNats();
    const dir = tempDir();
    const a = await api({ NATS_URLS: nats.url, DATA_DIR: dir.dir });
    try {
      const acme = (await createKey(a.services.keys, 'acme', 'enterprise', ['read', 'write'])).key;
      const beta = (await createKey(a.services.keys, 'beta', 'enterprise', ['read', 'write'])).key;
      const admin = (await createKey(a.services.keys, 'ops', 'enterprise', ['admin'])).key;
      const invoke = (key: string, path: string) => a.app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': key }, payload: { path } });
      for (let i = 0; i < 7; i++) assert.equal((await invoke(acme, 'world.house.manifest')).statusCode, 200);
      for (let i = 0; i < 3; i++) assert.equal((await invoke(acme, 'concept.justice.witness')).statusCode, 200);
      for (let i = 0; i < 5; i++) assert.equal((await invoke(beta, 'world.house.manifest')).statusCode, 200);
      const streamEvents = (await readAllUsage(nats.url)).filter((e) => e.subject === 'acme');
      const streamTokens = streamEvents.reduce((n, e) => n + e.data.tokens, 0);
      const get = (key: string, query: string) => a.app.inject({ url: `/v1/usage?${query}`, headers: { 'x-api-key': key } });
      type Report = { tenant: string; total: { events: number; tokens: number }; groups: { key: string; events: number; tokens: number }[] };
      const byPath = (await get(acme, 'group_by=path')).json<Report>();
      assert.equal(byPath.tenant, 'acme');
      assert.deepEqual(byPath.total, { events: 10, tokens: streamTokens });
      assert.deepEqual(byPath.groups.map((g) => [g.key, g.events]), [['concept.justice.witness', 3], ['world.house.manifest', 7]]);
      const byDay = (await get(acme, 'group_by=day')).json<Report>();
      assert.equal(byDay.groups.reduce((n, g) => n + g.events, 0), 10);
      const byType = (await get(acme, '')).json<Report>();
      assert.deepEqual(byType.groups.map((g) => [g.key, g.events]), [['agentese.invoke', 10]]);
      const forbidden = await get(acme, 'tenant=beta');
      assert.equal(forbidden.statusCode, 403);
      const asAdmin = (await get(admin, 'tenant=beta')).json<Report>();
      assert.equal(asAdmin.total.events, 5);
      const empty = (await get(acme, `from=${encodeURIComponent('2020-01-01T00:00:00Z')}&to=${encodeURIComponent('2020-02-01T00:00:00Z')}`)).json<Report>();
      assert.equal(empty.total.events, 0);
      assert.equal((await get(acme, 'from=yesterday')).statusCode, 400);
    } finally {
      await a.close();
      await nats.cleanup();
      dir.remove();
    }
  });

  test('a retried call with the same Idempotency-Key that re-runs its handler is not counted twice', async () => {
    const nats = await startNats();
    const dir = tempDir();
    const a = await api({ NATS_URLS: nats.url, DATA_DIR: dir.dir });
    try {
      const { key } = await createKey(a.services.keys, 'acme', 'enterprise', ['write']);
      const call = () => a.app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': key, 'idempotency-key': 'retry-me' }, payload: { path: 'world.house.manifest' } });
      assert.equal((await call()).statusCode, 200);
      // The first attempt's stored response is lost (as when an instance dies before storing it): the handler runs again.
      await a.services.limits.idempotency.abandon('acme:retry-me');
      await a.services.limits.client?.del('kg:idem:acme:retry-me');
      assert.equal((await call()).statusCode, 200);
      const events = await readAllUsage(nats.url);
      assert.equal(events.length, 1);
    } finally {
      await a.close();
      await nats.cleanup();
      dir.remove();
    }
  });

  test('proof 2: NATS stopped for a while under steady load: every call answered, breaker opens, queue drains, exactly one event per 2xx', async () => {
    const outageMs = Number(process.env.METERING_OUTAGE_MS ?? 20_000);
    const nats = await startNats();
    const dir = tempDir();
    const a = await api({ NATS_URLS: nats.url, DATA_DIR: dir.dir, PUBLISH_TIMEOUT_MS: '300', BREAKER_RESET_TIMEOUT_MS: '1000' });
    try {
      const { key } = await createKey(a.services.keys, 'acme', 'enterprise', ['write']);
      const load = steadyLoad(a.app, key, 8);
      await sleep(500);
      await nats.stop();
      const stoppedAt = performance.now();
      let maxDepth = 0;
      while (performance.now() - stoppedAt < outageMs) {
        maxDepth = Math.max(maxDepth, a.services.meter.status().fallback_queue_depth);
        await sleep(100);
      }
      const during = (await a.app.inject('/health/saas')).json<{ status: string; components: { nats: { circuit: string; mode: string; fallback_queue_depth: number } } }>();
      assert.equal(during.status, 'degraded');
      assert.equal(during.components.nats.circuit === 'open' || during.components.nats.circuit === 'half_open', true);
      assert.equal(during.components.nats.mode, 'fallback');
      assert.ok(during.components.nats.fallback_queue_depth > 0);
      await nats.start();
      const restartedAt = performance.now();
      assert.ok(await a.services.meter.drained(60_000), 'queue drains to zero');
      const drainMs = performance.now() - restartedAt;
      const result = await load.stop();
      assert.ok(await a.services.meter.drained(30_000));
      assert.deepEqual(result.other, [], 'every call is answered 2xx or a documented 503');
      const events = await readAllUsage(nats.url);
      console.log(`# proof 2: outage ${outageMs} ms, peak queue depth ${maxDepth}, drained ${drainMs.toFixed(0)} ms after restart, refused ${JSON.stringify([...result.refused])}`);
      assertExactlyOnce('proof 2', result.ok, events);
      assert.ok(a.logs.text.includes('circuit breaker opened'));
      assert.ok(a.logs.text.includes('circuit breaker closed'));
      assert.equal(a.services.meter.status().circuit, 'closed');
    } finally {
      await a.close();
      await nats.cleanup();
      dir.remove();
    }
  });

  test('when the bus is down and the fallback queue is full, billable calls get 503 ERR_METERING_UNAVAILABLE and are not charged', async () => {
    const dir = tempDir();
    const solo = await api({ DATA_DIR: dir.dir, FALLBACK_QUEUE_MAX_BYTES: String(1024 * 1024) });
    try {
      const { key } = await createKey(solo.services.keys, 'acme', 'enterprise', ['read', 'write']);
      let ok = 0;
      let refused: { statusCode: number; headers: Record<string, unknown>; json: <T>() => T } | undefined;
      for (let i = 0; i < 10_000 && !refused; i++) {
        const res = await solo.app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': key }, payload: { path: 'world.house.manifest' } });
        if (res.statusCode === 200) ok++;
        else refused = res;
      }
      assert.ok(refused, 'the queue fills up');
      assert.equal(refused.statusCode, 503);
      const body = refused.json<{ error: { code: string; message: string } }>();
      assert.equal(body.error.code, 'ERR_METERING_UNAVAILABLE');
      assert.match(body.error.message, /fallback queue is full/);
      assert.ok(Number(refused.headers['retry-after']) > 0);
      assert.equal(solo.services.meter.status().fallback_queue_depth, ok, 'every served call is queued; the refused one is not');
      const metrics = (await solo.app.inject('/metrics')).body;
      assert.match(metrics, /kgents_usage_events_total\{[^}]*outcome="refused"[^}]*\} 1/);
      console.log(`# a 1 MiB fallback queue held ${ok} usage events before refusing`);
    } finally {
      await solo.close();
      dir.remove();
    }
  });

  test('at shutdown an instance drains its fallback queue into JetStream before exiting', async () => {
    const nats = await startNats();
    const dir = tempDir();
    const a = await api({ NATS_URLS: nats.url, DATA_DIR: dir.dir, BREAKER_RESET_TIMEOUT_MS: '3600000' });
    let closed = false;
    try {
      const { key } = await createKey(a.services.keys, 'acme', 'enterprise', ['write']);
      a.services.meter.breaker.trip('test: pretend JetStream is failing');
      await Promise.all(Array.from({ length: 400 }, (_, i) => a.app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': key, 'x-request-id': `sd-${i}` }, payload: { path: 'world.house.manifest' } })));
      assert.equal(a.services.meter.status().fallback_queue_depth, 400);
      a.services.meter.breaker.forceProbe('test');
      await a.close();
      closed = true;
      assertExactlyOnce('shutdown drain', Array.from({ length: 400 }, (_, i) => `sd-${i}`), await readAllUsage(nats.url));
    } finally {
      if (!closed) await a.close();
      await nats.cleanup();
      dir.remove();
    }
  });

  test('with no NATS at all, usage waits on disk and reaches JetStream once a bus is configured', async () => {
    const dir = tempDir();
    const solo = await api({ DATA_DIR: dir.dir });
    const answered: string[] = [];

    try {
      const { key } = await createKey(solo.services.keys, 'acme', 'enterprise', ['write']);
      for (let i = 0; i < 20; i++) {
        const res = await solo.app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': key, 'x-request-id': `solo-${i}` }, payload: { path: 'world.house.manifest' } });
        assert.equal(res.statusCode, 200);
        answered.push(`solo-${i}`);
      }
      assert.equal(solo.services.meter.status().fallback_queue_depth, 20);
    } finally {
      await solo.close();
    }
    const nats = await startNats();
    const later = await api({ DATA_DIR: dir.dir, NATS_URLS: nats.url, KEY_STORE: 'file' });
    try {
      assert.ok(await later.services.meter.drained(20_000));
      assertExactlyOnce('disk to bus', answered, await readAllUsage(nats.url));
    } finally {
      await later.close();
      await nats.cleanup();
      dir.remove();
    }
  });
});
