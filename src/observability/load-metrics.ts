import { Counter, Gauge, type Registry } from 'prom-client';

export interface LoadReading {
  readonly overloaded: boolean;
  readonly eventLoopDelayMs: number;
  readonly heapLiveBytes: number;
  readonly heapLimitBytes: number;
  readonly heapRatio: number;
  readonly heapUsedRatio: number;
  readonly rssRatio: number;
}

export interface LoadMetrics {
  readonly shed: Counter<'reason'>;
}

/**
 * What the admission guard sees, at scrape time. prom-client's defaults already export heap used
 * and total, RSS and an event-loop lag over the scrape interval; these add the guard's own window,
 * the live heap after GC against the limit V8 dies at, and the requests it refused.
 */
export function registerLoadMetrics(registry: Registry, read: () => LoadReading): LoadMetrics {
  const existing = registry.getSingleMetric('kgents_load_shed_total');
  if (existing) return { shed: existing as Counter<'reason'> };
  const gauge = (name: string, help: string, value: (r: LoadReading) => number): void => {
    new Gauge({ name, help, registers: [registry], collect() {
      this.set(value(read()));
    } });
  };
  gauge('kgents_overloaded', '1 while the instance sheds new requests (503 ERR_OVERLOADED), else 0.', (r) => (r.overloaded ? 1 : 0));
  gauge('kgents_event_loop_delay_p99_seconds', 'p99 event-loop delay over the load-shedding sample window (SHED_SAMPLE_MS).', (r) => r.eventLoopDelayMs / 1000);
  gauge('kgents_heap_live_bytes', 'Old-generation heap still live after the last full GC.', (r) => r.heapLiveBytes);
  gauge('kgents_heap_limit_bytes', 'Largest old generation V8 grows to (--max-old-space-size) before the process dies of OOM.', (r) => r.heapLimitBytes);
  gauge('kgents_heap_live_ratio', 'kgents_heap_live_bytes / kgents_heap_limit_bytes; shedding starts at SHED_HEAP_RATIO.', (r) => r.heapRatio);
  gauge('kgents_heap_used_ratio', 'Old-generation heap in use now (garbage included) / kgents_heap_limit_bytes; shedding also starts half way from SHED_HEAP_RATIO to 1.', (r) => r.heapUsedRatio);
  gauge('kgents_memory_limit_ratio', 'RSS / memory limit (MEMORY_LIMIT_BYTES or the container limit); 0 when there is no limit.', (r) => r.rssRatio);
  return {
    shed: new Counter({ name: 'kgents_load_shed_total', help: 'Requests refused with 503 ERR_OVERLOADED, by the signal that was over its threshold.', labelNames: ['reason'] as const, registers: [registry] }),
  };
}
