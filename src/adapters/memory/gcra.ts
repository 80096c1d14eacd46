import type { Admission, AdmissionRequest } from '../../domain/limits/ports.js';

/**
 * GCRA (generic cell rate algorithm) shared by the memory store and mirrored by the Redis Lua script
 * in ../redis/limit-store.ts; both are run against the same contract tests.
 *
 * A bucket is one number, the theoretical arrival time (TAT). With emission interval T and burst B
 * (= the per-minute limit, so a full minute's worth may be used at once), a request at `now` is
 * allowed when `max(TAT, now) + T - B*T <= now`, and then TAT becomes `max(TAT, now) + T`.
 * Time is kept in integer microseconds so that 60000/limit needs no rounding tolerance: T is
 * `ceil(60e6 / limit)` µs, i.e. the effective rate is never above the limit and below it by at most
 * 1 µs per request (7/min: 8571429 µs instead of 8571428.57).
 */
export const WINDOW_US = 60_000_000;

/** Admission plus the exact millisecond figures the rounded-up seconds are made from. */
export interface AdmissionDetail extends Admission {
  /** Milliseconds until the bucket is full again. */
  readonly resetMs: number;
  /** Milliseconds to wait before retrying; 0 when allowed or refused for quota. */
  readonly retryAfterMs: number;
}

/** The validated numeric form of an AdmissionRequest. */
export interface AdmissionPlan {
  readonly nowUs: number;
  readonly intervalUs: number;
  readonly burst: number;
  /** -1: unlimited. */
  readonly quotaLimit: number;
}

/** Validates a request; a RangeError here is the caller's mistake, never a storage failure. */
export function planAdmission(req: AdmissionRequest, clock: () => number = Date.now): AdmissionPlan {
  const limit = req.limitPerMinute;
  if (!(limit > 0)) throw new RangeError(`limitPerMinute must be positive, got ${limit}`);
  if (!(req.quotaLimit >= 0)) throw new RangeError(`quotaLimit must be >= 0, got ${req.quotaLimit}`);
  if (req.rateKey === '' || req.quotaKey === '') throw new RangeError('rateKey and quotaKey must not be empty');
  const now = req.now ?? clock();
  if (!Number.isFinite(now) || now < 0) throw new RangeError(`now must be a finite time in ms, got ${now}`);
  const intervalUs = Number.isFinite(limit) ? Math.max(1, Math.ceil(WINDOW_US / limit)) : 1;
  const burst = Number.isFinite(limit) ? Math.max(1, Math.floor(limit)) : WINDOW_US;
  return {
    nowUs: Math.floor(now * 1000),
    intervalUs,
    burst,
    quotaLimit: Number.isFinite(req.quotaLimit) ? Math.floor(req.quotaLimit) : -1,
  };
}

export interface GcraOutcome {
  readonly allowed: boolean;
  readonly reason?: 'rate' | 'quota';
  readonly remaining: number;
  readonly resetUs: number;
  readonly retryAfterUs: number;
  /** The TAT to store when allowed; undefined when nothing changes. */
  readonly newTatUs?: number;
}

/** One admission decision; `tatUs` is the stored TAT (0 when absent), `used` the quota counter. */
export function decide(plan: AdmissionPlan, tatUs: number, used: number): GcraOutcome {
  const { nowUs, intervalUs, burst, quotaLimit } = plan;
  const window = intervalUs * burst;
  const tat = Math.max(tatUs, nowUs);
  if (quotaLimit >= 0 && used >= quotaLimit) {
    // Refused for quota: the rate bucket is left as it is, no token is consumed.
    return { allowed: false, reason: 'quota', remaining: Math.floor((nowUs + window - tat) / intervalUs), resetUs: tat - nowUs, retryAfterUs: 0 };
  }
  const newTat = tat + intervalUs;
  const allowAt = newTat - window;
  if (allowAt > nowUs) {
    return { allowed: false, reason: 'rate', remaining: Math.floor((nowUs + window - tat) / intervalUs), resetUs: tat - nowUs, retryAfterUs: allowAt - nowUs };
  }
  return { allowed: true, remaining: Math.floor((nowUs + window - newTat) / intervalUs), resetUs: newTat - nowUs, retryAfterUs: 0, newTatUs: newTat };
}

/** Shapes a decision into the port's Admission (seconds rounded up, as HTTP headers want). */
export function toAdmission(limit: number, outcome: GcraOutcome, quotaUsed: number): AdmissionDetail {
  const resetMs = outcome.resetUs / 1000;
  const retryAfterMs = outcome.retryAfterUs / 1000;
  const remaining = Math.max(0, outcome.remaining);
  const resetS = Math.ceil(resetMs / 1000);
  const retryAfterS = Math.ceil(retryAfterMs / 1000);
  // Two literals rather than a conditional spread, which V8 builds field by field in its runtime:
  // every admitted request takes the first.
  if (outcome.reason === undefined) return { allowed: outcome.allowed, limit, remaining, resetS, retryAfterS, quotaUsed, resetMs, retryAfterMs };
  return { allowed: outcome.allowed, reason: outcome.reason, limit, remaining, resetS, retryAfterS, quotaUsed, resetMs, retryAfterMs };
}

/** Month-key counters live this long after their first increment (a month plus margin). */
export const QUOTA_TTL_MS = 35 * 86_400_000;

/** Token counts are whole, non-negative numbers; anything else is rounded up or ignored. */
export function normalizeTokens(tokens: number): number {
  if (!Number.isFinite(tokens) || tokens <= 0) return 0;
  return Math.ceil(tokens);
}
