import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { Histogram } from '../../../src/ops/load/histogram.js';
import { evaluateThresholds, parseThreshold, ThresholdSyntaxError, type ThresholdFigures } from '../../../src/ops/load/thresholds.js';

function figures(latencies: readonly number[], failed: number, durationS = 10): ThresholdFigures {
  const h = new Histogram();
  for (const l of latencies) h.record(l);
  return {
    requests: latencies.length, failed, durationS,
    latency: (a, p) => (latencies.length === 0 ? Number.NaN : a === 'avg' ? h.mean : a === 'min' ? h.min : a === 'max' ? h.max : h.percentile(a === 'med' ? 50 : p ?? 50)),
  };
}

describe('thresholds in k6 syntax', () => {
  test('parses metric, scenario tag and several expressions', () => {
    const [p95, avg] = parseThreshold('http_req_duration{scenario:invoke}: p(99.9) < 500, avg<=100');
    assert.deepEqual(p95 && { m: p95.metric, s: p95.scenario, a: p95.aggregate, p: p95.percentile, op: p95.op, l: p95.limit, src: p95.source },
      { m: 'http_req_duration', s: 'invoke', a: 'p', p: 99.9, op: '<', l: 500, src: 'http_req_duration{scenario:invoke}: p(99.9)<500' });
    assert.deepEqual(avg && [avg.aggregate, avg.op, avg.limit], ['avg', '<=', 100]);
    const [failed] = parseThreshold('http_req_failed: rate<0.001');
    assert.deepEqual(failed && [failed.metric, failed.aggregate, failed.limit, failed.scenario], ['http_req_failed', 'rate', 0.001, undefined]);
    const [reqs] = parseThreshold('http_reqs: count>=1e3');
    assert.deepEqual(reqs && [reqs.aggregate, reqs.op, reqs.limit], ['count', '>=', 1000]);
  });

  test('rejects what k6 would not accept, saying why', () => {
    for (const [text, why] of [
      ['http_req_duration p(95)<200', /expected "metric: expression"/],
      ['http_req_latency: p(95)<200', /unknown metric/],
      ['http_req_duration: p95<200', /not an expression/],
      ['http_req_duration: p(95)<', /not an expression/],
      ['http_req_failed: p(95)<0.1', /http_req_failed supports rate/],
      ['http_req_duration: rate<0.1', /supports avg, min, med, max, p\(N\)/],
      ['http_req_duration{status:200}: p(95)<200', /only the "scenario" tag/],
      ['http_req_duration: p(101)<200', /outside 0-100/],
      ['http_req_duration:', /no expression/],
    ] as const) {
      assert.throws(() => parseThreshold(text), (err: unknown) => err instanceof ThresholdSyntaxError && why.test(err.message), text);
    }
  });

  test('evaluates against all requests and per scenario; the exit decision is whether all held', () => {
    const fast = figures(Array.from({ length: 100 }, (_, i) => i + 1), 0);
    const slow = figures(Array.from({ length: 100 }, (_, i) => (i + 1) * 10), 2);
    const all = figures([...Array.from({ length: 100 }, (_, i) => i + 1), ...Array.from({ length: 100 }, (_, i) => (i + 1) * 10)], 2);
    const byScenario = (s: string | undefined): ThresholdFigures | undefined => (s === undefined ? all : s === 'fast' ? fast : s === 'slow' ? slow : undefined);
    const results = evaluateThresholds([
      ...parseThreshold('http_req_duration{scenario:fast}: p(95)<100'),
      ...parseThreshold('http_req_duration{scenario:slow}: p(95)<100'),
      ...parseThreshold('http_req_failed: rate<0.001'),
      ...parseThreshold('http_req_failed{scenario:fast}: rate<0.001'),
      ...parseThreshold('http_reqs: count>150, rate>=20'),
      ...parseThreshold('http_req_duration{scenario:nope}: max<1'),
    ], byScenario);
    // percentiles carry the histogram's 0.1 % resolution
    assert.deepEqual(results.map((r) => [r.threshold, r.ok, r.observed === null ? null : Number(r.observed.toPrecision(3))]), [
      ['http_req_duration{scenario:fast}: p(95)<100', true, 95],
      ['http_req_duration{scenario:slow}: p(95)<100', false, 950],
      ['http_req_failed: rate<0.001', false, 0.01],
      ['http_req_failed{scenario:fast}: rate<0.001', true, 0],
      ['http_reqs: count>150', true, 200],
      ['http_reqs: rate>=20', true, 20],
      ['http_req_duration{scenario:nope}: max<1', false, null],
    ]);
  });

  test('a threshold with no requests behind it fails', () => {
    const [r] = evaluateThresholds(parseThreshold('http_req_duration: p(95)<200'), () => figures([], 0));
    assert.equal(r?.ok, false);
    assert.equal(r?.note, 'no requests');
  });
});
