import type { AdmissionRequest, LimitStore } from '../../domain/limits/ports.js';
import { asError } from '../../errors/as-error.js';
import { BoundedTtlMap } from './bounded-map.js';
import { type AdmissionDetail, QUOTA_TTL_MS, decide, normalizeTokens, planAdmission, toAdmission } from './gcra.js';

export interface MemoryStoreOptions {
  /** Most rate buckets, quota counters or idempotency records kept (each kind separately). Default 100k. */
  readonly maxEntries?: number;
  /** How often expired entries are swept. Default 60 s. The timer is unref'd. */
  readonly sweepIntervalMs?: number;
  /** Wall clock in ms; tests substitute their own. */
  readonly clock?: () => number;
}

export interface MemoryLimitStoreOptions extends MemoryStoreOptions {
  /** How long a quota counter lives after its first increment. Default 35 days. */
  readonly quotaTtlMs?: number;
}

interface QuotaCounter {
  used: number;
}

export const DEFAULT_MAX_ENTRIES = 100_000;

/**
 * Rate limits and quotas in this process only: the same GCRA and quota rules as RedisLimitStore
 * (shared code in gcra.ts), with bounded maps so a long Redis outage cannot grow memory without bound.
 * Evicting a live rate bucket (only past `maxEntries` distinct keys) forgets that key's recent usage.
 */
export class MemoryLimitStore implements LimitStore {
  readonly mode = 'memory' as const;
  private readonly rates: BoundedTtlMap<number>;
  private readonly quotas: BoundedTtlMap<QuotaCounter>;
  private readonly clock: () => number;
  private readonly quotaTtlMs: number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(options: MemoryLimitStoreOptions = {}) {
    const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.rates = new BoundedTtlMap<number>({ maxEntries });
    this.quotas = new BoundedTtlMap<QuotaCounter>({ maxEntries });
    this.clock = options.clock ?? Date.now;
    this.quotaTtlMs = options.quotaTtlMs ?? QUOTA_TTL_MS;
    this.sweeper = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 60_000);
    this.sweeper.unref();
  }

  /** Entries held: rate buckets and quota counters. */
  get size(): { readonly rates: number; readonly quotas: number } {
    return { rates: this.rates.size, quotas: this.quotas.size };
  }

  admit(req: AdmissionRequest): Promise<AdmissionDetail> {
    try {
      return Promise.resolve(this.admitSync(req));
    } catch (err) {
      return Promise.reject(asError(err));
    }
  }

  admitSync(req: AdmissionRequest): AdmissionDetail {
    const plan = planAdmission(req, this.clock);
    const nowMs = plan.nowUs / 1000;
    // Quota counters expire on the wall clock (as Redis keys do); rate buckets on the request's time.
    const used = this.quotas.get(req.quotaKey, this.clock())?.used ?? 0;
    const outcome = decide(plan, this.rates.get(req.rateKey, nowMs) ?? 0, used);
    if (outcome.newTatUs !== undefined) {
      // Expires when the TAT is reached: from then on an absent bucket means the same thing.
      this.rates.set(req.rateKey, outcome.newTatUs, outcome.newTatUs / 1000, nowMs);
    }
    return toAdmission(req.limitPerMinute, outcome, used);
  }

  addTokens(quotaKey: string, tokens: number): Promise<void> {
    this.addTokensSync(quotaKey, tokens);
    return Promise.resolve();
  }

  /** Adds to the counter and returns the new total (0 tokens: returns the current total). */
  addTokensSync(quotaKey: string, tokens: number): number {
    const now = this.clock();
    const n = normalizeTokens(tokens);
    const counter = this.quotas.get(quotaKey, now);
    if (counter) {
      counter.used += n;
      return counter.used;
    }
    if (n === 0) return 0;
    this.quotas.set(quotaKey, { used: n }, now + this.quotaTtlMs, now);
    return n;
  }

  /**
   * Raises the local counter to at least `used` (a figure read from Redis), so that during an outage
   * the quota check starts from the last known usage instead of from zero.
   */
  observeQuota(quotaKey: string, used: number): void {
    if (!(used > 0)) return;
    const now = this.clock();
    const counter = this.quotas.get(quotaKey, now);
    if (counter) {
      if (counter.used < used) counter.used = used;
      return;
    }
    this.quotas.set(quotaKey, { used }, now + this.quotaTtlMs, now);
  }

  /** Drops expired entries now (also done by the periodic timer). */
  sweep(): void {
    const now = this.clock();
    this.rates.sweep(now);
    this.quotas.sweep(now);
  }

  close(): void {
    clearInterval(this.sweeper);
  }
}
