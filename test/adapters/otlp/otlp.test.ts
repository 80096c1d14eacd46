import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { encodeSpans, unixNanoString } from '../../../src/adapters/otlp/encode.js';
import { newSpanId, newTraceId } from '../../../src/adapters/otlp/ids.js';
import { OtlpTracer, tracesUrl } from '../../../src/adapters/otlp/tracer.js';
import { formatTraceparent, parseTraceparent } from '../../../src/adapters/otlp/trace-context.js';
import { decodeOtlpJson } from '../../harness/otlp-standin.js';

// Budget: < 1 s (pure functions; the tracer below never reaches its collector).

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('W3C traceparent', () => {
  test('a valid header is read with its sampled flag and tracestate', () => {
    assert.deepEqual(parseTraceparent(`00-${TRACE}-${SPAN}-01`, 'congo=t61rcWkgMzE'), { traceId: TRACE, spanId: SPAN, sampled: true, traceState: 'congo=t61rcWkgMzE' });
    assert.equal(parseTraceparent(`00-${TRACE}-${SPAN}-00`)?.sampled, false);
    assert.equal(parseTraceparent(`00-${TRACE}-${SPAN}-03`)?.sampled, true);
  });

  test('a later version with extra fields is accepted, version 00 with extra fields is not', () => {
    assert.equal(parseTraceparent(`01-${TRACE}-${SPAN}-01-what-ever`)?.traceId, TRACE);
    assert.equal(parseTraceparent(`00-${TRACE}-${SPAN}-01-extra`), undefined);
  });

  test('malformed, all-zero, upper-case, version ff or repeated headers start a new trace instead', () => {
    for (const bad of [
      '', 'garbage', `00-${TRACE}-${SPAN}`, `00-${'0'.repeat(32)}-${SPAN}-01`, `00-${TRACE}-${'0'.repeat(16)}-01`,
      `00-${TRACE.toUpperCase()}-${SPAN}-01`, `ff-${TRACE}-${SPAN}-01`, `00-${TRACE}-${SPAN}-1`,
    ]) assert.equal(parseTraceparent(bad), undefined, bad);
    assert.equal(parseTraceparent([`00-${TRACE}-${SPAN}-01`, `00-${TRACE}-${SPAN}-01`]), undefined);
  });

  test('formatting gives back what parsing reads', () => {
    const tp = formatTraceparent(TRACE, SPAN, true);
    assert.equal(tp, `00-${TRACE}-${SPAN}-01`);
    assert.deepEqual(parseTraceparent(tp), { traceId: TRACE, spanId: SPAN, sampled: true });
  });
});

describe('ids and OTLP JSON encoding', () => {
  test('generated ids are lowercase hex of the right length and differ', () => {
    const traces = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const t = newTraceId();
      assert.match(t, /^[0-9a-f]{32}$/);
      assert.match(newSpanId(), /^[0-9a-f]{16}$/);
      traces.add(t);
    }
    assert.equal(traces.size, 2000);
  });

  test('times become nanosecond strings without losing the epoch part to double rounding', () => {
    assert.equal(unixNanoString(1_764_542_400_123.5), '1764542400123500000');
    // A double holds epoch milliseconds to ~0.24 µs, so the sub-millisecond part is close, not exact.
    assert.ok(Math.abs(Number(unixNanoString(1_764_542_400_123 + 0.4567).slice(-6)) - 456_700) < 500);
    assert.equal(unixNanoString(1_764_542_400_000), '1764542400000000000');
    assert.equal(unixNanoString(1_764_542_400_000.75), '1764542400000750000');
  });

  test('the traces path is appended to the base endpoint', () => {
    assert.equal(tracesUrl('http://collector:4318'), 'http://collector:4318/v1/traces');
    assert.equal(tracesUrl('http://collector:4318/'), 'http://collector:4318/v1/traces');
    assert.equal(tracesUrl('http://gw/otlp'), 'http://gw/otlp/v1/traces');
  });

  test('an encoded batch decodes as the OTLP JSON mapping defines it (a key set twice keeps its last value)', () => {
    const body = encodeSpans({ attributes: { 'service.name': 'kgents-api' }, scopeName: 's', scopeVersion: '1' }, [{
      traceId: TRACE, spanId: SPAN, parentSpanId: undefined, traceState: undefined, name: 'GET /health', kind: 'server',
      startMs: 1_764_542_400_000.5, endMs: 1_764_542_400_002.25, attributes: ['http.response.status_code', 500, 'ratio', 0.5, 'ok', true, 'route', '/health', 'http.response.status_code', 200], errorDescription: 'HTTP 503',
    }]);
    const [span] = decodeOtlpJson(body);
    assert.ok(span);
    assert.equal(span.kind, 2);
    assert.equal(span.statusCode, 2);
    assert.equal(span.endNs - span.startNs, 1_750_000n);
    assert.deepEqual(span.attributes, { 'http.response.status_code': 200, ratio: 0.5, ok: true, route: '/health' });
    assert.equal(span.resource['service.name'], 'kgents-api');
  });
});

describe('sampling', () => {
  const tracer = (sampler: ConstructorParameters<typeof OtlpTracer>[0]['sampler'], ratio = 1): OtlpTracer => new OtlpTracer({
    endpoint: 'http://127.0.0.1:9', timeoutMs: 100, resource: { attributes: {}, scopeName: 's', scopeVersion: '1' }, sampler, ratio,
    batch: { maxQueueSize: 10, maxBatchSize: 10, scheduleDelayMs: 60_000 },
    events: { onExported: () => undefined, onDropped: () => undefined, onExportFailed: () => undefined, onRecovered: () => undefined },
  });

  test('parent-based samplers follow the caller; new traces follow the named rule', async () => {
    const t = tracer('parentbased_always_off');
    assert.equal(t.startServerSpan('x', { traceparent: `00-${TRACE}-${SPAN}-01` }).sampled, true);
    assert.equal(t.startServerSpan('x', { traceparent: `00-${TRACE}-${SPAN}-00` }).sampled, false);
    assert.equal(t.startServerSpan('x', {}).sampled, false);
    const unsampled = t.startServerSpan('x', { traceparent: `00-${TRACE}-${SPAN}-00` });
    assert.equal(unsampled.traceId, TRACE, 'an unsampled span still carries the trace id, for logs');
    assert.equal(unsampled.child('c', 'client').traceId, TRACE);
    await t.shutdown(10);
  });

  test('traceidratio records about the given fraction of new traces and ignores the parent flag', async () => {
    const t = tracer('traceidratio', 0.25);
    let sampled = 0;
    for (let i = 0; i < 4000; i++) if (t.startServerSpan('x', {}).sampled) sampled++;
    assert.ok(sampled > 800 && sampled < 1200, `sampled ${sampled} of 4000`);
    assert.equal(tracer('traceidratio', 0).startServerSpan('x', { traceparent: `00-${TRACE}-${SPAN}-01` }).sampled, false);
    await t.shutdown(10);
  });
});
