import { setTimeout as sleep } from 'node:timers/promises';
import { isFailure } from '../load/client.js';
import { Histogram, summarise, type LatencySummary } from '../load/histogram.js';
import { startLoad, type LoadRun, type MergedInterval } from '../load/runner.js';
import type { Scenario } from '../load/scenarios.js';

/**
 * The load-and-watch check both rollout modes share: steady open-model load against one URL while
 * the rollout runs, every interval attributed to a phase (before, during, undo, after), so the
 * report can say how many requests failed while instances were being replaced and how latency
 * moved compared with the quiet period before.
 */

export type Phase = 'before' | 'during' | 'undo' | 'after';

/** An interval touching the rollout counts as the rollout's, so its effect is never blamed on a quiet phase. */
const PRIORITY: readonly Phase[] = ['during', 'undo', 'after', 'before'];

export interface WatchOptions {
  readonly target: string;
  readonly scenarios: readonly Scenario[];
  readonly keys: readonly string[];
  /** Requests per second (open model: the rate holds however slow the target gets). */
  readonly rate: number;
  /** Longest the load may run; it is stopped earlier by `stop()`. */
  readonly maxDurationMs: number;
  readonly timeoutMs?: number;
  readonly workers?: number;
  /** Attribution granularity (default 500 ms). */
  readonly intervalMs?: number;
}

export interface PhaseFigures {
  /** `all` for the whole run. */
  readonly phase: Phase | 'all';
  /** Seconds after the load started. */
  readonly from_s: number;
  readonly to_s: number;
  readonly requests: number;
  readonly failed: number;
  readonly rps: number;
  readonly latency_ms: LatencySummary;
  /** Failed requests by HTTP status ("0" is no answer). */
  readonly failed_by_status: Readonly<Record<string, number>>;
  /** Failed requests by the API's error code, `HTTP_<status>`, or the network error (ECONNRESET, TIMEOUT...). */
  readonly failed_by_code: Readonly<Record<string, number>>;
  readonly failed_by_scenario: Readonly<Record<string, number>>;
}

export interface WatchPoint {
  readonly t: number;
  readonly phase: Phase;
  readonly requests: number;
  readonly failed: number;
  readonly p95_ms: number | null;
  readonly p99_ms: number | null;
}

export interface WatchFigures {
  readonly target: string;
  readonly rate: number;
  readonly mix: readonly { readonly name: string; readonly weight: number }[];
  readonly elapsed_s: number;
  readonly total: PhaseFigures;
  readonly phases: readonly PhaseFigures[];
  /** Requests that could not start within 10 ms of their schedule, and ones dropped for lack of a slot. */
  readonly late_starts: number;
  readonly dropped: number;
  readonly scheduled: number;
  readonly warnings: readonly string[];
  readonly timeline: readonly WatchPoint[];
}

class PhaseTotals {
  requests = 0;
  failed = 0;
  readonly latency = new Histogram();
  readonly byStatus: Record<string, number> = {};
  readonly byCode: Record<string, number> = {};
  readonly byScenario: Record<string, number> = {};

  add(i: MergedInterval): void {
    this.requests += i.all.requests;
    this.failed += i.all.failed;
    this.latency.add(i.all.latency);
    for (const [status, n] of Object.entries(i.all.statuses)) {
      if (isFailure(Number(status))) this.byStatus[status] = (this.byStatus[status] ?? 0) + n;
    }
    for (const [code, n] of Object.entries(i.all.errors)) this.byCode[code] = (this.byCode[code] ?? 0) + n;
    for (const [name, s] of i.scenarios) if (s.failed > 0) this.byScenario[name] = (this.byScenario[name] ?? 0) + s.failed;
  }

  figures(phase: Phase | 'all', fromS: number, toS: number): PhaseFigures {
    const span = Math.max(0.001, toS - fromS);
    return {
      phase, from_s: round(fromS), to_s: round(toS), requests: this.requests, failed: this.failed,
      rps: Math.round((this.requests / span) * 10) / 10, latency_ms: summarise(this.latency),
      failed_by_status: this.byStatus, failed_by_code: this.byCode, failed_by_scenario: this.byScenario,
    };
  }
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}

function orNull(v: number): number | null {
  return Number.isNaN(v) ? null : round(v);
}

/** A running load with phase marks; `stop()` ends it and returns the figures per phase. */
export class LoadWatch {
  private readonly marks: { phase: Phase; atS: number }[] = [{ phase: 'before', atS: 0 }];
  private readonly intervals: MergedInterval[] = [];
  private readonly controller = new AbortController();
  private readonly run: LoadRun;
  private liveFailed = 0;
  private ended: { error: unknown } | undefined;

