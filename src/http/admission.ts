import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config/load.js';
import type { Admission, AdmissionRequest, LimitStore } from '../domain/limits/ports.js';
import type { Principal } from '../domain/tenancy/types.js';
import { ApiError } from '../errors/api-error.js';
import type { ApiMetrics } from '../observability/metrics.js';
import { inChildSpan, type TraceSpan } from '../observability/tracing.js';

/** Each tenant's quota key for the month in `month.label`. */
const quotaKeys = new Map<string, string>();
/** Tenants are few per instance; past this the map starts over rather than grow without bound. */
const MAX_CACHED_QUOTA_KEYS = 10_000;

/**
 * The current UTC month as yyyy-mm, recomputed only when a month boundary is crossed (toISOString per
 * request showed in the profile); crossing one also forgets the quota keys of the month before.
 */
let month = { from: 0, to: -1, label: '' };

function monthOf(ms: number): string {
  if (ms < month.from || ms >= month.to) {
    const d = new Date(ms);
    month = { from: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1), to: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1), label: d.toISOString().slice(0, 7) };
    quotaKeys.clear();
  }
  return month.label;
}

/** Monthly quota windows are calendar months in UTC. */
export function quotaKeyFor(tenant: string, now: Date | number): string {
  const label = monthOf(typeof now === 'number' ? now : now.getTime());
  let key = quotaKeys.get(tenant);
  if (key === undefined) {
    if (quotaKeys.size >= MAX_CACHED_QUOTA_KEYS) quotaKeys.clear();
    key = `${tenant}:${label}`;
    quotaKeys.set(tenant, key);
  }
  return key;
}

function secondsToNextMonth(now: Date): number {
  const next = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
  return Math.max(1, Math.ceil((next - now.getTime()) / 1000));
}

/** The rate-limit headers and the quota key of an admitted or refused request. */
export interface AdmissionOutcome {
  /** `tenant:yyyy-mm` counter that the request's tokens are added to. */
  readonly quotaKey: string;
  readonly limit: string;
  readonly remaining: string;
  readonly reset: string;
  /** Present when the request is refused (429): what to answer, Retry-After included. */
  readonly refusal?: ApiError;
}

/**
 * Rate limit and quota in one store call. Non-billable routes pass an unreachable quota so a tenant
 * out of tokens can still read its affordances and usage. Shared by the Fastify hook (admit) and
 * invoke's fast path (fast-invoke.ts, which awaits the store itself between the two halves below, to
 * save an async function per call).
 */
export async function decideAdmission(
  config: Pick<Config, 'RATE_LIMITS' | 'TOKEN_QUOTAS'>, limits: LimitStore, metrics: ApiMetrics, principal: Principal, billable: boolean, span: TraceSpan | undefined,
): Promise<AdmissionOutcome> {
  const admission = admissionRequest(config, principal, billable);
  const decision = span
    ? await inChildSpan(span, 'limits.admit', 'client', { 'kgents.store.mode': limits.mode }, () => limits.admit(admission))
    : await limits.admit(admission);
  return admissionOutcome(metrics, principal, admission, decision);
}

/** What the limit store is asked for one request of this principal, now. */
export function admissionRequest(config: Pick<Config, 'RATE_LIMITS' | 'TOKEN_QUOTAS'>, principal: Principal, billable: boolean): AdmissionRequest & { readonly now: number } {
  const now = Date.now();
  return {
    rateKey: principal.keyPrefix,
    limitPerMinute: config.RATE_LIMITS[principal.tier],
    quotaKey: quotaKeyFor(principal.tenant, now),
    quotaLimit: billable ? config.TOKEN_QUOTAS[principal.tier] : Number.MAX_SAFE_INTEGER,
    now,
  };
}

/** The store's decision as headers, the quota key, and the refusal to answer (counted in the metrics). */
export function admissionOutcome(metrics: ApiMetrics, principal: Principal, admission: AdmissionRequest & { readonly now: number }, decision: Admission): AdmissionOutcome {
  const { quotaKey, quotaLimit, limitPerMinute: limit, now } = admission;
  const outcome = { quotaKey, limit: String(decision.limit), remaining: String(decision.remaining), reset: String(decision.resetS) };
  if (decision.allowed) {
    metrics.countAdmission('allowed', principal.tier);
    return outcome;
  }
  if (decision.reason === 'quota') {
    metrics.countAdmission('quota_exceeded', principal.tier);
    const retry = secondsToNextMonth(new Date(now));
    return {
      ...outcome,
      refusal: new ApiError('ERR_QUOTA_EXCEEDED', `Monthly token quota of ${quotaLimit} for tier "${principal.tier}" is used up (${decision.quotaUsed} used); it resets at the start of next month (UTC).`,
        { quota: quotaLimit, used: decision.quotaUsed, tier: principal.tier }, { 'retry-after': String(retry) }),
    };
  }
  metrics.countAdmission('rate_limited', principal.tier);
  const retry = Math.max(1, Math.ceil(decision.retryAfterS));
  return {
    ...outcome,
    refusal: new ApiError('ERR_RATE_LIMITED', `Rate limit of ${limit} requests per minute for tier "${principal.tier}" reached; retry in ${retry} s.`,
      { limit, tier: principal.tier, retry_after_s: retry }, { 'retry-after': String(retry) }),
  };
}

/** decideAdmission for a Fastify route: the headers on the reply, a refusal thrown. */
export async function admit(
  config: Config, limits: LimitStore, metrics: ApiMetrics,
  principal: Principal, billable: boolean, request: FastifyRequest, reply: FastifyReply,
): Promise<void> {
  const outcome = await decideAdmission(config, limits, metrics, principal, billable, request.span);
  void reply.header('ratelimit-limit', outcome.limit);
  void reply.header('ratelimit-remaining', outcome.remaining);
  void reply.header('ratelimit-reset', outcome.reset);
  request.quotaKey = outcome.quotaKey;
  if (outcome.refusal) throw outcome.refusal;
}
