import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { BufferedCounter, BufferedHistogram } from '../../src/observability/buffered-metrics.js';
import { ApiMetrics } from '../../src/observability/metrics.js';

// Budget: well under a second (no servers).
const BUCKETS = [0.001, 0.01, 0.1, 1];

function pair(buffered: boolean): { registry: Registry; count: (labels: Record<'route' | 'status', string>, n: number) => void; observe: (labels: Record<'route' | 'status', string>, v: number) => void } {
  const registry = new Registry();
  registry.setDefaultLabels({ instance: 'i1' });
  const config = { labelNames: ['route', 'status'] as const, registers: [registry] };
  if (!buffered) {
    const c = new Counter({ name: 'x_total', help: 'x', ...config });
    const h = new Histogram({ name: 'x_seconds', help: 'x', buckets: BUCKETS, ...config });
    return { registry, count: (l, n) => c.inc(l, n), observe: (l, v) => h.observe(l, v) };
  }
  const c = new BufferedCounter({ name: 'x_total', help: 'x', ...config });
  const h = new BufferedHistogram({ name: 'x_seconds', help: 'x', buckets: BUCKETS, ...config });
  const cells = new Map<string, { c: ReturnType<typeof c.cell>; h: ReturnType<typeof h.cell> }>();
  const cellFor = (l: Record<'route' | 'status', string>): { c: ReturnType<typeof c.cell>; h: ReturnType<typeof h.cell> } => {
    const key = `${l.route} ${l.status}`;
    let cell = cells.get(key);
    if (!cell) {
      cell = { c: c.cell(l), h: h.cell(l) };
      cells.set(key, cell);
    }
    return cell;
  };
  return { registry, count: (l, n) => cellFor(l).c.inc(n), observe: (l, v) => cellFor(l).h.observe(v) };
}

void test('buffered counters and histograms expose exactly what prom-client would for the same observations', async () => {
  const plain = pair(false);
  const fast = pair(true);
  const values = [0.0005, 0.001, 0.004, 0.05, 0.5, 3, 0.02, 0.001];
  for (const target of [plain, fast]) {
    values.forEach((v, i) => {
      const labels = { route: i % 3 === 0 ? '/a' : '/b', status: i % 2 === 0 ? '200' : '500' };
      target.count(labels, i + 1);
      target.observe(labels, v);
    });
  }
  // Label order within a series does not matter to Prometheus; compare label sets.
  const sortLines = (text: string): string => text.split('\n')
    .map((line) => line.replace(/\{([^}]*)\}/, (_m, inner: string) => `{${inner.split(',').sort().join(',')}}`))
    .sort().join('\n');
  assert.equal(sortLines(await fast.registry.metrics()), sortLines(await plain.registry.metrics()));
  // A second scrape adds only what came in since the first.
  fast.count({ route: '/a', status: '200' }, 2);
  plain.count({ route: '/a', status: '200' }, 2);
  assert.equal(sortLines(await fast.registry.metrics()), sortLines(await plain.registry.metrics()));
  fast.registry.resetMetrics();
  assert.doesNotMatch(await fast.registry.metrics(), /x_total\{|x_seconds_bucket\{/);
});

void test('a counter cell refuses to go down', () => {
  const counter = new BufferedCounter({ name: 'y_total', help: 'y', labelNames: ['k'] as const, registers: [] });
  assert.throws(() => counter.cell({ k: 'v' }).inc(-1), RangeError);
});

void test('the API request, admission, token and usage metrics appear in /metrics text with their labels', async () => {
  const metrics = new ApiMetrics('1.2.3', 'inst');
  metrics.observeRequest('/health', 'GET', 200, 0.0004);
  metrics.observeRequest('/health', 'GET', 200, 0.002);
  metrics.observeRequest('unmatched', 'GET', 404, 0.0001);
  metrics.countAdmission('allowed', 'pro');
  metrics.countAdmission('allowed', 'pro');
  metrics.countTokens('pro', 57);
  metrics.countUsageEvent('published');
  const text = await metrics.registry.metrics();
  assert.match(text, /kgents_http_requests_total\{route="\/health",method="GET",status="200",instance="inst"\} 2/);
  assert.match(text, /kgents_http_requests_total\{route="unmatched",method="GET",status="404",instance="inst"\} 1/);
  assert.match(text, /kgents_http_request_duration_seconds_bucket\{route="\/health",method="GET",status="200",le="0.001",instance="inst"\} 1/);
  assert.match(text, /kgents_http_request_duration_seconds_count\{route="\/health",method="GET",status="200",instance="inst"\} 2/);
  assert.match(text, /kgents_rate_limit_decisions_total\{decision="allowed",tier="pro",instance="inst"\} 2/);
  assert.match(text, /kgents_agentese_tokens_total\{tier="pro",instance="inst"\} 57/);
  assert.match(text, /kgents_usage_events_total\{outcome="published",instance="inst"\} 1/);
});

void test('admission, token and usage counts keep each label combination apart', async () => {
  const metrics = new ApiMetrics('1.2.3', 'inst');
  for (const [decision, tier, times] of [['allowed', 'free', 3], ['allowed', 'pro', 1], ['rate_limited', 'free', 2], ['quota_exceeded', 'pro', 4]] as const) {
    for (let i = 0; i < times; i++) metrics.countAdmission(decision, tier);
  }
  metrics.countTokens('free', 5);
  metrics.countTokens('pro', 7);
  metrics.countTokens('free', 6);
  metrics.countUsageEvent('published');
  metrics.countUsageEvent('queued');
  metrics.countUsageEvent('published');
  const text = await metrics.registry.metrics();
  assert.match(text, /kgents_rate_limit_decisions_total\{decision="allowed",tier="free",instance="inst"\} 3/);
  assert.match(text, /kgents_rate_limit_decisions_total\{decision="allowed",tier="pro",instance="inst"\} 1/);
  assert.match(text, /kgents_rate_limit_decisions_total\{decision="rate_limited",tier="free",instance="inst"\} 2/);
  assert.match(text, /kgents_rate_limit_decisions_total\{decision="quota_exceeded",tier="pro",instance="inst"\} 4/);
  assert.match(text, /kgents_agentese_tokens_total\{tier="free",instance="inst"\} 11/);
  assert.match(text, /kgents_agentese_tokens_total\{tier="pro",instance="inst"\} 7/);
  assert.match(text, /kgents_usage_events_total\{outcome="published",instance="inst"\} 2/);
  assert.match(text, /kgents_usage_events_total\{outcome="queued",instance="inst"\} 1/);
});
