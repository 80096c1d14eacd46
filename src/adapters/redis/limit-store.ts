import type { Redis } from 'ioredis';
import type { AdmissionRequest, LimitStore } from '../../domain/limits/ports.js';
import { type AdmissionDetail, QUOTA_TTL_MS, normalizeTokens, planAdmission, toAdmission } from '../memory/gcra.js';
import { defineScript } from './client.js';
import { ScriptBatcher } from './script-batch.js';

export const RATE_KEY_PREFIX = 'kg:rl:';
export const QUOTA_KEY_PREFIX = 'kg:q:';

/**
 * Every admission and token charge issued in one turn of the event loop, in one script call, in
 * the order they were issued (see RedisLimitStore). Each op is as atomic as a script of its own
 * (the whole batch is); ops on the same key see each other's writes in order.
 *
 * ARGV[1] number of ops, then per op its code and fields; KEYS in op order.
 * - 'a' admission. KEYS: rate bucket (string: TAT in integer µs), quota counter (integer).
 *   ARGV: now (µs), emission interval T (µs), burst B (requests), quota limit (-1: none).
 *   Out: allowed 0|1, reason '' | 'rate' | 'quota', remaining, reset µs, retry-after µs, quota used.
 *   Quota is checked first and a quota refusal writes nothing, so it does not consume a rate token.
 *   On success the new TAT is written with PX = TAT - now (ms, rounded up): once it expires the
 *   bucket is full, which is what an absent key means.
 * - 't' token charge. KEYS: quota counter. ARGV: tokens, ttl ms. Out: the new total. The expiry is
 *   set only when the key has none (its first increment), so a month's counter disappears ~35 days
 *   after the month's first request.
 * The numbers are integers below 2^53 (µs since 1970), so Lua's doubles hold them exactly; '%.0f'
 * writes them without exponent. `now` comes from the caller, which keeps the script deterministic.
 */
export const LIMITS_BATCH_LUA = `
local out, nk, na, no = {}, 1, 2, 0
for _ = 1, tonumber(ARGV[1]) do
  if ARGV[na] == 'a' then
    local rate_key, quota_key = KEYS[nk], KEYS[nk + 1]
    local now, interval = tonumber(ARGV[na + 1]), tonumber(ARGV[na + 2])
    local burst, quota_limit = tonumber(ARGV[na + 3]), tonumber(ARGV[na + 4])
    nk, na = nk + 2, na + 5
    local window = interval * burst
    local tat = tonumber(redis.call('GET', rate_key) or 0) or 0
    if tat < now then tat = now end
    local used = tonumber(redis.call('GET', quota_key) or 0) or 0
    if quota_limit >= 0 and used >= quota_limit then
      out[no + 1], out[no + 2], out[no + 3] = 0, 'quota', math.floor((now + window - tat) / interval)
      out[no + 4], out[no + 5], out[no + 6] = tat - now, 0, used
    else
      local new_tat = tat + interval
      local allow_at = new_tat - window
      if allow_at > now then
        out[no + 1], out[no + 2], out[no + 3] = 0, 'rate', math.floor((now + window - tat) / interval)
        out[no + 4], out[no + 5], out[no + 6] = tat - now, allow_at - now, used
      else
        redis.call('SET', rate_key, string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
        out[no + 1], out[no + 2], out[no + 3] = 1, '', math.floor((now + window - new_tat) / interval)
        out[no + 4], out[no + 5], out[no + 6] = new_tat - now, 0, used
      end
    end
    no = no + 6
  else
    local quota_key = KEYS[nk]
    local total = redis.call('INCRBY', quota_key, ARGV[na + 1])
    if redis.call('PTTL', quota_key) == -1 then redis.call('PEXPIRE', quota_key, ARGV[na + 2]) end
    nk, na = nk + 1, na + 3
    out[no + 1] = total
    no = no + 1
  end
end
return out
`;

export interface RedisLimitStoreOptions {
  /** How long a quota counter lives after its first increment. Default 35 days. */
  readonly quotaTtlMs?: number;
  /** Wall clock in ms, used when a request carries no `now`. */
  readonly clock?: () => number;
  /** Most ops in one script call. Default 256. */
  readonly maxBatch?: number;
}

function toInt(value: unknown, what: string): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : Number.NaN;
  if (!Number.isFinite(n)) throw new Error(`unexpected reply from the Redis limits script (${what})`);
  return n;
}

/**
 * Rate limits and quotas in Redis: each admission and each token charge is one op of the batch
 * script above; the ops issued in one turn of the event loop go to Redis as one EVALSHA
 * (ScriptBatcher), so a request still makes one atomic Redis operation per step, while a busy
 * instance makes one call per turn instead of one per request.
 *
 * Time: the caller's clock (`req.now`, else Date.now()) is passed into the script rather than using
 * Redis TIME. Tests can then simulate time, and instances agree as far as their clocks do (NTP keeps
 * that within milliseconds; a skewed instance shifts refill for the keys it serves by its skew, and
 * because TAT never moves backwards a slow clock cannot grant extra requests beyond that skew).
 *
 * Keys: `kg:rl:<rateKey>` and `kg:q:<quotaKey>`. A batch touches the keys of many tenants in one
 * script, which is fine on a single Redis or a Sentinel setup; Redis Cluster is not supported.
 */
export class RedisLimitStore implements LimitStore {
  readonly mode = 'redis' as const;
  private readonly batch: ScriptBatcher;
  private readonly quotaTtlMs: number;
  private readonly clock: () => number;

  constructor(client: Redis, options: RedisLimitStoreOptions = {}) {
    this.batch = new ScriptBatcher(defineScript(client, 'kgLimitsBatchV1', 'variable', LIMITS_BATCH_LUA), options.maxBatch);
    this.quotaTtlMs = Math.max(1, Math.round(options.quotaTtlMs ?? QUOTA_TTL_MS));
    this.clock = options.clock ?? Date.now;
  }

  async admit(req: AdmissionRequest): Promise<AdmissionDetail> {
    const plan = planAdmission(req, this.clock);
    const reply = await this.batch.run({
      keys: [RATE_KEY_PREFIX + req.rateKey, QUOTA_KEY_PREFIX + req.quotaKey],
      args: ['a', plan.nowUs, plan.intervalUs, plan.burst, plan.quotaLimit],
      replyItems: 6,
    });
    const [allowed, reason, remaining, resetUs, retryUs, used] = reply;
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
    const [total] = await this.batch.run({ keys: [QUOTA_KEY_PREFIX + quotaKey], args: ['t', n, this.quotaTtlMs], replyItems: 1 });
    return toInt(total, 'total');
  }
}
