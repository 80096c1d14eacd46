import type { Redis } from 'ioredis';
import type { IdempotencyBegin, IdempotencyStore, StoredResponse } from '../../domain/limits/ports.js';
import { ttlMs } from '../memory/idempotency-store.js';
import { type ScriptCall, defineScript } from './client.js';

export const IDEMPOTENCY_KEY_PREFIX = 'kg:idem:';

/**
 * Records are hashes: state ('in_progress' | 'done'), fp, and when done status, headers (JSON), body.
 *
 * BEGIN: KEYS[1] record; ARGV[1] fingerprint, ARGV[2] lock ttl ms.
 * Absent: create {state=in_progress, fp} expiring after the lock TTL, reply {'started'}. Present with
 * another fingerprint: {'mismatch'} (whether in progress or done). Same fingerprint: {'in_progress'}
 * or {'replay', status, headers, body}.
 */
export const BEGIN_LUA = `
local rec = redis.call('HMGET', KEYS[1], 'state', 'fp')
if not rec[1] then
  redis.call('HSET', KEYS[1], 'state', 'in_progress', 'fp', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'started'}
end
if rec[2] ~= ARGV[1] then return {'mismatch'} end
if rec[1] == 'in_progress' then return {'in_progress'} end
local res = redis.call('HMGET', KEYS[1], 'status', 'headers', 'body')
return {'replay', res[1], res[2], res[3]}
`;

/**
 * COMPLETE: KEYS[1] record; ARGV[1] fingerprint, ARGV[2] status, ARGV[3] headers JSON, ARGV[4] body,
 * ARGV[5] ttl ms. Replaces the record with the response unless the key now holds another request's
 * fingerprint (its lock expired and a different request took it): then writes nothing, replies 0.
 */
export const COMPLETE_LUA = `
local fp = redis.call('HGET', KEYS[1], 'fp')
if fp and fp ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'state', 'done', 'fp', ARGV[1], 'status', ARGV[2], 'headers', ARGV[3], 'body', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`;

/** ABANDON: KEYS[1] record. Deletes it only while in progress; a stored response stays. */
export const ABANDON_LUA = `
if redis.call('HGET', KEYS[1], 'state') == 'in_progress' then return redis.call('DEL', KEYS[1]) end
return 0
`;

function parseHeaders(raw: unknown): Record<string, string> {
  if (typeof raw !== 'string') throw new Error('idempotency record has no headers');
  const parsed: unknown = JSON.parse(raw);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('idempotency record headers are not an object');
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (typeof value === 'string') headers[name] = value;
  }
  return headers;
}

/**
 * Idempotency-Key records in Redis under `kg:idem:<key>`; every operation is one EVALSHA. Bodies are
 * stored as Redis strings (UTF-8 of the JS string) and come back as the identical string.
 */
export class RedisIdempotencyStore implements IdempotencyStore {
  readonly mode = 'redis' as const;
  private readonly beginScript: ScriptCall;
  private readonly completeScript: ScriptCall;
  private readonly abandonScript: ScriptCall;

  constructor(client: Redis) {
    this.beginScript = defineScript(client, 'kgIdemBeginV1', 1, BEGIN_LUA);
    this.completeScript = defineScript(client, 'kgIdemCompleteV1', 1, COMPLETE_LUA);
    this.abandonScript = defineScript(client, 'kgIdemAbandonV1', 1, ABANDON_LUA);
  }

  async begin(key: string, fingerprint: string, lockTtlS: number): Promise<IdempotencyBegin> {
    const reply = await this.beginScript([IDEMPOTENCY_KEY_PREFIX + key], [fingerprint, ttlMs(lockTtlS)]);
    if (!Array.isArray(reply)) throw new Error('unexpected reply from Redis idempotency script');
    const [state, status, headers, body] = reply as unknown[];
    switch (state) {
      case 'started':
      case 'in_progress':
      case 'mismatch':
        return { state };
      case 'replay':
        if (typeof body !== 'string') throw new Error('idempotency record has no body');
        return { state: 'replay', response: { status: Number(status), headers: parseHeaders(headers), body } };
      default:
        throw new Error('unexpected reply from Redis idempotency script');
    }
  }

  async complete(key: string, fingerprint: string, response: StoredResponse, ttlS: number): Promise<void> {
    await this.completeScript(
      [IDEMPOTENCY_KEY_PREFIX + key],
      [fingerprint, response.status, JSON.stringify(response.headers), response.body, ttlMs(ttlS)],
    );
  }

  async abandon(key: string): Promise<void> {
    await this.abandonScript([IDEMPOTENCY_KEY_PREFIX + key], []);
  }
}
