import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../src/adapters/local/ports.js';
import type { ConfigVarName } from '../../src/config/schema.js';
import { startApi, type ApiInstance } from '../harness/api-instance.js';
import { createKey } from '../harness/fixtures.js';
import { startOtlpStandIn, type OtlpStandIn, type ReceivedSpan } from '../harness/otlp-standin.js';
import { startNats, startRedis, tempDir } from '../harness/servers.js';

// Budget: ~15 s (real nats-server and redis-server; a hanging collector is cut off by shutdown's 2 s deadline).

const INVOKE = JSON.stringify({ path: 'world.house.manifest', observer: { archetype: 'architect' }, kwargs: {} });
const CALLER_TRACE = '0af7651916cd43dd8448eb211c80319c';
const CALLER_SPAN = 'b7ad6b7169203331';

async function until<T>(what: string, fn: () => T | undefined, deadlineMs = 10_000): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${deadlineMs} ms`);
    await sleep(20);
  }
}

function metric(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN;
}

describe('OpenTelemetry tracing of the API', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let redis: Awaited<ReturnType<typeof startRedis>>;
  const dirs: { remove: () => void }[] = [];
  const closers: (() => Promise<void>)[] = [];

  async function api(name: string, env: Partial<Record<ConfigVarName, string>>): Promise<ApiInstance> {
    const d = tempDir();
    dirs.push(d);
    const inst = await startApi({ NATS_URLS: nats.url, REDIS_URL: redis.url, DATA_DIR: d.dir, RATE_LIMITS: 'free=60,pro=100000,enterprise=100000', ...env }, name);
    closers.push(() => inst.close());
    return inst;
  }

  before(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
  });

  after(async () => {
    for (const close of closers) await close().catch(() => undefined);
    await Promise.all([nats?.cleanup(), redis?.cleanup()]);
    for (const d of dirs) d.remove();
  });

  describe('with a working collector', () => {
    let collector: OtlpStandIn;
    let inst: ApiInstance;
    let key: string;

    before(async () => {
      collector = await startOtlpStandIn();
      closers.push(() => collector.close());
      inst = await api('traced', { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_BSP_SCHEDULE_DELAY: '50', LOG_REQUESTS: 'all', OTEL_SERVICE_NAME: 'kgents-api-test' });
      ({ key } = await createKey(inst.services.keys, 'tracing', 'pro', ['read', 'write']));
    });

    test('an invoke continues the caller\'s trace: server span, Redis and JetStream child spans, and the log line share its trace id', async () => {
      const res = await inst.app.inject({
        method: 'POST', url: '/v1/agentese/invoke', payload: INVOKE,
        headers: { 'x-api-key': key, 'content-type': 'application/json', traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01`, tracestate: 'vendor=abc' },
      });
      assert.equal(res.statusCode, 200, res.body);
      const server = await until('server span', () => collector.spans.find((s) => s.traceId === CALLER_TRACE && s.kind === 2));
      assert.equal(server.parentSpanId, CALLER_SPAN);
      assert.equal(server.name, 'POST /v1/agentese/invoke');
      assert.equal(server.attributes['http.route'], '/v1/agentese/invoke');
      assert.equal(server.attributes['http.request.method'], 'POST');
      assert.equal(server.attributes['http.response.status_code'], 200);
      assert.equal(server.attributes['kgents.tenant'], 'tracing');
      assert.equal(server.resource['service.name'], 'kgents-api-test');
      assert.equal(server.statusCode, 0);
      assert.equal(res.headers.traceresponse, `00-${CALLER_TRACE}-${server.spanId}-01`);

      const children = await until('child spans', () => {
        const c = collector.spans.filter((s) => s.traceId === CALLER_TRACE && s.parentSpanId === server.spanId);
        return c.length >= 3 ? c : undefined;
      });
      const byName = new Map<string, ReceivedSpan>(children.map((c) => [c.name, c]));
      assert.deepEqual([...byName.keys()].sort(), ['limits.addTokens', 'limits.admit', 'usage.record']);
      assert.equal(byName.get('limits.admit')?.attributes['kgents.store.mode'], 'redis');
      assert.equal(byName.get('usage.record')?.attributes['kgents.usage.outcome'], 'published');
      assert.equal(byName.get('usage.record')?.kind, 4);
      for (const c of children) {
        assert.ok(c.startNs >= server.startNs && c.endNs <= server.endNs, `${c.name} lies within the server span`);
      }

      const line = inst.logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'request completed' && l.trace_id === CALLER_TRACE);
      assert.ok(line, 'the request\'s log line carries the caller\'s trace id');
      assert.equal(line.span_id, server.spanId);
      assert.deepEqual(collector.malformed, []);
    });

    test('a request without traceparent starts a new trace; an unsampled caller is honoured and still logged with its trace id', async () => {
      const fresh = await inst.app.inject({ url: '/health' });
      const tr = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(fresh.headers.traceresponse));
      assert.ok(tr, String(fresh.headers.traceresponse));
      const span = await until('new root span', () => collector.spans.find((s) => s.traceId === tr[1]));
      assert.equal(span.parentSpanId, undefined);
      assert.equal(span.name, 'GET /health');

      const unsampledTrace = '1'.repeat(32);
      const before = collector.spans.length;
      const res = await inst.app.inject({ url: '/nowhere', headers: { traceparent: `00-${unsampledTrace}-${CALLER_SPAN}-00` } });
      assert.equal(res.statusCode, 404);
      assert.match(String(res.headers.traceresponse), new RegExp(`^00-${unsampledTrace}-[0-9a-f]{16}-00$`));
      const line = inst.logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.trace_id === unsampledTrace);
      assert.ok(line, 'the log line of an unsampled request still has its trace id');
      await sleep(300);
      assert.equal(collector.spans.slice(before).filter((s) => s.traceId === unsampledTrace).length, 0, 'unsampled: no span exported');
    });

    test('span export metrics appear in /metrics', async () => {
      const text = (await inst.app.inject('/metrics')).body;
      assert.ok(metric(text, 'kgents_tracing_spans_exported_total') > 0, 'exported spans counted');
      assert.equal(metric(text, 'kgents_tracing_spans_dropped_total', 'reason="queue_full"'), 0);
      assert.ok(text.includes('kgents_tracing_queue_spans'));
    });
  });

  for (const fault of ['hanging', 'refusing'] as const) {
    test(`a ${fault} collector never slows or fails requests; the queue stays at its cap and drops are counted`, async () => {
      let endpoint: string;
      let collector: OtlpStandIn | undefined;
      if (fault === 'hanging') {
        collector = await startOtlpStandIn('hang');
        closers.push(() => collector?.close() ?? Promise.resolve());
        endpoint = collector.url;
      } else {
        endpoint = `http://127.0.0.1:${await freePort()}`;
      }
      const inst = await api(`faulty-${fault}`, {
        OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_MAX_QUEUE_SIZE: '40', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '10',
        OTEL_BSP_SCHEDULE_DELAY: '20', OTEL_EXPORTER_OTLP_TIMEOUT: '60000',
      });
      const { key } = await createKey(inst.services.keys, `t-${fault}`, 'pro', ['read', 'write']);
      let slowest = 0;
      for (let i = 0; i < 150; i++) {
        const start = performance.now();
        const res = await inst.app.inject({ method: 'POST', url: '/v1/agentese/invoke', payload: INVOKE, headers: { 'x-api-key': key, 'content-type': 'application/json' } });
        slowest = Math.max(slowest, performance.now() - start);
        assert.equal(res.statusCode, 200, res.body);
        if (i % 30 === 0) await sleep(30);
      }
      // 150 invokes make 600 spans against a queue of 40: most must be dropped, none may wait.
      assert.ok(slowest < 2000, `slowest request ${Math.round(slowest)} ms`);
      const text = (await inst.app.inject('/metrics')).body;
      assert.ok(metric(text, 'kgents_tracing_queue_spans') <= 40, 'the queue never exceeds its cap');
      const dropped = metric(text, 'kgents_tracing_spans_dropped_total', 'reason="queue_full"') + metric(text, 'kgents_tracing_spans_dropped_total', 'reason="export_failed"');
      assert.ok(dropped >= 500, text.split('\n').filter((l) => l.includes('tracing')).join('\n'));
      assert.equal(metric(text, 'kgents_tracing_spans_exported_total'), 0);
      if (fault === 'hanging') {
        // A hanging collector fills the queue: drops are queue_full, one export is stuck in flight.
        assert.ok(metric(text, 'kgents_tracing_spans_dropped_total', 'reason="queue_full"') >= 500);
        assert.ok((collector?.hanging ?? 0) <= 1, 'one export in flight at a time');
      } else {
        assert.ok(metric(text, 'kgents_tracing_export_failures_total', 'reason="network"') >= 1);
      }
      const start = performance.now();
      await inst.close();
      const closeMs = performance.now() - start;
      assert.ok(closeMs < 8000, `shutdown took ${Math.round(closeMs)} ms; the flush deadline is 2 s`);
      if (collector) await until('the hanging export cut off at shutdown', () => (collector?.hanging === 0 ? true : undefined), 5000);
    });
  }

  test('a collector back from failing receives the spans that come after', async () => {
    const collector = await startOtlpStandIn('error');
    closers.push(() => collector.close());
    const inst = await api('recovering', { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_BSP_SCHEDULE_DELAY: '30' });
    await inst.app.inject('/health');
    await until('a failed export', () => (collector.requests > 0 ? true : undefined));
    collector.mode = 'accept';
    await until('spans after recovery', () => {
      void inst.app.inject('/health');
      return collector.spans.length > 0 ? true : undefined;
    });
    const text = (await inst.app.inject('/metrics')).body;
    assert.ok(metric(text, 'kgents_tracing_export_failures_total', 'reason="http_status"') >= 1);
    assert.ok(metric(text, 'kgents_tracing_spans_dropped_total', 'reason="export_failed"') >= 1);
  });
});
