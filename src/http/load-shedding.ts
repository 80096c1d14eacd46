import type { PressureSample, PressureSource } from '../adapters/local/pressure-monitor.js';
import { ApiError } from '../errors/api-error.js';

export type ShedReason = 'event_loop' | 'heap' | 'memory';

export interface SheddingPolicy {
  /** p99 event-loop delay (ms) that counts as overload; 0 disables the signal. */
  readonly eventLoopDelayMs: number;
  /** Live old-generation heap / its limit that counts as overload; 0 disables the signal. */
  readonly heapRatio: number;
  /** RSS / memory limit that counts as overload; 0 (or no known limit) disables the signal. */
  readonly rssRatio: number;
  readonly retryAfterS: number;
}

/** Served even while shedding: probes and scrapes must see the instance as it is. */
export const SHEDDING_EXEMPT_ROUTES: ReadonlySet<string> = new Set(['/health', '/ready', '/health/saas', '/metrics']);

/**
 * One slow window can be a single long GC, a sync burst or the machine descheduling the process;
 * three in a row is overload.
 */
const LOOP_WINDOWS_TO_ENTER = 3;
/** Memory must fall this far below its threshold before shedding stops, so the state does not flap. */
const MEMORY_RELEASE_MARGIN = 0.05;

export interface ShedState {
  readonly reason: ShedReason | undefined;
  readonly sample: PressureSample;
  readonly heapRatio: number;
  readonly heapUsedRatio: number;
  readonly rssRatio: number;
}

/**
 * V8 may let the old generation fill with garbage right up to its limit before the next full GC, so
 * live heap (measured after a GC) can jump from below the threshold to OOM between two readings.
 * Heap in use now, garbage included, is the early warning: half way from the threshold to the limit.
 */
export function usedHeapThreshold(heapRatio: number): number {
  return heapRatio + (1 - heapRatio) / 2;
}

/**
 * Decides once per sample whether this instance takes new work; requests only read the cached
 * verdict. Refused requests get 503 ERR_OVERLOADED with Retry-After and Connection: close, so the
 * client (or the balancer) retries elsewhere and this instance sheds the connection too.
 */
export class LoadShedder {
  private current: ShedReason | undefined;
  private loopWindowsOver = 0;
  private lastWindow = -1;
  private refusal: ApiError | undefined;
  private readonly listeners: ((state: ShedState) => void)[] = [];

  constructor(private readonly source: PressureSource, private readonly policy: SheddingPolicy) {
    source.onSample((sample) => this.evaluate(sample));
  }

  get reason(): ShedReason | undefined {
    return this.current;
  }

  /** Called on every change of verdict (start, reason change, stop). */
  onChange(listener: (state: ShedState) => void): void {
    this.listeners.push(listener);
  }

  state(): ShedState {
    const sample = this.source.latest();
    return { reason: this.current, sample, ...ratios(sample) };
  }

  /** The hot-path check: the error to answer with, or undefined to admit. */
  refusalFor(route: string | undefined): ApiError | undefined {
    if (this.refusal === undefined || (route !== undefined && SHEDDING_EXEMPT_ROUTES.has(route))) return undefined;
    return this.refusal;
  }

  evaluate(sample: PressureSample): void {
    const p = this.policy;
    const { heapRatio, heapUsedRatio, rssRatio } = ratios(sample);
    const loopSlow = p.eventLoopDelayMs > 0 && sample.eventLoopDelayMs > p.eventLoopDelayMs;
    if (sample.window !== this.lastWindow) {
      this.lastWindow = sample.window;
      this.loopWindowsOver = loopSlow ? this.loopWindowsOver + 1 : 0;
    }
    const margin = this.current === undefined ? 0 : MEMORY_RELEASE_MARGIN;
    let next: ShedReason | undefined;
    if (p.heapRatio > 0 && (heapRatio >= p.heapRatio - margin || heapUsedRatio >= usedHeapThreshold(p.heapRatio) - margin)) next = 'heap';
    else if (p.rssRatio > 0 && sample.memoryLimitBytes > 0 && rssRatio >= p.rssRatio - margin) next = 'memory';
    else if (this.loopWindowsOver >= LOOP_WINDOWS_TO_ENTER || (this.current !== undefined && loopSlow)) next = 'event_loop';
    if (next === this.current) return;
    this.current = next;
    this.refusal = next === undefined ? undefined : this.refusalError(next, sample, Math.max(heapRatio, heapUsedRatio), rssRatio);
    const state: ShedState = { reason: next, sample, heapRatio, heapUsedRatio, rssRatio };
    for (const l of this.listeners) l(state);
  }

  private refusalError(reason: ShedReason, sample: PressureSample, heapRatio: number, rssRatio: number): ApiError {
    const retry = this.policy.retryAfterS;
    const what = reason === 'heap' ? `heap at ${pct(heapRatio)} of its limit`
      : reason === 'memory' ? `memory at ${pct(rssRatio)} of its limit`
        : `event-loop delay p99 ${Math.round(sample.eventLoopDelayMs)} ms`;
    return new ApiError('ERR_OVERLOADED', `This instance is overloaded (${what}) and sheds new requests; retry in ${retry} s, another instance may answer at once.`,
      { reason, retry_after_s: retry }, { 'retry-after': String(retry), connection: 'close', 'x-kgents-shed': reason });
  }
}

function ratios(sample: PressureSample): { heapRatio: number; heapUsedRatio: number; rssRatio: number } {
  return {
    heapRatio: sample.heapLimitBytes > 0 ? sample.heapLiveBytes / sample.heapLimitBytes : 0,
    heapUsedRatio: sample.heapLimitBytes > 0 ? sample.heapUsedBytes / sample.heapLimitBytes : 0,
    rssRatio: sample.memoryLimitBytes > 0 ? sample.rssBytes / sample.memoryLimitBytes : 0,
  };
}

function pct(ratio: number): string {
  return `${Math.round(ratio * 100)}%`;
}
