/**
 * Just enough PromQL reading for the cross-checks: the metric names an expression queries and the
 * label matchers of each selector. Not a parser: it strips strings, label matchers, grouping
 * clauses and ranges, then takes the identifiers that are not functions or keywords.
 */

const KEYWORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan', 'atan2',
]);

export interface Selector {
  readonly metric: string;
  readonly matchers: ReadonlyMap<string, string>;
}

/** Every `metric{...}` and bare `metric` in the expression. */
export function selectors(expr: string): Selector[] {
  const out: Selector[] = [];
  const withBraces = /([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}/g;
  for (const m of expr.matchAll(withBraces)) {
    const matchers = new Map<string, string>();
    for (const lm of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)\s*"([^"]*)"/g)) {
      if (lm[1] && lm[2] === '=' && lm[3] !== undefined) matchers.set(lm[1], lm[3]);
    }
    if (m[1] && !KEYWORDS.has(m[1])) out.push({ metric: m[1], matchers });
  }
  for (const metric of metricNames(expr)) {
    if (!out.some((s) => s.metric === metric)) out.push({ metric, matchers: new Map() });
  }
  return out;
}

export function metricNames(expr: string): Set<string> {
  let s = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/'(?:[^'\\]|\\.)*'/g, "''")
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ');
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/(?<![a-zA-Z0-9_:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![a-zA-Z0-9_:])(?!\s*\()/g)) {
    const name = m[1];
    if (!name || KEYWORDS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return names;
}
