import { Histogram } from '../load/histogram.js';
import type { MergedInterval } from '../load/runner.js';
import type { InstanceSample } from './sampler.js';

const MB = 1024 * 1024;

export type Verdict = 'PASS' | 'FAIL' | 'INCONCLUSIVE';

/** The load's side of one window (all scenarios). */
export class WindowLoad {
  requests = 0;
  failed = 0;
  readonly latency = new Histogram();
  readonly errors: Record<string, number> = {};

  add(interval: MergedInterval): void {
    this.requests += interval.all.requests;
    this.failed += interval.all.failed;
    this.latency.add(interval.all.latency);
    for (const [code, n] of Object.entries(interval.all.errors)) this.errors[code] = (this.errors[code] ?? 0) + n;
  }
}

/** Collects the load's intervals into soak windows as the run goes. */
export class WindowCollector {
  readonly windows = new Map<number, WindowLoad>();

  constructor(private readonly windowMs: number) {}

  add(interval: MergedInterval): void {
    const index = Math.floor((interval.startS * 1000 + 1e-6) / this.windowMs);
    let w = this.windows.get(index);
    if (!w) {
      w = new WindowLoad();
      this.windows.set(index, w);
    }
    w.add(interval);
  }
}

export interface InstanceWindow {
  /** Lowest heap used in the window: the heap's floor after collections. */
  readonly heap_floor_mb: number | null;
  /**
   * Lowest retained heap: heap used minus the young generation (which every scavenge empties and which
   * holds megabytes of short-lived objects under load), when /metrics breaks the heap down by space;
   * otherwise the same as heap_floor_mb.
   */
  readonly retained_floor_mb: number | null;
  /** Lowest retained heap among the samples taken just after a full collection (null: none in this window, or no GC metric). */
  readonly post_gc_floor_mb: number | null;
  /** Full collections during the window (null: the instance does not expose the GC metric). */
  readonly major_gcs: number | null;
  readonly heap_max_mb: number | null;
  readonly rss_max_mb: number | null;
  readonly samples: number;
  /** Highest breaker state seen (0 closed, 1 half-open, 2 open). */
  readonly circuit_state_max: number | null;
  readonly fallback_depth_max: number | null;
}

export interface WindowRow {
  readonly index: number;
  readonly start_s: number;
  readonly end_s: number;
  readonly requests: number;
  readonly failed: number;
  readonly rps: number;
  readonly p50_ms: number | null;
  readonly p95_ms: number | null;
  readonly p99_ms: number | null;
  readonly errors: Readonly<Record<string, number>>;
  readonly instances: Readonly<Record<string, InstanceWindow>>;
}

export interface LinearFit {
  readonly slope: number;
  readonly intercept: number;
  /** Coefficient of determination, 0-1 (1 when the points are on a line; 0 when flat or one point). */
  readonly r2: number;
}

/** Ordinary least squares y = intercept + slope * x. */
export function leastSquares(points: readonly { x: number; y: number }[]): LinearFit {
  const n = points.length;
  if (n === 0) return { slope: 0, intercept: Number.NaN, r2: 0 };
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (const p of points) {
    sxx += (p.x - mx) ** 2;
    sxy += (p.x - mx) * (p.y - my);
    syy += (p.y - my) ** 2;
  }
  if (sxx === 0) return { slope: 0, intercept: my, r2: 0 };
  const slope = sxy / sxx;
  return { slope, intercept: my - slope * mx, r2: syy === 0 ? 0 : (sxy * sxy) / (sxx * syy) };
}

