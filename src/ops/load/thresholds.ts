/**
 * Pass/fail criteria in k6's threshold syntax:
 *
 *   http_req_duration: p(95)<200              95th percentile latency below 200 ms
 *   http_req_duration{scenario:invoke}: p(99)<500, avg<100
 *   http_req_failed: rate<0.001               fewer than 0.1 % of requests failed
 *   http_reqs: count>1000                     (also rate>N, requests per second)
 *
 * Metrics: `http_req_duration` (ms; avg, min, med, max, p(N)), `http_req_failed` (rate: the
 * fraction of requests that failed, i.e. a network error, a timeout or a status outside 200-399, as in
 * k6), `http_reqs` (count, rate per second). The only tag is `scenario`. Operators: < <= > >= == != .
 */

export type ThresholdMetric = 'http_req_duration' | 'http_req_failed' | 'http_reqs';
export type Aggregate = 'avg' | 'min' | 'med' | 'max' | 'p' | 'rate' | 'count';
export type Operator = '<' | '<=' | '>' | '>=' | '==' | '!=';

export interface Threshold {
  /** The expression as written, with its metric: `http_req_duration{scenario:invoke}: p(99)<500`. */
  readonly source: string;
  readonly metric: ThresholdMetric;
  readonly scenario: string | undefined;
  readonly aggregate: Aggregate;
  /** For `p(N)`. */
  readonly percentile: number | undefined;
  readonly op: Operator;
  readonly limit: number;
}

export class ThresholdSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ThresholdSyntaxError';
  }
}

const AGGREGATES: Record<ThresholdMetric, readonly Aggregate[]> = {
  http_req_duration: ['avg', 'min', 'med', 'max', 'p'],
  http_req_failed: ['rate'],
  http_reqs: ['count', 'rate'],
};

function isMetric(name: string): name is ThresholdMetric {
  return Object.hasOwn(AGGREGATES, name);
}

/** Splits on commas that are not inside parentheses or braces. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(' || ch === '{') depth += 1;
    if (ch === ')' || ch === '}') depth -= 1;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts.map((p) => p.trim());
}

const HEAD = /^([a-z_]+)(?:\{\s*([a-z_]+)\s*:\s*([^}]*?)\s*\})?$/;
const EXPR = /^(avg|min|med|max|rate|count|p\(\s*(\d+(?:\.\d+)?)\s*\))\s*(<=|>=|==|!=|<|>)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)$/;

/** Parses one `--threshold` argument (one metric, one or more comma-separated expressions). */
export function parseThreshold(text: string): Threshold[] {
  const colon = text.indexOf(':', text.includes('}') ? text.indexOf('}') : 0);
  if (colon < 0) throw new ThresholdSyntaxError(`threshold "${text}": expected "metric: expression", e.g. "http_req_duration: p(95)<200"`);
  const head = text.slice(0, colon).trim();
  const body = text.slice(colon + 1).trim();
  const h = HEAD.exec(head);
  if (!h) throw new ThresholdSyntaxError(`threshold "${text}": "${head}" is not a metric name with an optional {scenario:NAME} tag`);
  const metric = h[1] ?? '';
  if (!isMetric(metric)) {
    throw new ThresholdSyntaxError(`threshold "${text}": unknown metric "${metric}"; known: ${Object.keys(AGGREGATES).join(', ')}`);
  }
  let scenario: string | undefined;
  if (h[2] !== undefined) {
    if (h[2] !== 'scenario') throw new ThresholdSyntaxError(`threshold "${text}": only the "scenario" tag is supported (got "${h[2]}")`);
    scenario = h[3] ?? '';
    if (scenario === '') throw new ThresholdSyntaxError(`threshold "${text}": empty scenario name`);
  }
  if (body === '') throw new ThresholdSyntaxError(`threshold "${text}": no expression after the colon`);
  return splitTopLevel(body).map((expr) => {
    const e = EXPR.exec(expr);
    if (!e) {
      throw new ThresholdSyntaxError(`threshold "${text}": "${expr}" is not an expression like p(95)<200, avg<100, max<=500, rate<0.01 or count>100`);
    }
    const aggregate: Aggregate = (e[1] ?? '').startsWith('p(') ? 'p' : (e[1] as Aggregate);
    const percentile = aggregate === 'p' ? Number(e[2]) : undefined;
    if (percentile !== undefined && (percentile < 0 || percentile > 100)) {
      throw new ThresholdSyntaxError(`threshold "${text}": percentile ${percentile} is outside 0-100`);
    }
    if (!AGGREGATES[metric].includes(aggregate)) {
      throw new ThresholdSyntaxError(`threshold "${text}": ${metric} supports ${AGGREGATES[metric].map((a) => (a === 'p' ? 'p(N)' : a)).join(', ')}, not ${e[1] ?? ''}`);
    }
    const tag = scenario === undefined ? '' : `{scenario:${scenario}}`;
    return {
      source: `${metric}${tag}: ${expr.replace(/\s+/g, '')}`,
      metric, scenario, aggregate, percentile, op: e[3] as Operator, limit: Number(e[4]),
    };
  });
}

/** What thresholds are evaluated against: one scenario's figures, or all requests (`scenario` undefined). */
export interface ThresholdFigures {
  readonly requests: number;
  readonly failed: number;
  readonly durationS: number;
  /** Latency aggregates in ms; NaN when there were no requests. */
  latency(aggregate: 'avg' | 'min' | 'med' | 'max' | 'p', percentile?: number): number;
}

export interface ThresholdResult {
  readonly threshold: string;
  readonly metric: ThresholdMetric;
  readonly scenario: string | null;
  readonly observed: number | null;
  readonly ok: boolean;
  /** Why it failed beyond the comparison (no data). */
  readonly note?: string;
}

function compare(value: number, op: Operator, limit: number): boolean {
  switch (op) {
    case '<': return value < limit;
    case '<=': return value <= limit;
    case '>': return value > limit;
    case '>=': return value >= limit;
    case '==': return value === limit;
    case '!=': return value !== limit;
  }
}

export function observe(t: Threshold, f: ThresholdFigures): number {
  switch (t.metric) {
    case 'http_req_duration':
      return t.aggregate === 'p' ? f.latency('p', t.percentile) : f.latency(t.aggregate === 'med' ? 'med' : (t.aggregate as 'avg' | 'min' | 'max'));
    case 'http_req_failed':
      return f.requests === 0 ? Number.NaN : f.failed / f.requests;
    case 'http_reqs':
      return t.aggregate === 'count' ? f.requests : (f.durationS > 0 ? f.requests / f.durationS : Number.NaN);
  }
}

/**
 * Evaluates thresholds. `figures(undefined)` is all requests; `figures(name)` one scenario, undefined when
 * the run had no such scenario. A threshold without data (no requests) fails: nothing was shown to hold.
 */
export function evaluateThresholds(thresholds: readonly Threshold[], figures: (scenario: string | undefined) => ThresholdFigures | undefined): ThresholdResult[] {
  return thresholds.map((t) => {
    const base = { threshold: t.source, metric: t.metric, scenario: t.scenario ?? null };
    const f = figures(t.scenario);
    if (!f) return { ...base, observed: null, ok: false, note: `no scenario "${t.scenario ?? ''}" in this run` };
    const value = observe(t, f);
    if (Number.isNaN(value)) return { ...base, observed: null, ok: false, note: 'no requests' };
    return { ...base, observed: Math.round(value * 1e6) / 1e6, ok: compare(value, t.op, t.limit) };
  });
}
