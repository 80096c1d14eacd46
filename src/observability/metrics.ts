import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { BufferedCounter, BufferedHistogram, type CounterCell, type HistogramCell } from './buffered-metrics.js';

/**
 * The API's Prometheus metrics. One registry per app instance (not prom-client's global one), so
 * tests can run several apps in one process and each /metrics shows only its own figures.
 */
export class ApiMetrics {
  readonly registry = new Registry();

  readonly httpRequests = new BufferedCounter({
    name: 'kgents_http_requests_total',
    help: 'HTTP requests answered, by route pattern, method and status code.',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  });

  readonly httpDuration = new BufferedHistogram({
    name: 'kgents_http_request_duration_seconds',
    help: 'Time from request received to response sent, by route pattern, method and status code.',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly rateLimitDecisions = new BufferedCounter({
    name: 'kgents_rate_limit_decisions_total',
    help: 'Admission decisions for authenticated requests: allowed, rate_limited or quota_exceeded, by tier.',
    labelNames: ['decision', 'tier'] as const,
    registers: [this.registry],
  });

  readonly authFailures = new Counter({
    name: 'kgents_auth_failures_total',
    help: 'Requests refused by authentication or authorisation, by error code.',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  readonly idempotency = new Counter({
    name: 'kgents_idempotency_requests_total',
    help: 'Requests carrying an Idempotency-Key, by outcome: started, replayed, in_progress, mismatch.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly tokensUsed = new BufferedCounter({
    name: 'kgents_agentese_tokens_total',
    help: 'AGENTESE tokens charged to tenants, by tier.',
    labelNames: ['tier'] as const,
    registers: [this.registry],
  });

  readonly dependencyMode = new Gauge({
    name: 'kgents_dependency_mode',
    help: 'Which backend each dependency currently runs on: 1 for the active mode, 0 otherwise.',
    labelNames: ['component', 'mode'] as const,
    registers: [this.registry],
  });

  readonly dependencyModeSwitches = new Counter({
    name: 'kgents_dependency_mode_switches_total',
    help: 'Switches of a dependency between its backend and its fallback (redis <-> memory, jetstream <-> fallback), by the mode entered. A fallback shorter than a scrape interval shows here, not in kgents_dependency_mode.',
    labelNames: ['component', 'to'] as const,
    registers: [this.registry],
  });

  readonly dependencyUp = new Gauge({
    name: 'kgents_dependency_up',
    help: '1 when the dependency is reachable and working, 0 when down or not configured.',
    labelNames: ['component'] as const,
    registers: [this.registry],
  });

  readonly ready = new Gauge({
    name: 'kgents_ready',
    help: '1 while the instance reports ready, 0 while starting or draining.',
    registers: [this.registry],
  });

  readonly buildInfo = new Gauge({
    name: 'kgents_build_info',
    help: 'Always 1; labels carry the version and Node.js version.',
    labelNames: ['version', 'node'] as const,
    registers: [this.registry],
  });

  readonly usageEvents = new BufferedCounter({
    name: 'kgents_usage_events_total',
    help: 'Usage events of billable calls, by outcome: published (JetStream acked), queued (fsynced to the fallback queue), buffered (async mode), refused (could not be made durable; the call got 503).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly circuitState = new Gauge({
    name: 'kgents_circuit_state',
    help: 'Event-bus circuit breaker: 0 closed, 1 half-open, 2 open.',
    registers: [this.registry],
  });

  readonly circuitTransitions = new Counter({
    name: 'kgents_circuit_transitions_total',
    help: 'Circuit breaker transitions, by the state entered.',
    labelNames: ['to'] as const,
    registers: [this.registry],
  });

  readonly circuitEarlyProbes = new Counter({
    name: 'kgents_circuit_early_probes_total',
    help: 'Early probes: the open circuit half-opened before its reset timer because the bus looked back, by signal (reconnect, leader_elected, stream_info).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly fallbackDrained = new Counter({
    name: 'kgents_fallback_queue_drained_total',
    help: 'Usage events published back to JetStream from the fallback queue.',
    registers: [this.registry],
  });

  readonly fallbackDrainDuplicates = new Counter({
    name: 'kgents_fallback_queue_drain_duplicates_total',
    help: 'Drained events JetStream reported as duplicates (their first publish had landed after all).',
    registers: [this.registry],
  });

  readonly usageUndeliverable = new Counter({
    name: 'kgents_usage_undeliverable_total',
    help: 'Usage events that could not be delivered at all, by reason (malformed queue record, async buffer lost). Should stay 0.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  private readonly activeModes = new Map<string, string>();

  constructor(version: string, instance: string) {
    this.registry.setDefaultLabels({ instance });
    collectDefaultMetrics({ register: this.registry, prefix: 'kgents_' });
    this.buildInfo.set({ version, node: process.version }, 1);
  }

  /** Queue gauges read the meter's state at scrape time rather than being pushed on every change. */
  observeMeter(status: () => { circuit: string; fallback_queue_depth: number; fallback_queue_bytes: number; fallback_queue_oldest_age_s: number }): void {
    const reg = this.registry;
    new Gauge({ name: 'kgents_fallback_queue_depth', help: 'Usage events waiting in the on-disk fallback queue.', registers: [reg], collect() {
      this.set(status().fallback_queue_depth);
    } });
    new Gauge({ name: 'kgents_fallback_queue_bytes', help: 'Bytes waiting in the on-disk fallback queue.', registers: [reg], collect() {
      this.set(status().fallback_queue_bytes);
    } });
    new Gauge({ name: 'kgents_fallback_queue_oldest_age_seconds', help: 'Age of the oldest undrained event; alert before it nears USAGE_DUPLICATE_WINDOW_S.', registers: [reg], collect() {
      this.set(status().fallback_queue_oldest_age_s);
    } });
  }

  private readonly requestSeries = new Map<string, Map<string, Map<number, { count: CounterCell; duration: HistogramCell }>>>();

  /**
   * Per-request accounting on the hot path: cells per route, method and status (see
   * buffered-metrics.ts), looked up without building a label object or a key string.
   */
  observeRequest(route: string, method: string, status: number, seconds: number): void {
    const series = this.requestSeriesFor(route, method, status);
    series.count.inc();
    series.duration.observe(seconds);
  }

  /** observeRequest for one fixed route, method and status, its cells looked up once (/health's fast path). */
  requestRecorder(route: string, method: string, status: number): (seconds: number) => void {
    const { count, duration } = this.requestSeriesFor(route, method, status);
    return (seconds) => {
      count.inc();
      duration.observe(seconds);
    };
  }

  private requestSeriesFor(route: string, method: string, status: number): { count: CounterCell; duration: HistogramCell } {
    let byMethod = this.requestSeries.get(route);
    if (!byMethod) {
      byMethod = new Map();
      this.requestSeries.set(route, byMethod);
    }
    let byStatus = byMethod.get(method);
    if (!byStatus) {
      byStatus = new Map();
      byMethod.set(method, byStatus);
    }
    let series = byStatus.get(status);
    if (!series) {
      const labels = { route, method, status: String(status) };
      series = { count: this.httpRequests.cell(labels), duration: this.httpDuration.cell(labels) };
      byStatus.set(status, series);
    }
    return series;
  }

  // Cells by their label values, as in observeRequest: a key string built per call (and the label
  // object, evaluated before the lookup) was ~0.9 µs of every invoke in a CPU profile (16:17 UTC run
  // of `node dist/bench/run.js --profile`), and a new string must be hashed on each lookup.
  private readonly admissionCells = new Map<string, Map<string, CounterCell>>();
  private readonly tokenCells = new Map<string, CounterCell>();
  private readonly usageEventCells = new Map<string, CounterCell>();

  /** kgents_rate_limit_decisions_total{decision,tier} += 1. */
  countAdmission(decision: 'allowed' | 'rate_limited' | 'quota_exceeded', tier: string): void {
    let byTier = this.admissionCells.get(decision);
    if (!byTier) {
      byTier = new Map();
      this.admissionCells.set(decision, byTier);
    }
    let cell = byTier.get(tier);
    if (!cell) {
      cell = this.rateLimitDecisions.cell({ decision, tier });
      byTier.set(tier, cell);
    }
    cell.inc();
  }

  /** kgents_agentese_tokens_total{tier} += tokens. */
  countTokens(tier: string, tokens: number): void {
    let cell = this.tokenCells.get(tier);
    if (!cell) {
      cell = this.tokensUsed.cell({ tier });
      this.tokenCells.set(tier, cell);
    }
    cell.inc(tokens);
  }

  /** kgents_usage_events_total{outcome} += 1. */
  countUsageEvent(outcome: string): void {
    let cell = this.usageEventCells.get(outcome);
    if (!cell) {
      cell = this.usageEvents.cell({ outcome });
      this.usageEventCells.set(outcome, cell);
    }
    cell.inc();
  }

  /** The active mode of a dependency; a change from the last one set is counted as a switch. */
  setMode(component: string, active: string, all: readonly string[]): void {
    const previous = this.activeModes.get(component);
    this.activeModes.set(component, active);
    if (previous !== undefined && previous !== active) this.dependencyModeSwitches.inc({ component, to: active });
    for (const mode of all) this.dependencyMode.set({ component, mode }, mode === active ? 1 : 0);
  }
}
