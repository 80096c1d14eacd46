import { summarise, type LatencySummary } from './histogram.js';
import type { LoadModel } from './protocol.js';
import { ScenarioTotals, type LoadResult, type TimelinePoint } from './runner.js';
import type { Scenario } from './scenarios.js';
import { peakLevel } from './schedule.js';
import { evaluateThresholds, type Threshold, type ThresholdFigures, type ThresholdResult } from './thresholds.js';

/** Exit codes of `kgents load` and `kgents soak`. */
export const EXIT = { ok: 0, thresholdFailed: 1, usage: 2, invalid: 3 } as const;

export interface ScenarioSummary {
  readonly requests: number;
  readonly throughput_rps: number;
  readonly failed: number;
  readonly failed_rate: number;
  /** From the scheduled start (open model) or the send (closed model) to the end of the answer. */
  readonly latency_ms: LatencySummary;
  /** From the actual send to the end of the answer: the server's part. */
  readonly service_ms: LatencySummary;
  readonly statuses: Readonly<Record<string, number>>;
  readonly errors: Readonly<Record<string, number>>;
  readonly bytes_received: number;
}

export interface LoadSummary {
  readonly tool: 'kgents load';
  readonly version: string;
  readonly target: string;
  readonly started_at: string;
  readonly ended_at: string;
  readonly model: {
    readonly kind: 'open' | 'closed';
    /** Requests per second (open) or virtual users (closed) at the start and per stage. */
    readonly start: number;
    readonly stages: readonly { readonly duration_s: number; readonly target: number }[];
    readonly peak: number;
    readonly max_in_flight?: number;
    readonly think_ms?: number;
  };
  readonly mix: readonly { readonly name: string; readonly weight: number; readonly method: string; readonly path: string }[];
  readonly planned_s: number;
  readonly elapsed_s: number;
  readonly interrupted: boolean;
  /** False when the generator could not start enough requests on time: then no figure of the run is trustworthy. */
  readonly valid: boolean;
  readonly invalid_reasons: readonly string[];
  readonly warnings: readonly string[];
  readonly generator: {
    readonly workers: number;
    readonly scheduled: number;
    readonly late_starts: number;
    /** Of the late starts: waited for a slot because max in flight was reached. */
    readonly capped: number;
    readonly dropped: number;
    readonly late_fraction: number;
    readonly late_tolerance: number;
    readonly late_threshold_ms: number;
    readonly event_loop_utilization: readonly number[];
    readonly max_event_loop_lag_ms: number;
  };
  readonly overall: ScenarioSummary;
  readonly scenarios: Readonly<Record<string, ScenarioSummary>>;
  readonly thresholds: readonly ThresholdResult[];
  readonly thresholds_ok: boolean;
  readonly exit_code: number;
  readonly timeline: readonly TimelinePoint[];
}

export interface SummaryContext {
  readonly version: string;
  readonly target: string;
  readonly model: LoadModel;
  readonly scenarios: readonly Scenario[];
  readonly thresholds: readonly Threshold[];
  /** Largest acceptable share of requests not started on time (late or dropped); default 0.01. */
  readonly lateTolerance: number;
  readonly lateThresholdMs: number;
}

function scenarioSummary(t: ScenarioTotals, elapsedS: number): ScenarioSummary {
  return {
    requests: t.requests,
    throughput_rps: Math.round((t.requests / elapsedS) * 100) / 100,
    failed: t.failed,
    failed_rate: t.requests === 0 ? 0 : Math.round((t.failed / t.requests) * 1e6) / 1e6,
    latency_ms: summarise(t.latency),
    service_ms: summarise(t.service),
    statuses: t.statuses,
    errors: t.errors,
    bytes_received: t.bytes,
  };
}

export function thresholdFigures(t: ScenarioTotals, durationS: number): ThresholdFigures {
  return {
    requests: t.requests, failed: t.failed, durationS,
    latency: (aggregate, percentile) => {
      if (t.requests === 0) return Number.NaN;
      switch (aggregate) {
        case 'avg': return t.latency.mean;
        case 'min': return t.latency.min;
        case 'max': return t.latency.max;
        case 'med': return t.latency.percentile(50);
        case 'p': return t.latency.percentile(percentile ?? 50);
      }
    },
  };
}

