import { hasOtelFaults, type OtelCollectorState, type OtelFaultControl } from '../../stack/otel-collector.js';
import type { StackControl } from '../../stack/stack.js';
import type { LatencySummary } from '../measure.js';
import { recoveryCheck, servingCheck } from '../measure.js';
import { ScenarioUnsupportedError, type ChaosContext, type Fault, type Scenario, type ScenarioFigures, type SlaCheck } from '../scenario.js';

/** The SLA's "p95 within 10 % of normal"; the 1 ms floor is the noise of a sub-10-ms p95 on a shared machine (stated in the report). */
const P95_RATIO = 1.1;
const P95_FLOOR_MS = 1;
/** "Bounded memory": resident memory of an instance may grow at most this much during the fault. */
const RSS_GROWTH_LIMIT_BYTES = 64 * 1024 * 1024;
const EXPORT_RESUMED_MS = 60_000;
export const MARK_REFUSING = 'collector_refusing';
export const MARK_MEMORY = 'tracing_memory';
export const MARK_EXPORT_RESUMED = 'export_resumed';

interface InstanceSample {
  readonly rss: number;
  readonly queue: number;
  readonly dropped: number;
  readonly failures: number;
  readonly cap: number;
}

function metricSum(text: string, name: string): number {
  let sum = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) {
      sum += v;
      seen = true;
    }
  }
  return seen ? sum : NaN;
}

/** Each API instance's memory and tracing figures, from its own /metrics. */
async function sampleInstances(ctx: ChaosContext): Promise<Map<string, InstanceSample>> {
  const out = new Map<string, InstanceSample>();
  if (ctx.target.kind !== 'stack') return out;
  const apis = (await ctx.target.state()).parts.filter((p) => p.kind === 'api' && p.status === 'running');
  await Promise.all(apis.map(async (p) => {
    try {
      const res = await fetch(`${p.url}/metrics`, { signal: AbortSignal.timeout(2000) });
      const text = await res.text();
      out.set(p.instance_id ?? p.id, {
        rss: metricSum(text, 'kgents_process_resident_memory_bytes'),
        queue: metricSum(text, 'kgents_tracing_queue_spans'),
        dropped: metricSum(text, 'kgents_tracing_spans_dropped_total'),
        failures: metricSum(text, 'kgents_tracing_export_failures_total'),
        cap: metricSum(text, 'kgents_tracing_queue_capacity_spans'),
      });
    } catch {
      // an instance that does not answer is the load's business, not this watch's
    }
  }));
  return out;
}

/** Samples the instances every second during the fault: the largest span queue and RSS growth. */
class MemoryWatch {
  maxQueue = 0;
  cap = Number.POSITIVE_INFINITY;
  maxGrowth = 0;
  dropped = 0;
  failures = 0;
  tracing = true;
  private baseline = new Map<string, InstanceSample>();
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(private readonly ctx: ChaosContext) {}

  async start(): Promise<void> {
    this.baseline = await sampleInstances(this.ctx);
    this.tracing = [...this.baseline.values()].some((s) => Number.isFinite(s.queue));
    this.timer = setInterval(() => void this.look(), 1000);
    this.timer.unref();
  }

