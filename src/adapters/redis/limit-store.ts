import type { Redis } from 'ioredis';
import type { AdmissionRequest, LimitStore } from '../../domain/limits/ports.js';
import { type AdmissionDetail, type AdmissionPlan, type GcraOutcome, QUOTA_TTL_MS, normalizeTokens, planAdmission, toAdmission } from '../memory/gcra.js';
import { asError } from '../../errors/as-error.js';
import { defineScript } from './client.js';
import { ScriptBatcher } from './script-batch.js';

export const RATE_KEY_PREFIX = 'kg:rl:';
export const QUOTA_KEY_PREFIX = 'kg:q:';

/**
 * Every admission and token charge issued in one turn of the event loop, in one script call, in
 * the order they were issued (see RedisLimitStore). Each op is as atomic as a script of its own
 * (the whole batch is); ops on the same key see each other's writes in order.
 *
 * KEYS: the batch's distinct keys. ARGV[1]: the ops, packed by ScriptBatcher as `op;op;...` with
 * each op `code:key...:field...`, its keys given as positions in KEYS (one string instead of ~6
 * arguments per op, and each key once per batch: the per-argument cost in ioredis was most of the
 * call's cost).
 * - `a:R:Q:now:T:B:quota` admission. Keys: R the rate bucket (string: TAT in integer µs), Q the
 *   quota counter (integer). now in µs, emission interval T in µs, burst B in requests, quota limit (-1: none).
 *   Out: allowed 0|1, reason '' | 'rate' | 'quota', remaining, reset µs, retry-after µs, quota used.
 *   Quota is checked first and a quota refusal writes nothing, so it does not consume a rate token.
 *   On success the new TAT is written with PX = TAT - now (ms, rounded up): once it expires the
 *   bucket is full, which is what an absent key means.
 * - `t:Q:tokens:ttl` token charge. Key: Q the quota counter. ttl in ms. Out: the new total. The expiry is
 *   set only when the key has none (its first increment), so a month's counter disappears ~35 days
 *   after the month's first request.
 * The numbers are integers below 2^53 (µs since 1970), so Lua's doubles hold them exactly; '%.0f'
 * writes them without exponent. `now` comes from the caller, which keeps the script deterministic.
 * Each key is read from Redis at most once per batch and each rate bucket written once, at the
 * end, with the TAT and expiry of its last admission: the requests of one busy API key in one turn
 * cost one GET of each key and one SET instead of three commands each. Nothing else runs during a
 * script, so the batch's writes are seen by other clients exactly as if made op by op.
 */
