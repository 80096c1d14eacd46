import { httpGet } from '../load/target.js';
import { parsePrometheus, type MetricSample } from './prometheus.js';

/** What a soak reads from one instance's /metrics at one moment. */
export interface InstanceSample {
  /** Wall-clock ms. */
  readonly at: number;
  /** The scraped URL. */
  readonly url: string;
  /** The `instance` label (falls back to the URL's host): instances behind one balanced URL stay apart. */
  readonly instance: string;
  readonly rssBytes: number | undefined;
  readonly heapUsedBytes: number | undefined;
  /** The young generation's part of heap used (new and new_large_object spaces), when /metrics breaks the heap down by space. */
  readonly youngBytes: number | undefined;
  /** 0 closed, 1 half-open, 2 open. */
  readonly circuitState: number | undefined;
  /** kgents_circuit_transitions_total by `to`. */
  readonly transitions: Readonly<Record<string, number>>;
  /** kgents_dependency_mode_switches_total by `<component> to <mode>` (e.g. `redis to memory`). */
  readonly modeSwitches: Readonly<Record<string, number>>;
  readonly fallbackQueueDepth: number | undefined;
  /** Full (mark-compact) collections so far: kgents_nodejs_gc_duration_seconds_count{kind="major"}. */
  readonly majorGcs: number | undefined;
}

export interface ScrapeFailure {
  readonly at: number;
  readonly url: string;
  readonly error: string;
}

export const METRIC = {
  rss: 'kgents_process_resident_memory_bytes',
  heapUsed: 'kgents_nodejs_heap_size_used_bytes',
  circuitState: 'kgents_circuit_state',
  transitions: 'kgents_circuit_transitions_total',
  modeSwitches: 'kgents_dependency_mode_switches_total',
  fallbackDepth: 'kgents_fallback_queue_depth',
  gcCount: 'kgents_nodejs_gc_duration_seconds_count',
  heapSpaceUsed: 'kgents_nodejs_heap_space_size_used_bytes',
} as const;

/** The soak's figures from one scrape: one InstanceSample per `instance` label found. */
export function extractSamples(url: string, at: number, samples: readonly MetricSample[]): InstanceSample[] {
  const fallback = (() => {
    try {
      return new URL(url).host;
    } catch {
      return url;
    }
  })();
  const byInstance = new Map<string, MetricSample[]>();
  for (const s of samples) {
    if (!s.name.startsWith('kgents_')) continue;
    const instance = s.labels.instance ?? fallback;
    let list = byInstance.get(instance);
    if (!list) {
      list = [];
      byInstance.set(instance, list);
    }
    list.push(s);
  }
  const out: InstanceSample[] = [];
  for (const [instance, list] of byInstance) {
    const one = (name: string): number | undefined => list.find((s) => s.name === name)?.value;
    const transitions: Record<string, number> = {};
    const modeSwitches: Record<string, number> = {};
    for (const s of list) {
      if (s.name === METRIC.transitions) transitions[s.labels.to ?? 'unknown'] = s.value;
      else if (s.name === METRIC.modeSwitches) modeSwitches[`${s.labels.component ?? 'unknown'} to ${s.labels.to ?? 'unknown'}`] = s.value;
    }
    const major = list.filter((s) => s.name === METRIC.gcCount && s.labels.kind === 'major');
    const young = list.filter((s) => s.name === METRIC.heapSpaceUsed && (s.labels.space === 'new' || s.labels.space === 'new_large_object'));
    const rss = one(METRIC.rss);
    const heap = one(METRIC.heapUsed);
    if (rss === undefined && heap === undefined) continue;
    out.push({
      at, url, instance, rssBytes: rss, heapUsedBytes: heap, youngBytes: young.length > 0 ? young.reduce((a, s) => a + s.value, 0) : undefined, circuitState: one(METRIC.circuitState), transitions, modeSwitches,
      fallbackQueueDepth: one(METRIC.fallbackDepth), majorGcs: major.length > 0 ? major.reduce((a, s) => a + s.value, 0) : undefined,
    });
  }
  return out;
}

/** Scrapes every URL's /metrics every `intervalMs` until stopped. */
export class MetricsSampler {
  readonly samples: InstanceSample[] = [];
  readonly failures: ScrapeFailure[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly urls: readonly string[], private readonly intervalMs: number, private readonly onSample?: (s: InstanceSample) => void) {}

  start(): void {
    const tick = (): void => {
      if (this.stopped) return;
      this.inFlight = this.scrapeAll();
      this.timer = setTimeout(tick, this.intervalMs);
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.inFlight;
  }

  /** One scrape of every URL now. */
  async scrapeAll(): Promise<void> {
    await Promise.all(this.urls.map(async (url) => {
      const at = Date.now();
      const r = await httpGet(`${url}/metrics`, { timeoutMs: Math.max(1000, Math.min(10_000, this.intervalMs * 2)) });
      if (!r.ok || r.status !== 200) {
        this.failures.push({ at, url, error: r.ok ? `status ${r.status}` : r.error ?? 'no answer' });
        return;
      }
      const found = extractSamples(url, at, parsePrometheus(r.body ?? ''));
      if (found.length === 0) this.failures.push({ at, url, error: `no ${METRIC.heapUsed} or ${METRIC.rss} in /metrics` });
      for (const s of found) {
        this.samples.push(s);
        this.onSample?.(s);
      }
    }));
  }
}