export interface MemoryResult {
  readonly instance: string;
  readonly url: string;
  readonly verdict: Verdict;
  readonly reason: string;
  /**
   * What the trend was fitted to: `post-gc`, the retained heap in every sample taken right after a full
   * (mark-compact) collection, so garbage waiting in the old generation cannot pass for a leak; or
   * `window-min`, each window's lowest sample, when the instance does not report full collections or
   * fewer than 3 happened after the warm-up.
   */
  readonly method: 'post-gc' | 'window-min';
  /** `retained heap` (heap used minus the young generation) or `heap used` (no per-space figures). */
  readonly series: 'retained heap' | 'heap used';
  /** Points of the fit. */
  readonly points_used: number;
  readonly warmup_windows: number;
  /** Fitted heap floor at the first analysed window (MB). */
  readonly baseline_mb: number | null;
  /** Fitted growth of the heap floor from the first to the last analysed window (MB). */
  readonly growth_mb: number | null;
  readonly growth_pct: number | null;
  readonly slope_mb_per_hour: number | null;
  readonly r2: number | null;
  readonly first_floor_mb: number | null;
  readonly last_floor_mb: number | null;
  readonly rss_first_mb: number | null;
  readonly rss_last_mb: number | null;
  readonly rss_growth_pct: number | null;
  /** The fitted line, for the chart: heap floor MB at t seconds. */
  readonly fit: { readonly from_s: number; readonly to_s: number; readonly from_mb: number; readonly to_mb: number } | null;
}

export interface CircuitResult {
  readonly instance: string;
  /** Transitions during the soak, by target state. */
  readonly transitions: Readonly<Record<string, number>>;
  /** Switches of a dependency to its fallback or back during the soak, by `<component> to <mode>`. */
  readonly mode_switches: Readonly<Record<string, number>>;
  readonly state_at_end: number | null;
  readonly fallback_depth_max: number | null;
  readonly fallback_depth_end: number | null;
  readonly samples: number;
}

export interface LatencyDrift {
  readonly slope_ms_per_hour: number | null;
  readonly first_window_p95_ms: number | null;
  readonly last_window_p95_ms: number | null;
  readonly worst_window_p95_ms: number | null;
  readonly worst_window_index: number | null;
}

export interface SoakAnalysis {
  readonly window_s: number;
  readonly warmup_s: number;
  readonly windows: readonly WindowRow[];
  readonly memory: readonly MemoryResult[];
  readonly memory_verdict: Verdict;
  readonly circuits: readonly CircuitResult[];
  readonly latency_drift: LatencyDrift;
}

export interface AnalysisInput {
  /** Wall-clock ms at which the load started. */
  readonly startAt: number;
  /** How long the load ran (ms). */
  readonly ranMs: number;
  readonly windowMs: number;
  readonly warmupMs: number;
  /** Largest acceptable heap-floor growth over the analysed span, percent. */
  readonly maxGrowthPct: number;
  readonly load: ReadonlyMap<number, WindowLoad>;
  readonly samples: readonly InstanceSample[];
}

const round = (v: number, digits = 3): number => Math.round(v * 10 ** digits) / 10 ** digits;
const orNull = (v: number | undefined): number | null => (v === undefined || !Number.isFinite(v) ? null : round(v));