export const LIMITS_BATCH_LUA = `
local out, no = {}, 0
local value, ttl, written = {}, {}, {}
local function read(key)
  local v = value[key]
  if v == nil then
    v = tonumber(redis.call('GET', key) or 0) or 0
    value[key] = v
  end
  return v
end
for op in string.gmatch(ARGV[1], '[^;]+') do
  local code = string.sub(op, 1, 1)
  if code == 'a' then
    local r, k, n, t, b, q = string.match(op, '^a:(%d+):(%d+):(%d+):(%d+):(%d+):(%-?%d+)$')
    local rate_key, quota_key = KEYS[tonumber(r or 0)], KEYS[tonumber(k or 0)]
    if not n or not rate_key or not quota_key then return redis.error_reply('kgents limits script: malformed op ' .. op) end
    local now, interval, burst, quota_limit = tonumber(n), tonumber(t), tonumber(b), tonumber(q)
    local window = interval * burst
    local tat = read(rate_key)
    if tat < now then tat = now end
    local used = read(quota_key)
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
        if ttl[rate_key] == nil then written[#written + 1] = rate_key end
        value[rate_key], ttl[rate_key] = new_tat, math.ceil((new_tat - now) / 1000)
        out[no + 1], out[no + 2], out[no + 3] = 1, '', math.floor((now + window - new_tat) / interval)
        out[no + 4], out[no + 5], out[no + 6] = new_tat - now, 0, used
      end
    end
    no = no + 6
  elseif code == 't' then
    local k, tokens, expiry = string.match(op, '^t:(%d+):(%d+):(%d+)$')
    local quota_key = KEYS[tonumber(k or 0)]
    if not tokens or not quota_key then return redis.error_reply('kgents limits script: malformed op ' .. op) end
    local total = redis.call('INCRBY', quota_key, tokens)
    if redis.call('PTTL', quota_key) == -1 then redis.call('PEXPIRE', quota_key, expiry) end
    value[quota_key] = total
    out[no + 1] = total
    no = no + 1
  else
    return redis.error_reply('kgents limits script: unknown op ' .. op)
  end
end
for i = 1, #written do
  local key = written[i]
  redis.call('SET', key, string.format('%.0f', value[key]), 'PX', ttl[key])
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

/** Keys are few per instance (API keys, tenant-months); past this a cache starts over rather than grow without bound. */
const MAX_CACHED_KEYS = 10_000;

/**
 * `prefix + key`, made once per key: a concatenation is a rope that is copied flat again each time
 * it is written to the socket, for every request.
 */
function prefixed(cache: Map<string, string>, prefix: string, key: string): string {
  let full = cache.get(key);
  if (full === undefined) {
    if (cache.size >= MAX_CACHED_KEYS) cache.clear();
    full = prefix + key;
    cache.set(key, full);
  }
  return full;
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
  private readonly rateKeys = new Map<string, string>();
  private readonly quotaKeys = new Map<string, string>();

  constructor(client: Redis, options: RedisLimitStoreOptions = {}) {
    this.batch = new ScriptBatcher(defineScript(client, 'kgLimitsBatchV4', 'variable', LIMITS_BATCH_LUA), options.maxBatch);
    this.quotaTtlMs = Math.max(1, Math.round(options.quotaTtlMs ?? QUOTA_TTL_MS));
    this.clock = options.clock ?? Date.now;
  }

  /** Not async: the batch's promise resolves to the decoded admission itself (no promise per layer). */
  admit(req: AdmissionRequest): Promise<AdmissionDetail> {
    let plan: AdmissionPlan;
    try {
      plan = planAdmission(req, this.clock);
    } catch (err) {
      return Promise.reject(asError(err));
    }
    return this.batch.run({
      keys: [this.rateRedisKey(req.rateKey), this.quotaRedisKey(req.quotaKey)],
      // Capped at 2^53 - 1: the script's doubles compare nothing larger exactly, and String() of 1e21+ has an exponent.
      args: ['a', plan.nowUs, plan.intervalUs, plan.burst, Math.min(plan.quotaLimit, Number.MAX_SAFE_INTEGER)],
      replyItems: 6,
    }, decodeAdmission, req.limitPerMinute);
  }

  private rateRedisKey(rateKey: string): string {
    return prefixed(this.rateKeys, RATE_KEY_PREFIX, rateKey);
  }

  private quotaRedisKey(quotaKey: string): string {
    return prefixed(this.quotaKeys, QUOTA_KEY_PREFIX, quotaKey);
  }

  async addTokens(quotaKey: string, tokens: number): Promise<void> {
    await this.incrementQuota(quotaKey, tokens);
  }

  /**
   * addTokens that also returns the counter's new total (no round trip for 0 tokens: returns -1).
   * Charges of the same key queued back to back in one turn share one op: each caller gets the
   * total after all of them.
   */
  incrementQuota(quotaKey: string, tokens: number): Promise<number> {
    const n = normalizeTokens(tokens);
    if (n === 0) return NOTHING_ADDED;
    // Charges of one key issued back to back (the requests a reply completed together) are one op.
    return this.batch.addToCounter(this.quotaRedisKey(quotaKey), 't', n, this.quotaTtlMs, decodeTotal);
  }
}

const NOTHING_ADDED: Promise<number> = Promise.resolve(-1);

/** An admission op's six reply items (see LIMITS_BATCH_LUA); `limit` is the request's per-minute limit. */
function decodeAdmission(reply: readonly unknown[], at: number, limit: number): AdmissionDetail {
  const reason = reply[at + 1];
  const outcome: GcraOutcome = {
    allowed: toInt(reply[at], 'allowed') === 1,
    reason: reason === 'rate' || reason === 'quota' ? reason : undefined,
    remaining: toInt(reply[at + 2], 'remaining'),
    resetUs: toInt(reply[at + 3], 'reset'),
    retryAfterUs: toInt(reply[at + 4], 'retry'),
  };
  return toAdmission(limit, outcome, toInt(reply[at + 5], 'used'));
}

/** A token charge's reply item: the counter's new total. */
function decodeTotal(reply: readonly unknown[], at: number): number {
  return toInt(reply[at], 'total');
}
