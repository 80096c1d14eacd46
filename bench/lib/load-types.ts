/** The load generators the bench can drive: autocannon (Node, per-response timings) or wrk (C, lighter). */
export const LOAD_GENERATORS = ['autocannon', 'wrk'] as const;
export type LoadGenerator = (typeof LOAD_GENERATORS)[number];

export function isLoadGenerator(name: string): name is LoadGenerator {
  return (LOAD_GENERATORS as readonly string[]).includes(name);
}

/** What the driver asks a load-generator process to do: one run against one URL. */
export interface LoadJob {
  readonly url: string;
  readonly method: 'GET' | 'POST';
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
  readonly connections: number;
  readonly durationS: number;
  /** Seconds before a request counts as timed out (an error). */
  readonly timeoutS: number;
}

export interface LatencySummary {
  readonly p50: number;
  readonly p90: number;
  readonly p97_5: number;
  readonly p99: number;
  readonly p99_9: number;
  readonly max: number;
  readonly mean: number;
}

/** What a load-generator process reports back; latencies in ms. */
export interface LoadSummary {
  readonly generator: LoadGenerator;
  /** Completed requests (any status) divided by the run's measured duration. */
  readonly rps: number;
  /** autocannon's own figure: mean of its per-second request counts (autocannon only). */
  readonly rpsAutocannon?: number;
  readonly requests: number;
  /** Latency samples recorded (one per response). */
  readonly samples: number;
  readonly durationS: number;
  /** From every response's own timing (µs resolution). */
  readonly latency: LatencySummary;
  /** autocannon's histogram, which keeps whole milliseconds only (autocannon only). */
  readonly latencyAutocannon?: { readonly p50: number; readonly p97_5: number; readonly p99: number };
  readonly status2xx: number;
  readonly non2xx: number;
  readonly statusCounts: Readonly<Record<string, number>>;
  readonly errors: number;
  readonly timeouts: number;
  /** CPU used by the load generator process during the run, in % of one core. */
  readonly generatorCpuPct: number;
}

export type WorkerMessage =
  | { readonly kind: 'result'; readonly summary: LoadSummary }
  | { readonly kind: 'error'; readonly message: string };