/** Windows, memory trend per instance with its verdict, breaker activity and latency drift. */
export function analyseSoak(input: AnalysisInput): SoakAnalysis {
  const { windowMs, startAt } = input;
  const windowCount = Math.max(1, Math.ceil(input.ranMs / windowMs - 1e-9));
  const indexOf = (at: number): number => Math.min(windowCount - 1, Math.max(0, Math.floor((at - startAt) / windowMs)));

  // Instances in order of first appearance.
  const instances = new Map<string, { url: string; samples: InstanceSample[] }>();
  for (const s of input.samples) {
    if (s.at < startAt - windowMs || s.at > startAt + input.ranMs + windowMs) continue;
    let entry = instances.get(s.instance);
    if (!entry) {
      entry = { url: s.url, samples: [] };
      instances.set(s.instance, entry);
    }
    entry.samples.push(s);
  }

  // Which samples directly follow a full collection, and how many collections each sample saw.
  const gcDelta = new Map<InstanceSample, number>();
  for (const { samples } of instances.values()) {
    samples.sort((p, q) => p.at - q.at);
    let prev: InstanceSample | undefined;
    for (const s of samples) {
      if (s.majorGcs !== undefined && prev?.majorGcs !== undefined && s.majorGcs >= prev.majorGcs) gcDelta.set(s, s.majorGcs - prev.majorGcs);
      prev = s;
    }
  }
  const hasGcMetric = (name: string): boolean => (instances.get(name)?.samples ?? []).some((s) => s.majorGcs !== undefined);
  const retained = (s: InstanceSample): number | undefined => (s.heapUsedBytes === undefined ? undefined : s.heapUsedBytes - (s.youngBytes ?? 0));

  const windows: WindowRow[] = [];
  for (let index = 0; index < windowCount; index++) {
    const load = input.load.get(index);
    const h = load?.latency;
    const perInstance: Record<string, InstanceWindow> = {};
    for (const [name, { samples }] of instances) {
      const inWindow = samples.filter((s) => indexOf(s.at) === index);
      const heaps = inWindow.map((s) => s.heapUsedBytes).filter((v): v is number => v !== undefined);
      const kept = inWindow.map(retained).filter((v): v is number => v !== undefined);
      const postGc = inWindow.filter((s) => (gcDelta.get(s) ?? 0) > 0).map(retained).filter((v): v is number => v !== undefined);
      const gcs = hasGcMetric(name) ? inWindow.reduce((a, s) => a + (gcDelta.get(s) ?? 0), 0) : null;
      const rss = inWindow.map((s) => s.rssBytes).filter((v): v is number => v !== undefined);
      const states = inWindow.map((s) => s.circuitState).filter((v): v is number => v !== undefined);
      const depths = inWindow.map((s) => s.fallbackQueueDepth).filter((v): v is number => v !== undefined);
      perInstance[name] = {
        heap_floor_mb: heaps.length ? round(Math.min(...heaps) / MB) : null,
        retained_floor_mb: kept.length ? round(Math.min(...kept) / MB) : null,
        post_gc_floor_mb: postGc.length ? round(Math.min(...postGc) / MB) : null,
        major_gcs: gcs,
        heap_max_mb: heaps.length ? round(Math.max(...heaps) / MB) : null,
        rss_max_mb: rss.length ? round(Math.max(...rss) / MB) : null,
        samples: inWindow.length,
        circuit_state_max: states.length ? Math.max(...states) : null,
        fallback_depth_max: depths.length ? Math.max(...depths) : null,
      };
    }
    const spanS = Math.min(windowMs, input.ranMs - index * windowMs) / 1000;
    windows.push({
      index, start_s: round((index * windowMs) / 1000), end_s: round(Math.min((index + 1) * windowMs, input.ranMs) / 1000),
      requests: load?.requests ?? 0, failed: load?.failed ?? 0, rps: round((load?.requests ?? 0) / Math.max(spanS, 0.001), 1),
      p50_ms: h && h.count > 0 ? orNull(h.percentile(50)) : null,
      p95_ms: h && h.count > 0 ? orNull(h.percentile(95)) : null,
      p99_ms: h && h.count > 0 ? orNull(h.percentile(99)) : null,
      errors: load?.errors ?? {},
      instances: perInstance,
    });
  }

  const warmupWindows = Math.min(windowCount - 1, Math.max(1, Math.ceil(input.warmupMs / windowMs - 1e-9)));
  const mid = (w: WindowRow): number => (w.start_s + w.end_s) / 2;
  // A last window much shorter than the others has too few samples for a fair floor.
  const complete = windows.filter((w) => w.index >= warmupWindows && (w.end_s - w.start_s) * 1000 >= windowMs * 0.5);

  const analysedFrom = startAt + warmupWindows * windowMs;
  const analysedTo = startAt + Math.max(...complete.map((w) => w.end_s * 1000), warmupWindows * windowMs);
  const memory: MemoryResult[] = [...instances.entries()].map(([name, { url, samples }]) => {
    const series = samples.some((s) => s.youngBytes !== undefined) ? 'retained heap' as const : 'heap used' as const;
    const postGcPoints = samples
      .filter((s) => (gcDelta.get(s) ?? 0) > 0 && s.at >= analysedFrom && s.at <= analysedTo)
      .map((s) => ({ x: (s.at - startAt) / 1000, y: (retained(s) ?? Number.NaN) / MB }))
      .filter((p) => Number.isFinite(p.y));
    const windowPoints = complete
      .map((w) => ({ x: mid(w), y: w.instances[name]?.retained_floor_mb ?? null }))
      .filter((p): p is { x: number; y: number } => p.y !== null);
    const method = postGcPoints.length >= 3 ? 'post-gc' as const : 'window-min' as const;
    const points = method === 'post-gc' ? postGcPoints : windowPoints;
    const note = method === 'post-gc' ? ''
      : hasGcMetric(name) ? `; only ${postGcPoints.length} full collection${postGcPoints.length === 1 ? '' : 's'} after the warm-up, so window minimums were used and may include uncollected garbage (a longer soak helps)`
        : '; the instance does not report full collections (kgents_nodejs_gc_duration_seconds), so window minimums were used and may include uncollected garbage';
    const rssPoints = complete.map((w) => w.instances[name]?.rss_max_mb ?? null).filter((v): v is number => v !== null);
    const rssFirst = rssPoints[0];
    const rssLast = rssPoints[rssPoints.length - 1];
    const base = {
      instance: name, url, method, series, warmup_windows: warmupWindows, points_used: points.length,
      first_floor_mb: windowPoints[0]?.y ?? null, last_floor_mb: windowPoints[windowPoints.length - 1]?.y ?? null,
      rss_first_mb: rssFirst ?? null, rss_last_mb: rssLast ?? null,
      rss_growth_pct: rssFirst !== undefined && rssLast !== undefined && rssFirst > 0 && rssPoints.length >= 2 ? round(((rssLast - rssFirst) / rssFirst) * 100, 2) : null,
    };
    const first = points[0];
    const last = points[points.length - 1];
    if (points.length < 3 || !first || !last || last.x - first.x <= 0) {
      return {
        ...base, verdict: 'INCONCLUSIVE' as const, reason: `${points.length} point${points.length === 1 ? '' : 's'} after the warm-up; at least 3 are needed for a trend${note}`,
        baseline_mb: null, growth_mb: null, growth_pct: null, slope_mb_per_hour: null, r2: null, fit: null,
      };
    }
    const fit = leastSquares(points);
    const baseline = fit.intercept + fit.slope * first.x;
    const growth = fit.slope * (last.x - first.x);
    const growthPct = baseline > 0 ? (growth / baseline) * 100 : Number.POSITIVE_INFINITY;
    const pass = growthPct < input.maxGrowthPct;
    const what = method === 'post-gc' ? `${series} after each of ${points.length} full collections` : `${series} floors of ${points.length} windows`;
    // Window floors can only overstate what is retained (they may hold garbage awaiting a full collection):
    // when they pass, the heap passes. When they fail although the instance reports its full collections
    // and too few happened for a trend, a full collection that still left the heap that far above the
    // starting floor proves retention; otherwise garbage and a leak cannot be told apart.
    let verdict: Verdict = pass ? 'PASS' : 'FAIL';
    let extra = '';
    if (!pass && method === 'window-min' && hasGcMetric(name)) {
      const startFloor = windowPoints[0]?.y;
      const worst = postGcPoints.reduce<{ x: number; y: number } | undefined>((a, p) => (a === undefined || p.y > a.y ? p : a), undefined);
      const worstPct = startFloor !== undefined && worst !== undefined && startFloor > 0 ? ((worst.y - startFloor) / startFloor) * 100 : undefined;
      if (worst !== undefined && worstPct !== undefined && worstPct >= input.maxGrowthPct) {
        extra = `; the full collection at ${round(worst.x, 1)} s still left ${round(worst.y, 2)} MB, ${round(worstPct, 1)} % above the ${round(startFloor ?? 0, 2)} MB floor after the warm-up: retained, not garbage`;
      } else {
        verdict = 'INCONCLUSIVE';
        extra = '; not judged a leak: run longer so that full collections show the retained heap';
      }
    }
    return {
      ...base,
      verdict,
      reason: `${growth >= 0 ? 'grew' : 'shrank'} ${round(Math.abs(growth), 2)} MB (${round(growthPct, 2)} %) over ${round((last.x - first.x) / 60, 2)} min after the warm-up, ${pass ? 'below' : 'at or above'} the ${input.maxGrowthPct} % limit (trend of the ${what})${note}${extra}`,
      baseline_mb: round(baseline), growth_mb: round(growth), growth_pct: round(growthPct, 2), slope_mb_per_hour: round(fit.slope * 3600), r2: round(fit.r2, 4),
      fit: { from_s: round(first.x), to_s: round(last.x), from_mb: round(baseline), to_mb: round(baseline + growth) },
    };
  });
  const memoryVerdict: Verdict = memory.length === 0 ? 'INCONCLUSIVE'
    : memory.some((m) => m.verdict === 'FAIL') ? 'FAIL' : memory.some((m) => m.verdict === 'INCONCLUSIVE') ? 'INCONCLUSIVE' : 'PASS';

  const circuits: CircuitResult[] = [...instances.entries()].map(([name, { samples }]) => {
    const transitions = counterDeltas(samples.map((s) => s.transitions));
    const modeSwitches = counterDeltas(samples.map((s) => s.modeSwitches));
    const depths = samples.map((s) => s.fallbackQueueDepth).filter((v): v is number => v !== undefined);
    const end = samples[samples.length - 1];
    return {
      instance: name, transitions, mode_switches: modeSwitches, state_at_end: end?.circuitState ?? null,
      fallback_depth_max: depths.length ? Math.max(...depths) : null, fallback_depth_end: end?.fallbackQueueDepth ?? null, samples: samples.length,
    };
  });

  const p95s = complete.filter((w) => w.p95_ms !== null).map((w) => ({ x: mid(w), y: w.p95_ms ?? 0, index: w.index }));
  const all95 = windows.filter((w) => w.p95_ms !== null);
  const worst = all95.reduce<WindowRow | undefined>((a, w) => (a === undefined || (w.p95_ms ?? 0) > (a.p95_ms ?? 0) ? w : a), undefined);
  const drift = p95s.length >= 2 ? leastSquares(p95s) : undefined;
  return {
    window_s: windowMs / 1000,
    warmup_s: round((warmupWindows * windowMs) / 1000),
    windows,
    memory,
    memory_verdict: memoryVerdict,
    circuits,
    latency_drift: {
      slope_ms_per_hour: drift ? round(drift.slope * 3600) : null,
      first_window_p95_ms: p95s[0]?.y ?? null,
      last_window_p95_ms: p95s[p95s.length - 1]?.y ?? null,
      worst_window_p95_ms: worst?.p95_ms ?? null,
      worst_window_index: worst?.index ?? null,
    },
  };
}

/**
 * What labelled counters added during the soak, from one instance's samples in order, tolerating
 * restarts (a counter that goes down starts again from 0). A labelled counter appears in /metrics
 * only at its first increment: one missing from earlier samples was 0 then, so its whole value
 * happened during the soak; one already there at the first sample counts only what came after.
 */
export function counterDeltas(samples: readonly Readonly<Record<string, number>>[]): Record<string, number> {
  const deltas: Record<string, number> = {};
  const last: Record<string, number> = {};
  let seen = false;
  for (const counters of samples) {
    for (const [key, v] of Object.entries(counters)) {
      const prev = last[key] ?? (seen ? 0 : undefined);
      if (prev !== undefined) deltas[key] = (deltas[key] ?? 0) + (v >= prev ? v - prev : v);
      else deltas[key] ??= 0;
      last[key] = v;
    }
    seen = true;
  }
  return deltas;
}
