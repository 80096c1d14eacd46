import { totalmem } from 'node:os';
import { constants, monitorEventLoopDelay, PerformanceObserver, type IntervalHistogram } from 'node:perf_hooks';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';

/** What the process looks like right now, as far as admission decisions care. */
export interface PressureSample {
  /** p99 event-loop delay over the last window (ms); includes a late sampling tick itself. */
  readonly eventLoopDelayMs: number;
  /** Old generation (committed pages) right after the most recent full GC: what survives it, garbage freed. */
  readonly heapLiveBytes: number;
  /** Old generation (committed pages) right now, garbage included: leads heapLiveBytes when memory climbs fast. */
  readonly heapUsedBytes: number;
  /** Largest old generation V8 will grow to (--max-old-space-size) before it dies of OOM. */
  readonly heapLimitBytes: number;
  readonly rssBytes: number;
  /** The memory limit RSS is held against (configured or the container's); 0 when there is none. */
  readonly memoryLimitBytes: number;
  readonly at: number;
  /** Sequence number of the event-loop window; a full GC publishes a new heap figure within the same window. */
  readonly window: number;
}

/** A source of samples: the process monitor in production, a hand-driven one in tests. */
export interface PressureSource {
  latest(): PressureSample;
  /** Called after every sample, on the event loop; the listener decides and caches the verdict. */
  onSample(listener: (sample: PressureSample) => void): void;
  start(): void;
  stop(): void;
}

export interface ProcessPressureOptions {
  /** Sampling period, also the event-loop delay window. */
  readonly sampleMs: number;
  /** Limit for RSS; 0: the container (cgroup) limit when there is one. */
  readonly memoryLimitBytes: number;
}

const MIB = 1024 * 1024;
/** Event-loop delay histogram resolution; the histogram's figures include it, so it is subtracted. */
const RESOLUTION_MS = 10;
/** Spaces outside the old generation, which is what --max-old-space-size caps. */
const NOT_OLD_GENERATION = new Set(['new_space', 'new_large_object_space', 'read_only_space']);

/**
 * V8 dies when the old generation cannot grow, and heap_size_limit also counts the young generation
 * (48 MiB on Node 20), which matters for small heaps. So the flag is read back when it was given.
 */
export function oldGenerationLimitBytes(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): number {
  const flags = [...execArgv, ...nodeOptions.split(/\s+/)];
  let mib: number | undefined;
  for (const flag of flags) {
    const m = /^--max[-_]old[-_]space[-_]size=(\d+)$/.exec(flag);
    if (m) mib = Number(m[1]);
  }
  const heapLimit = getHeapStatistics().heap_size_limit;
  return mib !== undefined && mib * MIB < heapLimit ? mib * MIB : heapLimit;
}

/** The container limit, if the process runs under one (unconstrained reports 0 or ~2^64). */
export function containerMemoryLimitBytes(): number {
  const limit = typeof process.constrainedMemory === 'function' ? process.constrainedMemory() : 0;
  return limit > 0 && limit < totalmem() ? limit : 0;
}

/**
 * Committed old-generation pages, not object bytes: V8 refuses to grow when its committed capacity
 * would pass the limit, and fragmentation puts that point 10-15% above the object bytes (measured:
 * a 64 MiB old generation died with 54 MiB of objects).
 */
function oldGenerationCommittedBytes(): number {
  let committed = 0;
  for (const space of getHeapSpaceStatistics()) if (!NOT_OLD_GENERATION.has(space.space_name)) committed += space.space_size;
  return committed;
}

/**
 * Samples the process on a timer so that the request path only reads a cached verdict. Heap is
 * judged by what survives a full GC (read from the GC's own completion event): heap used between
 * GCs is mostly garbage and would make an idle instance look full.
 */
export class ProcessPressureMonitor implements PressureSource {
  private readonly histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  private readonly gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if ((entry as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        this.heapLive = oldGenerationCommittedBytes();
        // Memory can climb from threshold to OOM within one window, so a full GC reports at once.
        if (this.timer) this.publish({ ...this.sample, heapLiveBytes: this.heapLive, heapUsedBytes: this.heapLive, at: Date.now() });
      }
    }
  });
  private readonly listeners: ((sample: PressureSample) => void)[] = [];
  private readonly heapLimit = oldGenerationLimitBytes();
  private readonly memoryLimit: number;
  private heapLive = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastTick = 0;
  private sample: PressureSample;

  constructor(private readonly options: ProcessPressureOptions) {
    this.memoryLimit = options.memoryLimitBytes > 0 ? options.memoryLimitBytes : containerMemoryLimitBytes();
    this.sample = { eventLoopDelayMs: 0, heapLiveBytes: 0, heapUsedBytes: 0, heapLimitBytes: this.heapLimit, rssBytes: 0, memoryLimitBytes: this.memoryLimit, at: Date.now(), window: 0 };
  }

  latest(): PressureSample {
    return this.sample;
  }

  onSample(listener: (sample: PressureSample) => void): void {
    this.listeners.push(listener);
  }

  start(): void {
    if (this.timer) return;
    this.histogram.enable();
    this.gcObserver.observe({ entryTypes: ['gc'] });
    this.lastTick = performance.now();
    this.timer = setInterval(() => this.tick(), this.options.sampleMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.histogram.disable();
    this.gcObserver.disconnect();
  }

  private tick(): void {
    const now = performance.now();
    // A loop blocked for the whole window may leave the histogram without the long sample yet; the
    // lateness of this very tick catches it.
    const late = Math.max(0, now - this.lastTick - this.options.sampleMs);
    this.lastTick = now;
    const p99 = this.histogram.count > 0 ? Math.max(0, this.histogram.percentile(99) / 1e6 - RESOLUTION_MS) : 0;
    this.histogram.reset();
    // What is used now bounds what is live: after a GC the observer has not reported yet, it is lower.
    const used = oldGenerationCommittedBytes();
    const liveNow = Math.min(this.heapLive, used);
    this.publish({
      eventLoopDelayMs: Math.max(p99, late),
      heapLiveBytes: liveNow,
      heapUsedBytes: used,
      heapLimitBytes: this.heapLimit,
      rssBytes: this.memoryLimit > 0 ? process.memoryUsage.rss() : 0,
      memoryLimitBytes: this.memoryLimit,
      at: Date.now(),
      window: this.sample.window + 1,
    });
  }

  private publish(sample: PressureSample): void {
    this.sample = sample;
    for (const l of this.listeners) l(sample);
  }
}
