import type { HistogramData } from './histogram.js';
import type { Scenario } from './scenarios.js';
import type { Stage } from './schedule.js';

/** The open model: requests start at scheduled times whatever the server does (constant or ramping arrival rate). */
export interface OpenModel {
  readonly kind: 'open';
  /** Requests per second at the start; the stages ramp from here. */
  readonly startRate: number;
  readonly stages: readonly Stage[];
  /** Requests in flight at most (all workers together); a request due while the cap is reached waits for a slot. */
  readonly maxInFlight: number;
  /** Requests waiting for a slot at most; beyond, a due request is dropped (and counted). */
  readonly maxBacklog: number;
}

/** The closed model: virtual users, each sending its next request when the previous one has been answered (plus think time). */
export interface ClosedModel {
  readonly kind: 'closed';
  readonly startVus: number;
  readonly stages: readonly Stage[];
  readonly thinkMs: number;
}

export type LoadModel = OpenModel | ClosedModel;

/** Everything a worker needs; structured-cloneable. */
export interface WorkerJob {
  readonly target: string;
  readonly scenarios: readonly Scenario[];
  /** Scenario indexes in pick order (weighted round-robin), repeated. */
  readonly sequence: readonly number[];
  readonly keys: readonly string[];
  readonly model: LoadModel;
  readonly workerIndex: number;
  readonly workerCount: number;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** A request sent later than this after its scheduled time is a late start. */
  readonly lateThresholdMs: number;
  /** After the schedule ends (or a stop), how long to wait for requests in flight. */
  readonly gracefulStopMs: number;
}

/** One scenario's results within one interval of one worker. Latency is from the scheduled start; service time from the actual send. */
export interface ScenarioInterval {
  readonly requests: number;
  readonly failed: number;
  readonly latency: HistogramData;
  readonly service: HistogramData;
  readonly statuses: Readonly<Record<string, number>>;
  /** Error codes: the API's `error.code` for HTTP errors, the network error code (ECONNREFUSED, TIMEOUT, ...) otherwise. */
  readonly errors: Readonly<Record<string, number>>;
  readonly bytes: number;
}

/** One worker's interval: requests completed in [index*intervalMs, (index+1)*intervalMs) after the start. */
export interface IntervalSnapshot {
  readonly index: number;
  readonly worker: number;
  readonly scenarios: Readonly<Record<string, ScenarioInterval>>;
  /** Open model: requests due in this interval. */
  readonly scheduled: number;
  /** Sent more than lateThresholdMs after their scheduled time. */
  readonly late: number;
  /** Of the late ones: they waited for a slot because maxInFlight was reached. */
  readonly capped: number;
  /** Never sent: the backlog was full, or the run stopped first. */
  readonly dropped: number;
  /** In flight at the end of the interval. */
  readonly inFlight: number;
  /** Closed model: active virtual users at the end of the interval. */
  readonly vus: number;
}

export interface WorkerDone {
  /** Share of time this worker's event loop was busy (0-1): near 1 means the generator, not the server, set the pace. */
  readonly eventLoopUtilization: number;
  readonly maxLagMs: number;
  readonly endedAt: number;
}

export type ToWorker =
  | { readonly kind: 'start'; readonly startAt: number }
  | { readonly kind: 'stop' };

export type FromWorker =
  | { readonly kind: 'ready' }
  | { readonly kind: 'interval'; readonly snapshot: IntervalSnapshot }
  | { readonly kind: 'done'; readonly done: WorkerDone }
  | { readonly kind: 'error'; readonly message: string };

/** Wall-clock milliseconds with sub-millisecond resolution, comparable between threads. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
