import { Worker } from 'node:worker_threads';
import { Histogram } from './histogram.js';
import { nowMs, type FromWorker, type IntervalSnapshot, type LoadModel, type ToWorker, type WorkerDone, type WorkerJob } from './protocol.js';
import { weightedSequence, type Scenario } from './scenarios.js';
import { peakLevel, totalDurationMs } from './schedule.js';

export interface LoadOptions {
  /** Base URL of the deployment, e.g. http://127.0.0.1:8080. */
  readonly target: string;
  readonly scenarios: readonly Scenario[];
  /** API keys for scenarios with `auth`, used in rotation. */
  readonly keys: readonly string[];
  readonly model: LoadModel;
  /** Generator threads; default 1 (see defaultWorkers). */
  readonly workers?: number;
  /** Length of the reporting intervals (timeline, progress, soak windows); default 1000 ms. */
  readonly intervalMs?: number;
  /** Per-request deadline; default 30 s. */
  readonly timeoutMs?: number;
  /** A request sent more than this after its scheduled start is late; default 10 ms. */
  readonly lateThresholdMs?: number;
}

/** Totals for one scenario, or for all of them. */
export class ScenarioTotals {
  requests = 0;
  failed = 0;
  bytes = 0;
  readonly latency = new Histogram();
  readonly service = new Histogram();
  readonly statuses: Record<string, number> = {};
  readonly errors: Record<string, number> = {};
}

/** One interval of the whole run (all workers merged). */
export interface MergedInterval {
  readonly index: number;
  /** Seconds after the start at which the interval begins and ends. */
  readonly startS: number;
  readonly endS: number;
  readonly all: ScenarioTotals;
  readonly scenarios: ReadonlyMap<string, ScenarioTotals>;
  readonly scheduled: number;
  readonly late: number;
  readonly dropped: number;
  readonly inFlight: number;
  readonly vus: number;
}

export interface TimelinePoint {
  /** Seconds after the start at the end of the interval. */
  readonly t: number;
  readonly requests: number;
  readonly failed: number;
  readonly rps: number;
  readonly p50_ms: number | null;
  readonly p95_ms: number | null;
  readonly p99_ms: number | null;
  readonly max_ms: number | null;
  readonly in_flight: number;
  readonly vus: number;
  readonly late: number;
}

export interface LoadResult {
  readonly startedAt: Date;
  /** Wall-clock ms at which the schedule started (after the workers were ready). */
  readonly startAt: number;
  readonly endedAt: Date;
  /** The schedule's length. */
  readonly plannedS: number;
  /** From the start to the last answer. */
  readonly elapsedS: number;
  readonly all: ScenarioTotals;
  readonly scenarios: ReadonlyMap<string, ScenarioTotals>;
  readonly scheduled: number;
  readonly late: number;
  readonly capped: number;
  readonly dropped: number;
  readonly timeline: readonly TimelinePoint[];
  readonly workers: readonly WorkerDone[];
  /** Ended early by a stop signal. */
  readonly interrupted: boolean;
}

/** A live view for the progress line. */
export interface ProgressState {
  readonly elapsedS: number;
  readonly plannedS: number;
  /** Requests per second over the last few seconds. */
  readonly rps: number;
  /** p95 over the last few seconds (ms), NaN when there were none. */
  readonly p95: number;
  readonly requests: number;
  readonly failed: number;
  readonly late: number;
  readonly dropped: number;
  readonly inFlight: number;
  readonly vus: number;
}

export interface LoadHooks {
  /** Each interval once every worker has reported it, in order. */
  readonly onInterval?: (interval: MergedInterval) => void;
  /** Aborting stops sending; the run then ends with what it has (`interrupted`). */
  readonly signal?: AbortSignal;
}

/** Generator threads for a model: one per ~4000 requests/s (or 256 VUs), at most one less than the CPUs. */
export function defaultWorkers(model: LoadModel, cpus: number): number {
  const peak = peakLevel(model.kind === 'open' ? model.startRate : model.startVus, model.stages);
  const wanted = model.kind === 'open' ? Math.ceil(peak / 4000) : Math.ceil(peak / 256);
  return Math.max(1, Math.min(wanted, cpus - 1));
}