  constructor(private readonly options: WatchOptions) {
    const intervalMs = options.intervalMs ?? 500;
    const maxInFlight = Math.max(100, Math.ceil(options.rate * 10));
    this.run = startLoad({
      target: options.target, scenarios: options.scenarios, keys: options.keys, workers: options.workers ?? 1,
      timeoutMs: options.timeoutMs ?? 30_000, intervalMs,
      model: { kind: 'open', startRate: options.rate, stages: [{ durationMs: options.maxDurationMs, target: options.rate }], maxInFlight, maxBacklog: maxInFlight * 10 },
    }, {
      signal: this.controller.signal,
      onInterval: (i) => {
        this.intervals.push(i);
        this.liveFailed += i.all.failed;
      },
    });
    // The result is awaited in stop(); a worker failure before that must not be an unhandled rejection.
    void this.run.result.then(() => {
      this.ended = { error: undefined };
    }, (error: unknown) => {
      this.ended = { error };
    });
  }

  /** Resolves once requests are being scheduled (the generator threads are up). */
  async started(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.run.progress().elapsedS <= 0) {
      if (this.ended) throw this.ended.error instanceof Error ? this.ended.error : new Error('the load ended before it started');
      if (Date.now() > deadline) throw new Error(`the load generator did not start within ${timeoutMs / 1000} s`);
      await sleep(50);
    }
  }

  /** Seconds since the load started. */
  elapsedS(): number {
    return this.run.progress().elapsedS;
  }

  /** Failed requests so far (complete intervals only: lags by up to one interval). */
  failed(): number {
    return this.liveFailed;
  }

  requests(): number {
    return this.run.progress().requests;
  }

  /** From now on, answers belong to `phase`. */
  mark(phase: Phase): void {
    this.marks.push({ phase, atS: this.elapsedS() });
  }

  /** Waits `ms`, returning early when `stopWhen` says so (checked every 100 ms). */
  async hold(ms: number, stopWhen?: () => boolean): Promise<void> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (stopWhen?.()) return;
      await sleep(Math.min(100, Math.max(1, end - Date.now())));
    }
  }

  async stop(): Promise<WatchFigures> {
    this.controller.abort();
    const result = await this.run.result;
    const endS = Math.max(result.elapsedS, this.marks[this.marks.length - 1]?.atS ?? 0);
    const spans = this.marks.map((m, i) => ({ phase: m.phase, from: m.atS, to: this.marks[i + 1]?.atS ?? endS }));
    const totals = new Map<Phase, PhaseTotals>();
    const all = new PhaseTotals();
    const timeline: WatchPoint[] = [];
    for (const interval of this.intervals) {
      const touching = spans.filter((s) => s.from < interval.endS && s.to > interval.startS && s.to > s.from).map((s) => s.phase);
      const phase = PRIORITY.find((p) => touching.includes(p)) ?? spans[spans.length - 1]?.phase ?? 'after';
      let t = totals.get(phase);
      if (!t) {
        t = new PhaseTotals();
        totals.set(phase, t);
      }
      t.add(interval);
      all.add(interval);
      timeline.push({
        t: interval.endS, phase, requests: interval.all.requests, failed: interval.all.failed,
        p95_ms: orNull(interval.all.latency.percentile(95)), p99_ms: orNull(interval.all.latency.percentile(99)),
      });
    }
    // One figure per phase that happened, spanning all its marks (an undo can follow a rollout, for instance).
    const phases: PhaseFigures[] = [];
    for (const phase of ['before', 'during', 'undo', 'after'] as const) {
      const mine = spans.filter((s) => s.phase === phase);
      if (mine.length === 0) continue;
      const from = Math.min(...mine.map((s) => s.from));
      const to = Math.max(...mine.map((s) => s.to));
      phases.push((totals.get(phase) ?? new PhaseTotals()).figures(phase, from, to));
    }
    const warnings: string[] = [];
    const notOnTime = result.late + result.dropped;
    if (result.scheduled > 0 && notOnTime / result.scheduled > 0.01) {
      warnings.push(`${notOnTime} of ${result.scheduled} requests started more than 10 ms late or were dropped: the generator or the machine was too busy, so latency figures include that wait`);
    }
    const rateLimited = all.byCode['ERR_RATE_LIMITED'] ?? 0;
    if (rateLimited > 0) warnings.push(`${rateLimited} requests were rate limited (429): use more keys or a lower --load-rate`);
    return {
      target: this.options.target, rate: this.options.rate,
      mix: this.options.scenarios.map((s) => ({ name: s.name, weight: s.weight })),
      elapsed_s: round(result.elapsedS), total: all.figures('all', 0, endS), phases,
      late_starts: result.late, dropped: result.dropped, scheduled: result.scheduled, warnings, timeline,
    };
  }
}
