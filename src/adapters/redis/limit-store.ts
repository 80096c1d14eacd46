import type { Redis } from 'ioredis';
import type { AdmissionRequest, LimitStore } from '../../domain/limits/ports.js';
import { type AdmissionDetail, QUOTA_TTL_MS, normalizeTokens, planAdmission, toAdmission } from '../memory/gcra.js';
import { type ScriptCall, defineScript } from './client.js';

export const RATE_KEY_PREFIX = 'kg:rl:';
export const QUOTA_KEY_PREFIX = 'kg:q:';

/**
 * One admission, atomically: GCRA on the rate bucket plus a read of the monthly quota counter.
 *
 * KEYS[1] rate bucket (string: TAT in integer µs), KEYS[2] quota counter (integer)
 * ARGV[1] now (µs), ARGV[2] emission interval T (µs), ARGV[3] burst B (requests), ARGV[4] quota limit (-1: none)
 * Returns {allowed 0|1, reason '' | 'rate' | 'quota', remaining, reset µs, retry-after µs, quota used}.
 *
 * Quota is checked first and a quota refusal writes nothing, so it does not consume a rate token.
 * On success the new TAT is written with PX = TAT - now (ms, rounded up): once it expires the bucket
 * is full, which is what an absent key means. The numbers are integers below 2^53 (µs since 1970), so
 * Lua's doubles hold them exactly; '%.0f' writes them without exponent. `now` comes from the caller
 * (see RedisLimitStore), which keeps the script deterministic and testable.
 */
export const ADMIT_LUA = `
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local quota_limit = tonumber(ARGV[4])
local window = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
if tat < now then tat = now end
local used = tonumber(redis.call('GET', KEYS[2]) or 0) or 0
if quota_limit >= 0 and used >= quota_limit then
  return {0, 'quota', math.floor((now + window - tat) / interval), tat - now, 0, used}
end
local new_tat = tat + interval
local allow_at = new_tat - window
if allow_at > now then
  return {0, 'rate', math.floor((now + window - tat) / interval), tat - now, allow_at - now, used}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, '', math.floor((now + window - new_tat) / interval), new_tat - now, 0, used}
`;

/**
 * INCRBY on the quota counter; the expiry is set only when the key has none (its first increment),
 * so a month's counter disappears ~35 days after the month's first request. Returns the new total.
 * KEYS[1] quota counter; ARGV[1] tokens; ARGV[2] ttl ms.
 */
export const ADD_TOKENS_LUA = `
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return total
`;

export interface RedisLimitStoreOptions {
  /** How long a quota counter lives after its first increment. Default 35 days. */
  readonly quotaTtlMs?: number;
  /** Wall clock in ms, used when a request carries no `now`. */
  readonly clock?: () => number;
}

function toInt(value: unknown, what: string): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : Number.NaN;
  if (!Number.isFinite(n)) throw new Error(`unexpected reply from Redis admission script (${what})`);
  return n;
}

/**
 * Rate limits and quotas in Redis: one EVALSHA per admission, one per addTokens.
 *
 * Time: the caller's clock (`req.now`, else Date.now()) is passed into the script rather than using
 * Redis TIME. Tests can then simulate time, and instances agree as far as their clocks do (NTP keeps
 * that within milliseconds; a skewed instance shifts refill for the keys it serves by its skew, and
 * because TAT never moves backwards a slow clock cannot grant extra requests beyond that skew).
 *
 * Keys: `kg:rl:<rateKey>` and `kg:q:<quotaKey>`. Both are touched by one script, which is fine on a
 * single Redis or a Sentinel setup; Redis Cluster would need a shared hash tag in the two keys.
 */
export class RedisLimitStore implements LimitStore {
  readonly mode = 'redis' as const;
  private readonly admitScript: ScriptCall;
  private readonly addScript: ScriptCall;
  private readonly quotaTtlMs: number;
  private readonly clock: () => number;

  constructor(client: Redis, options: RedisLimitStoreOptions = {}) {
    this.admitScript = defineScript(client, 'kgAdmitV1', 2, ADMIT_LUA);
    this.addScript = defineScript(client, 'kgAddTokensV1', 1, ADD_TOKENS_LUA);
    this.quotaTtlMs = Math.max(1, Math.round(options.quotaTtlMs ?? QUOTA_TTL_MS));
    this.clock = options.clock ?? Date.now;
  }

  async admit(req: AdmissionRequest): Promise<AdmissionDetail> {
    const plan = planAdmission(req, this.clock);
    const reply = await this.admitScript(
      [RATE_KEY_PREFIX + req.rateKey, QUOTA_KEY_PREFIX + req.quotaKey],
      [plan.nowUs, plan.intervalUs, plan.burst, plan.quotaLimit],
    );
    if (!Array.isArray(reply) || reply.length !== 6) throw new Error('unexpected reply from Redis admission script');
    const [allowed, reason, remaining, resetUs, retryUs, used] = reply as unknown[];
    const why = reason === 'rate' || reason === 'quota' ? reason : undefined;
    const quotaUsed = toInt(used, 'used');
    return toAdmission(
      req.limitPerMinute,
      {
        allowed: toInt(allowed, 'allowed') === 1,
        ...(why ? { reason: why } : {}),
        remaining: toInt(remaining, 'remaining'),
        resetUs: toInt(resetUs, 'reset'),
        retryAfterUs: toInt(retryUs, 'retry'),
      },
      quotaUsed,
    );
  }

  async addTokens(quotaKey: string, tokens: number): Promise<void> {
    await this.incrementQuota(quotaKey, tokens);
  }

  /** addTokens that also returns the counter's new total (no round trip for 0 tokens: returns -1). */
  async incrementQuota(quotaKey: string, tokens: number): Promise<number> {
    const n = normalizeTokens(tokens);
    if (n === 0) return -1;
    return toInt(await this.addScript([QUOTA_KEY_PREFIX + quotaKey], [n, this.quotaTtlMs]), 'total');
  }
}