export function summarizeLoad(result: LoadResult, ctx: SummaryContext): LoadSummary {
  const { model } = ctx;
  const elapsed = result.elapsedS;
  const notOnTime = result.late + result.dropped;
  const base = model.kind === 'open' ? Math.max(1, result.scheduled) : Math.max(1, result.all.requests);
  const lateFraction = notOnTime / base;
  const invalid: string[] = [];
  const warnings: string[] = [];
  const busiest = Math.max(0, ...result.workers.map((w) => w.eventLoopUtilization));
  if (model.kind === 'open' && lateFraction > ctx.lateTolerance) {
    // A generator thread that is mostly idle and still late was not given the CPU in time: the machine is busy.
    const why = result.capped > result.late / 2
      ? `mostly because ${model.maxInFlight} requests were already in flight (the target could not keep up at this concurrency; raise --max-in-flight if the target should queue them)`
      : busiest < 0.5
        ? `the generator thread (busy ${(busiest * 100).toFixed(0)} %) was not scheduled in time: the machine is short of CPU (other processes, or the target on the same cores); run the generator elsewhere or allow more with --late-tolerance`
        : 'the generator itself was too slow (CPU-bound: add --workers or run it on another machine)';
    invalid.push(`${notOnTime} of ${result.scheduled} requests (${(lateFraction * 100).toFixed(2)} %) did not start on time (more than ${ctx.lateThresholdMs} ms late: ${result.late}, dropped: ${result.dropped}), ${why}`);
  }
  const elus = result.workers.map((w) => Math.round(w.eventLoopUtilization * 1000) / 1000);
  if (elus.some((u) => u > 0.9)) {
    warnings.push(`a generator thread was busy ${(Math.max(...elus) * 100).toFixed(0)} % of the time: the figures may describe the generator rather than the target (add --workers)`);
  }
  if (model.kind === 'closed' && model.thinkMs > 0) {
    const ceiling = peakLevel(model.startVus, model.stages) / (model.thinkMs / 1000);
    const rps = result.all.requests / elapsed;
    if (rps > ceiling * 0.8) {
      warnings.push(`throughput ${rps.toFixed(1)}/s is near the think-time ceiling of ${ceiling.toFixed(1)}/s (VUs / think time): it measures the think time, not the target`);
    }
  }
  const rateLimited = result.all.errors['ERR_RATE_LIMITED'] ?? 0;
  if (rateLimited > 0) warnings.push(`${rateLimited} requests were rate limited (429): give more keys (--keys N) or raise the target's RATE_LIMITS`);
  if (result.interrupted) warnings.push('the run was interrupted before the end of its schedule');
  if (result.all.requests === 0) warnings.push('no request was answered');

  const thresholds = evaluateThresholds(ctx.thresholds, (scenario) => {
    if (scenario === undefined) return thresholdFigures(result.all, elapsed);
    const t = result.scenarios.get(scenario);
    if (t) return thresholdFigures(t, elapsed);
    return ctx.scenarios.some((s) => s.name === scenario) ? thresholdFigures(t ?? emptyTotals(), elapsed) : undefined;
  });
  const thresholdsOk = thresholds.every((t) => t.ok);
  const valid = invalid.length === 0;
  const scenarios: Record<string, ScenarioSummary> = {};
  for (const s of ctx.scenarios) {
    const t = result.scenarios.get(s.name);
    scenarios[s.name] = scenarioSummary(t ?? emptyTotals(), elapsed);
  }
  return {
    tool: 'kgents load',
    version: ctx.version,
    target: ctx.target,
    started_at: result.startedAt.toISOString(),
    ended_at: result.endedAt.toISOString(),
    model: {
      kind: model.kind,
      start: model.kind === 'open' ? model.startRate : model.startVus,
      stages: model.stages.map((s) => ({ duration_s: s.durationMs / 1000, target: s.target })),
      peak: peakLevel(model.kind === 'open' ? model.startRate : model.startVus, model.stages),
      ...(model.kind === 'open' ? { max_in_flight: model.maxInFlight } : { think_ms: model.thinkMs }),
    },
    mix: ctx.scenarios.map((s) => ({ name: s.name, weight: s.weight, method: s.method, path: s.variants[0]?.path.split('?')[0] ?? '' })),
    planned_s: result.plannedS,
    elapsed_s: Math.round(elapsed * 1000) / 1000,
    interrupted: result.interrupted,
    valid,
    invalid_reasons: invalid,
    warnings,
    generator: {
      workers: result.workers.length,
      scheduled: result.scheduled,
      late_starts: result.late,
      capped: result.capped,
      dropped: result.dropped,
      late_fraction: Math.round(lateFraction * 1e6) / 1e6,
      late_tolerance: ctx.lateTolerance,
      late_threshold_ms: ctx.lateThresholdMs,
      event_loop_utilization: elus,
      max_event_loop_lag_ms: Math.round(Math.max(0, ...result.workers.map((w) => w.maxLagMs)) * 10) / 10,
    },
    overall: scenarioSummary(result.all, elapsed),
    scenarios,
    thresholds,
    thresholds_ok: thresholdsOk,
    exit_code: !valid ? EXIT.invalid : thresholdsOk ? EXIT.ok : EXIT.thresholdFailed,
    timeline: result.timeline,
  };
}

function emptyTotals(): ScenarioTotals {
  return new ScenarioTotals();
}
