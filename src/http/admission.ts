import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config/load.js';
import type { LimitStore } from '../domain/limits/ports.js';
import type { Principal } from '../domain/tenancy/types.js';
import { ApiError } from '../errors/api-error.js';
import type { ApiMetrics } from '../observability/metrics.js';
import { inChildSpan } from '../observability/tracing.js';

/** The current UTC month as yyyy-mm, recomputed only when a month boundary is crossed (toISOString per request showed in the profile). */
let month = { from: 0, to: -1, label: '' };

function monthOf(ms: number): string {
  if (ms < month.from || ms >= month.to) {
    const d = new Date(ms);
    month = { from: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1), to: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1), label: d.toISOString().slice(0, 7) };
  }
  return month.label;
}

/** Monthly quota windows are calendar months in UTC. */
export function quotaKeyFor(tenant: string, now: Date): string {
  return `${tenant}:${monthOf(now.getTime())}`;
}

function secondsToNextMonth(now: Date): number {
  const next = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
  return Math.max(1, Math.ceil((next - now.getTime()) / 1000));
}

/**
 * Rate limit and quota in one store call. Non-billable routes pass an unreachable quota so a tenant
 * out of tokens can still read its affordances and usage.
 */
export async function admit(
  config: Config, limits: LimitStore, metrics: ApiMetrics,
  principal: Principal, billable: boolean, request: FastifyRequest, reply: FastifyReply,
): Promise<void> {
  const now = new Date();
  const limit = config.RATE_LIMITS[principal.tier];
  const quotaKey = quotaKeyFor(principal.tenant, now);
  const quotaLimit = billable ? config.TOKEN_QUOTAS[principal.tier] : Number.MAX_SAFE_INTEGER;
  const decision = await inChildSpan(request.span, 'limits.admit', 'client', request.span && { 'kgents.store.mode': limits.mode },
    () => limits.admit({ rateKey: principal.keyPrefix, limitPerMinute: limit, quotaKey, quotaLimit, now: now.getTime() }));
  void reply.headers({
    'ratelimit-limit': String(decision.limit),
    'ratelimit-remaining': String(decision.remaining),
    'ratelimit-reset': String(decision.resetS),
  });
  request.quotaKey = quotaKey;
  if (decision.allowed) {
    metrics.countAdmission('allowed', principal.tier);
    return;
  }
  if (decision.reason === 'quota') {
    metrics.countAdmission('quota_exceeded', principal.tier);
    const retry = secondsToNextMonth(now);
    throw new ApiError('ERR_QUOTA_EXCEEDED', `Monthly token quota of ${quotaLimit} for tier "${principal.tier}" is used up (${decision.quotaUsed} used); it resets at the start of next month (UTC).`,
      { quota: quotaLimit, used: decision.quotaUsed, tier: principal.tier }, { 'retry-after': String(retry) });
  }
  metrics.countAdmission('rate_limited', principal.tier);
  const retry = Math.max(1, Math.ceil(decision.retryAfterS));
  throw new ApiError('ERR_RATE_LIMITED', `Rate limit of ${limit} requests per minute for tier "${principal.tier}" reached; retry in ${retry} s.`,
    { limit, tier: principal.tier, retry_after_s: retry }, { 'retry-after': String(retry) });
}