  async look(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const now = await sampleInstances(this.ctx);
      let dropped = 0;
      let failures = 0;
      for (const [id, s] of now) {
        const base = this.baseline.get(id);
        if (Number.isFinite(s.queue)) this.maxQueue = Math.max(this.maxQueue, s.queue);
        if (Number.isFinite(s.cap)) this.cap = Math.min(this.cap, s.cap);
        if (base && Number.isFinite(s.rss) && Number.isFinite(base.rss)) this.maxGrowth = Math.max(this.maxGrowth, s.rss - base.rss);
        if (base) {
          dropped += (s.dropped || 0) - (base.dropped || 0);
          failures += (s.failures || 0) - (base.failures || 0);
        }
      }
      this.dropped = Math.max(this.dropped, dropped);
      this.failures = Math.max(this.failures, failures);
    } finally {
      this.busy = false;
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

interface Run {
  readonly watch: MemoryWatch;
  refuseTimer: NodeJS.Timeout | undefined;
  atHeal: OtelCollectorState | undefined;
  marked: boolean;
}

const runs = new WeakMap<Fault, Run>();

function collector(ctx: ChaosContext): StackControl & OtelFaultControl {
  const t = ctx.target;
  if (t.kind !== 'stack') throw new ScenarioUnsupportedError('observability-down', t.kind, 'it needs the local stack\'s stand-in OpenTelemetry collector');
  if (!hasOtelFaults(t.control)) throw new ScenarioUnsupportedError('observability-down', t.kind, 'this stack control has no OpenTelemetry collector faults');
  return t.control;
}

function p95Check(f: ScenarioFigures): SlaCheck {
  const requests = f.requests as ScenarioFigures['requests'] & { latency_before_fault?: LatencySummary; latency_during_fault?: LatencySummary };
  const before = requests.latency_before_fault?.p95_ms ?? null;
  const during = requests.latency_during_fault?.p95_ms ?? null;
  const check = `p95 during the fault within ${Math.round((P95_RATIO - 1) * 100)} % of normal (+${P95_FLOOR_MS} ms floor)`;
  if (before === null || during === null) return { check, verdict: 'N/A', detail: 'not enough requests before or during the fault' };
  const limit = before * P95_RATIO + P95_FLOOR_MS;
  return {
    check, verdict: during <= limit ? 'PASS' : 'FAIL',
    detail: `p95 ${during.toFixed(2)} ms during vs ${before.toFixed(2)} ms before (ratio ${(during / before).toFixed(3)}; limit ${limit.toFixed(2)} ms)`,
  };
}

function memoryCheck(f: ScenarioFigures): SlaCheck {
  const mark = f.marks.find((m) => m.name === MARK_MEMORY);
  const check = 'bounded memory: span queue at its cap or below, RSS growth under 64 MB';
  if (!mark?.detail) return { check, verdict: 'N/A', detail: 'no memory samples' };
  const queue = Number(/max queue (\d+)/.exec(mark.detail)?.[1] ?? NaN);
  const cap = Number(/cap (\d+)/.exec(mark.detail)?.[1] ?? NaN);
  const growth = Number(/RSS growth (-?[\d.]+) MB/.exec(mark.detail)?.[1] ?? NaN) * 1024 * 1024;
  const ok = queue <= cap && growth < RSS_GROWTH_LIMIT_BYTES;
  return { check, verdict: Number.isFinite(queue) && Number.isFinite(growth) ? (ok ? 'PASS' : 'FAIL') : 'N/A', detail: mark.detail };
}

/**
 * The API instances' OpenTelemetry collector fails: first it hangs (accepts connections, never
 * answers: exports wait until OTEL_EXPORTER_OTLP_TIMEOUT), then, halfway through the fault, it
 * refuses connections; then it heals. Tracing must not show in the service: no failed request, p95
 * as before, memory bounded by the span queue's cap (spans beyond it are dropped and counted).
 * Needs a stack started with `otelFaults` (`kgents stack up --otel-faults`).
 */
export const observabilityDown: Scenario = {
  name: 'observability-down',
  summary: 'the OpenTelemetry collector hangs, then refuses connections, then comes back',
  sla: 'no failed request; p95 during the fault within 10 % of normal (+1 ms floor); span queue at most its cap and RSS growth under 64 MB; span export resumes within 60 s of healing',
  targets: ['stack'],
  recoveryTimeoutMs: 90_000,
  defaultFaultMs: 20_000,

  async inject(ctx): Promise<Fault> {
    const control = collector(ctx);
    const before = await control.otelCollector();
    const watch = new MemoryWatch(ctx);
    await watch.start();
    if (!watch.tracing) throw new ScenarioUnsupportedError('observability-down', 'stack', 'the API instances have no tracing metrics: is OTEL_EXPORTER_OTLP_ENDPOINT set (kgents stack up --otel-faults)?');
    const at = Date.now();
    await control.setOtelFault({ mode: 'hang' });
    const run: Run = { watch, refuseTimer: undefined, atHeal: undefined, marked: false };
    run.refuseTimer = setTimeout(() => {
      void control.setOtelFault({ mode: 'refuse' }).then(() => ctx.mark(MARK_REFUSING, 'the collector now refuses connections'), (err: unknown) => ctx.log(`could not switch the collector to refuse: ${String(err)}`));
    }, ctx.faultMs / 2);
    run.refuseTimer.unref();
    const fault: Fault = {
      description: `the API instances' OpenTelemetry collector hangs (accepts, never answers) for ${ctx.faultMs / 2000} s, then refuses connections for ${ctx.faultMs / 2000} s`,
      at,
      details: { collector: before.endpoint, spans_received_before: before.spans_received, export_requests_before: before.export_requests },
    };
    runs.set(fault, run);
    return fault;
  },

  async heal(ctx, fault) {
    const run = runs.get(fault);
    clearTimeout(run?.refuseTimer);
    if (run) {
      await run.watch.look();
      run.watch.stop();
      ctx.mark(MARK_MEMORY, `max queue ${run.watch.maxQueue} spans (cap ${run.watch.cap}); RSS growth ${(run.watch.maxGrowth / 1024 / 1024).toFixed(1)} MB; spans dropped ${run.watch.dropped}; failed exports ${run.watch.failures}`);
    }
    const state = await collector(ctx).setOtelFault({ mode: 'pass' });
    if (run) run.atHeal = state;
  },

  async recovered(ctx, fault) {
    const run = runs.get(fault);
    const state = await collector(ctx).otelCollector();
    if (state.mode !== 'pass' || !run?.atHeal) return false;
    const resumed = state.spans_received > run.atHeal.spans_received;
    if (resumed && !run.marked) {
      run.marked = true;
      ctx.mark(MARK_EXPORT_RESUMED, `the collector received ${state.spans_received - run.atHeal.spans_received} spans since healing`);
    }
    return resumed;
  },

  judge(f) {
    return [
      servingCheck(f, 'no failed request while the collector is down', 0),
      p95Check(f),
      memoryCheck(f),
      recoveryCheck(f, EXPORT_RESUMED_MS, 'span export resumed', true),
    ];
  },
};