function addInto(into: ScenarioTotals, from: IntervalSnapshot['scenarios'][string]): void {
  into.requests += from.requests;
  into.failed += from.failed;
  into.bytes += from.bytes;
  into.latency.add(from.latency);
  into.service.add(from.service);
  for (const [k, v] of Object.entries(from.statuses)) into.statuses[k] = (into.statuses[k] ?? 0) + v;
  for (const [k, v] of Object.entries(from.errors)) into.errors[k] = (into.errors[k] ?? 0) + v;
}

function orNull(v: number): number | null {
  return Number.isNaN(v) ? null : Math.round(v * 1000) / 1000;
}

interface Pending {
  readonly seen: Set<number>;
  readonly all: ScenarioTotals;
  readonly scenarios: Map<string, ScenarioTotals>;
  scheduled: number;
  late: number;
  dropped: number;
  inFlight: number;
  vus: number;
}

/** Merges worker snapshots into totals, a timeline and (through the hook) whole-run intervals. */
class Aggregator {
  readonly all = new ScenarioTotals();
  readonly scenarios = new Map<string, ScenarioTotals>();
  readonly timeline: TimelinePoint[] = [];
  scheduled = 0;
  late = 0;
  capped = 0;
  dropped = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly recent: MergedInterval[] = [];
  private live = { inFlight: 0, vus: 0 };
  private readonly done = new Set<number>();

  constructor(private readonly workers: number, private readonly intervalMs: number, private readonly hook?: (i: MergedInterval) => void) {}

  add(s: IntervalSnapshot): void {
    this.scheduled += s.scheduled;
    this.late += s.late;
    this.capped += s.capped;
    this.dropped += s.dropped;
    let p = this.pending.get(s.index);
    if (!p) {
      p = { seen: new Set(), all: new ScenarioTotals(), scenarios: new Map(), scheduled: 0, late: 0, dropped: 0, inFlight: 0, vus: 0 };
      this.pending.set(s.index, p);
    }
    p.seen.add(s.worker);
    p.scheduled += s.scheduled;
    p.late += s.late;
    p.dropped += s.dropped;
    p.inFlight += s.inFlight;
    p.vus += s.vus;
    for (const [name, sc] of Object.entries(s.scenarios)) {
      let total = this.scenarios.get(name);
      if (!total) {
        total = new ScenarioTotals();
        this.scenarios.set(name, total);
      }
      addInto(total, sc);
      addInto(this.all, sc);
      let ps = p.scenarios.get(name);
      if (!ps) {
        ps = new ScenarioTotals();
        p.scenarios.set(name, ps);
      }
      addInto(ps, sc);
      addInto(p.all, sc);
    }
    this.settle(false);
  }

  workerDone(worker: number): void {
    this.done.add(worker);
    this.settle(false);
  }

  /** Finalises, in order, every interval all live workers have reported (all of them when `all`). */
  settle(all: boolean): void {
    const indexes = [...this.pending.keys()].sort((a, b) => a - b);
    for (const index of indexes) {
      const p = this.pending.get(index);
      if (!p) continue;
      const complete = all || [...Array(this.workers).keys()].every((w) => p.seen.has(w) || this.done.has(w));
      if (!complete) break;
      this.pending.delete(index);
      const merged: MergedInterval = {
        index, startS: (index * this.intervalMs) / 1000, endS: ((index + 1) * this.intervalMs) / 1000,
        all: p.all, scenarios: p.scenarios, scheduled: p.scheduled, late: p.late, dropped: p.dropped, inFlight: p.inFlight, vus: p.vus,
      };
      this.live = { inFlight: p.inFlight, vus: p.vus };
      const h = p.all.latency;
      this.timeline.push({
        t: merged.endS, requests: p.all.requests, failed: p.all.failed, rps: Math.round((p.all.requests / (this.intervalMs / 1000)) * 10) / 10,
        p50_ms: orNull(h.percentile(50)), p95_ms: orNull(h.percentile(95)), p99_ms: orNull(h.percentile(99)), max_ms: h.count > 0 ? orNull(h.max) : null,
        in_flight: p.inFlight, vus: p.vus, late: p.late,
      });
      this.recent.push(merged);
      if (this.recent.length > Math.max(1, Math.round(5000 / this.intervalMs))) this.recent.shift();
      this.hook?.(merged);
    }
  }

