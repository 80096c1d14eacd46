import type { IdempotencyBegin, IdempotencyStore, StoredResponse } from '../../domain/limits/ports.js';
import { asError } from '../../errors/as-error.js';
import { BoundedTtlMap } from './bounded-map.js';
import { DEFAULT_MAX_ENTRIES, type MemoryStoreOptions } from './limit-store.js';

export interface MemoryIdempotencyStoreOptions extends MemoryStoreOptions {
  /** Cap on the approximate bytes of stored responses. Default 64 MiB. */
  readonly maxBytes?: number;
}

type IdempotencyRecord =
  | { readonly state: 'in_progress'; readonly fp: string }
  | { readonly state: 'done'; readonly fp: string; readonly response: StoredResponse };

/** Rough heap cost of a record: UTF-16 strings plus a fixed overhead per entry. */
function recordBytes(key: string, rec: IdempotencyRecord): number {
  let chars = key.length + rec.fp.length;
  if (rec.state === 'done') {
    chars += rec.response.body.length;
    for (const [name, value] of Object.entries(rec.response.headers)) chars += name.length + value.length;
  }
  return chars * 2 + 128;
}

/** Seconds to a millisecond expiry, at least 1 ms. */
export function ttlMs(seconds: number): number {
  if (!(seconds > 0) || !Number.isFinite(seconds)) throw new RangeError(`TTL must be a positive number of seconds, got ${seconds}`);
  return Math.max(1, Math.round(seconds * 1000));
}

/**
 * Idempotency records in this process only, with the same rules as RedisIdempotencyStore. Bounded
 * by entries and by bytes; when full, expired records go first, then the least recently written.
 */
export class MemoryIdempotencyStore implements IdempotencyStore {
  readonly mode = 'memory' as const;
  private readonly records: BoundedTtlMap<IdempotencyRecord>;
  private readonly clock: () => number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(options: MemoryIdempotencyStoreOptions = {}) {
    this.records = new BoundedTtlMap<IdempotencyRecord>({
      maxEntries: options.maxEntries ?? DEFAULT_MAX_ENTRIES,
      maxBytes: options.maxBytes ?? 64 * 1024 * 1024,
      sizeOf: recordBytes,
    });
    this.clock = options.clock ?? Date.now;
    this.sweeper = setInterval(() => this.records.sweep(this.clock()), options.sweepIntervalMs ?? 60_000);
    this.sweeper.unref();
  }

  get size(): number {
    return this.records.size;
  }

  get bytes(): number {
    return this.records.bytes;
  }

  /** Whether a live record (in progress or done) exists for the key. */
  has(key: string): boolean {
    return this.records.get(key, this.clock()) !== undefined;
  }

  begin(key: string, fingerprint: string, lockTtlS: number): Promise<IdempotencyBegin> {
    try {
      return Promise.resolve(this.beginSync(key, fingerprint, lockTtlS));
    } catch (err) {
      return Promise.reject(asError(err));
    }
  }

  beginSync(key: string, fingerprint: string, lockTtlS: number): IdempotencyBegin {
    const lockMs = ttlMs(lockTtlS);
    const now = this.clock();
    const rec = this.records.get(key, now);
    if (!rec) {
      this.records.set(key, { state: 'in_progress', fp: fingerprint }, now + lockMs, now);
      return { state: 'started' };
    }
    if (rec.fp !== fingerprint) return { state: 'mismatch' };
    if (rec.state === 'in_progress') return { state: 'in_progress' };
    return { state: 'replay', response: rec.response };
  }

  complete(key: string, fingerprint: string, response: StoredResponse, ttlS: number): Promise<void> {
    try {
      this.completeSync(key, fingerprint, response, ttlS);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(asError(err));
    }
  }

  /** Stores the response; returns false (and stores nothing) when the key now belongs to another request. */
  completeSync(key: string, fingerprint: string, response: StoredResponse, ttlS: number): boolean {
    const keepMs = ttlMs(ttlS);
    const now = this.clock();
    const rec = this.records.get(key, now);
    if (rec && rec.fp !== fingerprint) return false;
    const copy: StoredResponse = { status: response.status, headers: { ...response.headers }, body: response.body };
    this.records.set(key, { state: 'done', fp: fingerprint, response: copy }, now + keepMs, now);
    return true;
  }

  abandon(key: string): Promise<void> {
    this.abandonSync(key);
    return Promise.resolve();
  }

  abandonSync(key: string): boolean {
    const rec = this.records.get(key, this.clock());
    if (rec?.state !== 'in_progress') return false;
    return this.records.delete(key);
  }

  close(): void {
    clearInterval(this.sweeper);
  }
}
