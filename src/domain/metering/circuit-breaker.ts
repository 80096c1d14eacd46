import type { CircuitState } from './ports.js';

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. */
  readonly failureThreshold: number;
  /** How long the circuit stays open before its own timer half-opens it. */
  readonly resetTimeoutMs: number;
  /** Consecutive successes in half-open state that close it. */
  readonly successThreshold: number;
  /**
   * Early probes (probeNow) are at least this far apart; a signal that comes sooner is deferred to
   * the end of the interval, not dropped. Default 3000 ms.
   */
  readonly earlyProbeIntervalMs?: number;
  /** Clock for the early-probe spacing (tests). Default Date.now. */
  readonly now?: () => number;
}

export interface Transition {
  readonly from: CircuitState;
  readonly to: CircuitState;
  readonly reason: string;
  readonly at: Date;
  /** Set when the move is an early probe (probeNow): the signal that caused it. */
  readonly earlyProbe?: string;
}

/**
 * closed → (N consecutive failures) → open → (timer) → half_open → (M successes) → closed, and any
 * failure in half_open reopens it. The half-open move is driven by a timer, not by traffic: the
 * original only moved when something happened to publish, so an idle instance never recovered.
 *
 * The timer is the fallback, not the only way out: when the runtime sees evidence that the bus is
 * back (a reconnect, a new stream leader, a stream-info answer) it calls probeNow(), which half-opens
 * at once. Early probes are spaced by earlyProbeIntervalMs so a flapping signal cannot cause a probe
 * storm; a failed early probe reopens the circuit and restarts the timer like any failed probe.
 */
export class CircuitBreaker {
  private current: CircuitState = 'closed';
  private failures = 0;
  private successes = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastReason = '';
  private lastEarlyProbe = Number.NEGATIVE_INFINITY;
  private deferredProbe: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<(t: Transition) => void>();

  constructor(private readonly options: CircuitBreakerOptions) {}

  get state(): CircuitState {
    return this.current;
  }

  get lastFailure(): string {
    return this.lastReason;
  }

  onTransition(listener: (t: Transition) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  recordSuccess(): void {
    this.failures = 0;
    if (this.current !== 'half_open') return;
    this.successes += 1;
    if (this.successes >= this.options.successThreshold) this.move('closed', `${this.successes} successful probes`);
  }

  recordFailure(reason: string): void {
    this.lastReason = reason;
    if (this.current === 'half_open') {
      this.move('open', `probe failed: ${reason}`);
      return;
    }
    if (this.current === 'open') return;
    this.failures += 1;
    if (this.failures >= this.options.failureThreshold) this.move('open', `${this.failures} consecutive failures, last: ${reason}`);
  }

  /** Starts probing now instead of waiting for the timer (operator's `kgents bus reset-circuit`). */
  forceProbe(reason = 'forced by operator'): void {
    if (this.current === 'open') this.move('half_open', reason);
  }

  /**
   * Evidence that the bus is back: half-open now (an early probe) rather than at the timer. Only
   * while open; at most one early probe per earlyProbeIntervalMs, a signal inside that interval is
   * deferred to its end (one pending at a time). Returns what it did.
   */
  probeNow(reason: string): 'probing' | 'deferred' | 'ignored' {
    if (this.current !== 'open') return 'ignored';
    const interval = this.options.earlyProbeIntervalMs ?? 3000;
    const now = (this.options.now ?? Date.now)();
    const wait = this.lastEarlyProbe + interval - now;
    if (wait > 0) {
      if (!this.deferredProbe) {
        this.deferredProbe = setTimeout(() => {
          this.deferredProbe = undefined;
          this.probeNow(reason);
        }, wait);
        this.deferredProbe.unref();
      }
      return 'deferred';
    }
    this.lastEarlyProbe = now;
    this.move('half_open', `early probe: ${reason}`, reason);
    return 'probing';
  }

  /** Opens the circuit without counting failures (the connection is known to be gone). */
  trip(reason: string): void {
    this.lastReason = reason;
    if (this.current !== 'open') this.move('open', reason);
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.deferredProbe) clearTimeout(this.deferredProbe);
    this.deferredProbe = undefined;
    this.listeners.clear();
  }

  private move(to: CircuitState, reason: string, earlyProbe?: string): void {
    const from = this.current;
    this.current = to;
    this.failures = 0;
    this.successes = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (to === 'closed' && this.deferredProbe) {
      clearTimeout(this.deferredProbe);
      this.deferredProbe = undefined;
    }
    if (to === 'open') {
      this.timer = setTimeout(() => this.move('half_open', `reset timeout of ${this.options.resetTimeoutMs} ms elapsed`), this.options.resetTimeoutMs);
      this.timer.unref();
    }
    const transition: Transition = { from, to, reason, at: new Date(), ...(earlyProbe !== undefined && { earlyProbe }) };
    for (const l of this.listeners) l(transition);
  }
}