  progress(elapsedS: number, plannedS: number): ProgressState {
    const h = new Histogram();
    let requests = 0;
    for (const r of this.recent) {
      h.add(r.all.latency);
      requests += r.all.requests;
    }
    const span = (this.recent.length * this.intervalMs) / 1000;
    return {
      elapsedS, plannedS, rps: span > 0 ? requests / span : 0, p95: h.percentile(95), requests: this.all.requests, failed: this.all.failed,
      late: this.late, dropped: this.dropped, inFlight: this.live.inFlight, vus: this.live.vus,
    };
  }
}

/** A load run in progress: `result` settles when it is over; `progress()` is a live view. */
export interface LoadRun {
  readonly result: Promise<LoadResult>;
  progress(): ProgressState;
}

/**
 * Starts a load run on worker threads (compiled code: `worker.js` beside this file). Latency is
 * measured from each request's scheduled start; see docs/load-testing.md.
 */
export function startLoad(options: LoadOptions, hooks: LoadHooks = {}): LoadRun {
  const workerCount = Math.max(1, options.workers ?? 1);
  const intervalMs = options.intervalMs ?? 1000;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const plannedS = totalDurationMs(options.model.stages) / 1000;
  const aggregator = new Aggregator(workerCount, intervalMs, hooks.onInterval);
  const sequence = weightedSequence(options.scenarios.map((s) => s.weight));
  let startAt = Number.POSITIVE_INFINITY;

  const result = new Promise<LoadResult>((resolve, reject) => {
    const workers: Worker[] = [];
    const dones: WorkerDone[] = [];
    let ready = 0;
    let failed = false;
    let interrupted = false;
    const startedAt = new Date();
    const fail = (err: Error): void => {
      if (failed) return;
      failed = true;
      for (const w of workers) void w.terminate();
      reject(err);
    };
    const onAbort = (): void => {
      interrupted = true;
      for (const w of workers) w.postMessage({ kind: 'stop' } satisfies ToWorker);
    };
    for (let i = 0; i < workerCount; i++) {
      const job: WorkerJob = {
        target: options.target, scenarios: options.scenarios, sequence, keys: options.keys, model: options.model,
        workerIndex: i, workerCount, intervalMs, timeoutMs, lateThresholdMs: options.lateThresholdMs ?? 10, gracefulStopMs: timeoutMs + 1000,
      };
      const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: job });
      workers.push(worker);
      worker.on('error', (err) => fail(err));
      worker.on('exit', (code) => {
        if (dones[i] === undefined && !failed) fail(new Error(`load worker ${i} exited (code ${code}) before finishing`));
      });
      worker.on('message', (message: FromWorker) => {
        switch (message.kind) {
          case 'ready':
            ready += 1;
            if (ready === workerCount) {
              startAt = nowMs() + 100;
              for (const w of workers) w.postMessage({ kind: 'start', startAt } satisfies ToWorker);
              if (hooks.signal?.aborted) onAbort();
              else hooks.signal?.addEventListener('abort', onAbort, { once: true });
            }
            break;
          case 'interval':
            aggregator.add(message.snapshot);
            break;
          case 'error':
            fail(new Error(`load worker ${i}: ${message.message}`));
            break;
          case 'done':
            dones[i] = message.done;
            aggregator.workerDone(i);
            if (dones.filter((d) => d !== undefined).length === workerCount) {
              hooks.signal?.removeEventListener('abort', onAbort);
              aggregator.settle(true);
              const endedAt = Math.max(...dones.map((d) => d.endedAt));
              resolve({
                startedAt, startAt, endedAt: new Date(), plannedS, elapsedS: Math.max(0.001, (endedAt - startAt) / 1000),
                all: aggregator.all, scenarios: aggregator.scenarios, scheduled: aggregator.scheduled, late: aggregator.late,
                capped: aggregator.capped, dropped: aggregator.dropped, timeline: aggregator.timeline, workers: dones, interrupted,
              });
            }
            break;
        }
      });
    }
  });

  return {
    result,
    progress: () => aggregator.progress(Number.isFinite(startAt) ? Math.max(0, (nowMs() - startAt) / 1000) : 0, plannedS),
  };
}
