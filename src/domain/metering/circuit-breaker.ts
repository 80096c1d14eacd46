import type { CircuitState } from './ports.js';

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. */
  readonly failureThreshold: number;
  /** How long the circuit stays open before its own timer half-opens it. */
  readonly resetTimeoutMs: number;
  /** Consecutive successes in half-open state that close it. */
  readonly successThreshold: number;
}

export interface Transition {
  readonly from: CircuitState;
  readonly to: CircuitState;
  readonly reason: string;
  readonly at: Date;
}

/**
 * closed → (N consecutive failures) → open → (timer) → half_open → (M successes) → closed, and any
 * failure in half_open reopens it. The half-open move is driven by a timer, not by traffic: the
 * original only moved when something happened to publish, so an idle instance never recovered.
 */
export class CircuitBreaker {
  private current: CircuitState = 'closed';
  private failures = 0;
  private successes = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastReason = '';
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

  /** Opens the circuit without counting failures (the connection is known to be gone). */
  trip(reason: string): void {
    this.lastReason = reason;
    if (this.current !== 'open') this.move('open', reason);
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.listeners.clear();
  }

  private move(to: CircuitState, reason: string): void {
    const from = this.current;
    this.current = to;
    this.failures = 0;
    this.successes = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (to === 'open') {
      this.timer = setTimeout(() => this.move('half_open', `reset timeout of ${this.options.resetTimeoutMs} ms elapsed`), this.options.resetTimeoutMs);
      this.timer.unref();
    }
    const transition: Transition = { from, to, reason, at: new Date() };
    for (const l of this.listeners) l(transition);
  }
}
