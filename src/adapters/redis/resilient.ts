/**
 * Failure policy for rate limits, quotas and idempotency (user-facing version: docs/failure-policy.md).
 *
 * 1. Redis never fails a request. While Redis is healthy ('redis' mode) every call goes to Redis. A
 *    call that fails (connection refused, client offline, command timeout, any Redis error) is
 *    answered at once from the in-process memory store, and the backends switch to 'memory' mode.
 *    A hung server costs the requests in flight at that moment at most REDIS_COMMAND_TIMEOUT_MS;
 *    after the first failure calls go straight to memory without trying Redis.
 * 2. Recovery is automatic. ioredis reconnects by itself (capped backoff); on its 'ready' event, and
 *    every `probeIntervalMs` while in memory mode (a paused server never closes the socket, so no
 *    'ready' comes), a PING is sent; when it answers, token counts journaled during the outage are
 *    added to Redis, then the mode returns to 'redis'. After 3 unanswered probes on a connection
 *    that looks open (half-open TCP, hung server) the connection is dropped and re-established.
 *    An error PING cannot see (e.g. OOM refusing writes) makes the mode alternate once per probe
 *    interval; requests are still answered, and every switch is reported to onModeChange.
 * 3. During an outage limits are per instance: each instance enforces the full limit on its own, so
 *    with N instances a key may get up to N x limit. Rate buckets start empty in memory. Quota
 *    checks start from the last usage each instance read from Redis, plus what it counted since.
 * 4. Tokens added during an outage are kept in a journal (bounded) and INCRBY'd into Redis on
 *    recovery, so monthly counters in Redis end up complete. A command that timed out may still have
 *    run in Redis; its tokens are then counted twice (an over-count, bounded by the requests in
 *    flight at the moment of failure).
 * 5. Idempotency records made during an outage live only on the instance that made them; a retry
 *    that lands on another instance (or on the same one after recovery, if the request was not yet
 *    complete) is not recognised. Records already in Redis are not lost, but while in memory mode an
 *    instance cannot see them, so a retry of a request completed before the outage runs again. A
 *    response completed after recovery is written to Redis even when its begin() was in memory.
 *    An in-progress lock taken in Redis whose request completes during the outage stays locked in
 *    Redis until its lock TTL ends.
 * 6. Memory stores are bounded (entries, and bytes for stored responses), evicting expired entries
 *    first and then the least recently written, so a long outage cannot exhaust memory.
 * 7. No REDIS_URL (and no embedded server): memory only, status 'disabled', single-instance semantics.
 * Caller mistakes (RangeError: bad limits, TTLs, empty keys) are rethrown and never change the mode.
 */
import type { Redis } from 'ioredis';
import type { AdmissionRequest, IdempotencyBegin, IdempotencyStore, LimitStore, StoredResponse } from '../../domain/limits/ports.js';
import { type AdmissionDetail, normalizeTokens } from '../memory/gcra.js';
import { MemoryIdempotencyStore, type MemoryIdempotencyStoreOptions } from '../memory/idempotency-store.js';
import { MemoryLimitStore, type MemoryLimitStoreOptions } from '../memory/limit-store.js';
import { asError } from '../../errors/as-error.js';
import { closeRedisClient, connectWithin, createRedisClient, redactSecrets } from './client.js';
import { RedisIdempotencyStore } from './idempotency-store.js';
import { RedisLimitStore } from './limit-store.js';

export type BackendMode = 'redis' | 'memory';

/** For /health and logs. `since`: ISO time of the last change of status. */
export interface RedisBackendStatus {
  readonly status: 'ok' | 'down' | 'disabled';
  readonly mode: BackendMode;
  readonly last_error?: string;
  readonly since: string;
}

export type ModeChangeListener = (status: RedisBackendStatus) => void;

export interface RedisFailoverOptions {
  /** How often Redis is re-checked while in memory mode. Default 1000 ms. */
  readonly probeIntervalMs?: number;
}

function describe(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return redactSecrets(text).slice(0, 300);
}

/** Errors that are the caller's fault and say nothing about Redis' health. */
function isCallerError(err: unknown): boolean {
  return err instanceof RangeError;
}

const DONE: Promise<void> = Promise.resolve();


/**
 * The mode switch shared by the limit and idempotency wrappers of one Redis client: 'redis' while
 * calls succeed, 'memory' from the first failure until a probe PING succeeds again.
 */
export class RedisFailover {
  private current: BackendMode;
  private lastError: string | undefined;
  private sinceIso: string;
  private readonly listeners = new Set<ModeChangeListener>();
  private readonly recoverySteps: (() => Promise<void>)[] = [];
  private probeTimer: NodeJS.Timeout | undefined;
  private probing: Promise<boolean> | undefined;
  private closed = false;
  private failedProbes = 0;
  private forcedReconnects = 0;
  /** Consecutive failed probes on a 'ready' connection before it is replaced. */
  static readonly PROBES_BEFORE_RECONNECT = 3;
  private readonly probeIntervalMs: number;
  private readonly onReady = (): void => {
    void this.probeNow();
  };
  private readonly onClose = (): void => {
    // In memory mode already: keep the more telling error (e.g. ECONNREFUSED) as last_error.
    if (this.current === 'redis') this.reportFailure(new Error('connection to Redis closed'));
  };
  private readonly onError = (err: unknown): void => {
    this.lastError = describe(err);
  };

  /** Memory only, for when no Redis is configured. */
  static disabled(): RedisFailover {
    return new RedisFailover(undefined);
  }

  /**
   * Starts in 'memory' mode ('down', or 'disabled' without a client) and switches to 'redis' on the
   * first successful probe: on the client's 'ready' event, or call `probeNow()` after connecting.
   */
  constructor(private readonly client: Redis | undefined, options: RedisFailoverOptions = {}) {
    this.current = 'memory';
    this.sinceIso = new Date().toISOString();
    this.probeIntervalMs = options.probeIntervalMs ?? 1000;
    if (client) {
      this.lastError = 'not connected yet';
      client.on('ready', this.onReady);
      client.on('close', this.onClose);
      client.on('error', this.onError);
      this.startProbing();
    }
  }

  get mode(): BackendMode {
    return this.current;
  }

  /** How many times a silent connection was dropped to reconnect (diagnostics). */
  get reconnectsForced(): number {
    return this.forcedReconnects;
  }

  get isDisabled(): boolean {
    return this.client === undefined;
  }

  status(): RedisBackendStatus {
    const status = this.client === undefined ? 'disabled' : this.current === 'redis' ? 'ok' : 'down';
    return {
      status,
      mode: this.current,
      ...(this.lastError !== undefined && status !== 'ok' ? { last_error: this.lastError } : {}),
      since: this.sinceIso,
    };
  }

  /** Called with the new status on every switch; returns an unsubscribe function. */
  onModeChange(listener: ModeChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Work that must succeed before returning to 'redis' (e.g. flushing journaled counts). */
  addRecoveryStep(step: () => Promise<void>): void {
    this.recoverySteps.push(step);
  }

  /** A Redis call failed: switch to memory (if not already) and start probing for recovery. */
  reportFailure(err: unknown): void {
    if (this.client === undefined || this.closed) return;
    this.lastError = describe(err);
    if (this.current === 'memory') return;
    this.switchTo('memory');
    this.startProbing();
  }

  /** PINGs Redis when the client is connected; on success runs the recovery steps and switches to 'redis'. */
  probeNow(): Promise<boolean> {
    const client = this.client;
    if (!client || this.closed) return Promise.resolve(false);
    if (this.current === 'redis') return Promise.resolve(true);
    if (this.probing) return this.probing;
    if (client.status !== 'ready') return Promise.resolve(false);
    this.probing = this.probe(client).finally(() => {
      this.probing = undefined;
    });
    return this.probing;
  }

  private async probe(client: Redis): Promise<boolean> {
    try {
      await client.ping();
      this.failedProbes = 0;
      for (const step of this.recoverySteps) await step();
      if (this.closed) return false;
      this.stopProbing();
      this.switchTo('redis');
      return true;
    } catch (err) {
      this.lastError = describe(err);
      // A connection that stays "ready" but never answers may be half-open (peer gone without a
      // FIN/RST): after a few silent probes, drop it and let ioredis connect afresh.
      if (++this.failedProbes >= RedisFailover.PROBES_BEFORE_RECONNECT && client.status === 'ready') {
        this.failedProbes = 0;
        this.forcedReconnects++;
        client.disconnect(true);
      }
      return false;
    }
  }

  /** Stops probing and detaches from the client (which the caller closes). */
  close(): void {
    this.closed = true;
    this.stopProbing();
    this.listeners.clear();
    if (this.client) {
      this.client.off('ready', this.onReady);
      this.client.off('close', this.onClose);
      this.client.off('error', this.onError);
    }
  }

  private switchTo(mode: BackendMode): void {
    if (this.current === mode) return;
    this.current = mode;
    this.sinceIso = new Date().toISOString();
    const status = this.status();
    for (const listener of [...this.listeners]) {
      try {
        listener(status);
      } catch {
        // A failing listener must not break the switch or the other listeners.
      }
    }
  }

  private startProbing(): void {
    if (this.probeTimer || this.closed) return;
    this.probeTimer = setInterval(() => void this.probeNow(), this.probeIntervalMs);
    this.probeTimer.unref();
  }

  private stopProbing(): void {
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.probeTimer = undefined;
  }
}

/** What ResilientLimitStore needs from the Redis side (RedisLimitStore). */
export interface RedisLimitBackend extends LimitStore {
  admit(req: AdmissionRequest): Promise<AdmissionDetail>;
  /** Adds tokens and returns the new total (-1 when nothing was added). */
  incrementQuota(quotaKey: string, tokens: number): Promise<number>;
}

export interface ResilientLimitStoreOptions {
  /** Most distinct quota keys whose outage-time tokens are journaled for Redis. Default 100k. */
  readonly maxJournalKeys?: number;
}

/**
 * LimitStore that uses Redis while it is healthy and the memory store otherwise (policy at the top of
 * this file). Remembers the quota usage Redis reports so outage-time quota checks start from it, and
 * journals outage-time tokens to add them to Redis on recovery.
 */
export class ResilientLimitStore implements LimitStore {
  private readonly journal = new Map<string, number>();
  private readonly maxJournalKeys: number;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly redis: RedisLimitBackend | undefined,
    private readonly memory: MemoryLimitStore,
    private readonly failover: RedisFailover,
    options: ResilientLimitStoreOptions = {},
  ) {
    this.maxJournalKeys = options.maxJournalKeys ?? 100_000;
    failover.addRecoveryStep(() => this.flushJournal());
    failover.onModeChange((status) => {
      // Tokens journaled between the recovery flush and the switch go out right after it.
      if (status.mode === 'redis' && this.journal.size > 0) this.flushJournal().catch((err: unknown) => failover.reportFailure(err));
    });
  }

  get mode(): BackendMode {
    return this.failover.mode;
  }

  /** Quota keys with tokens waiting to be added to Redis. */
  get journaledKeys(): number {
    return this.journal.size;
  }

  /**
   * Not async: one `then` on Redis' answer instead of an async function's promise and frame per
   * call (admission and charge run on every billable request).
   */
  admit(req: AdmissionRequest): Promise<AdmissionDetail> {
    const redis = this.redis;
    if (redis && this.failover.mode === 'redis') {
      let pending: Promise<AdmissionDetail>;
      try {
        pending = redis.admit(req);
      } catch (err) {
        pending = Promise.reject(asError(err)); // a synchronous throw: the fallback below handles both alike
      }
      return pending.then((admission) => {
        this.memory.observeQuota(req.quotaKey, admission.quotaUsed);
        return admission;
      }, (err: unknown) => {
        if (isCallerError(err)) throw err;
        this.failover.reportFailure(err);
        return this.memory.admitSync(req);
      });
    }
    return this.admitInMemory(req);
  }

  private admitInMemory(req: AdmissionRequest): Promise<AdmissionDetail> {
    try {
      return Promise.resolve(this.memory.admitSync(req));
    } catch (err) {
      return Promise.reject(asError(err));
    }
  }

  addTokens(quotaKey: string, tokens: number): Promise<void> {
    const redis = this.redis;
    if (redis && this.failover.mode === 'redis') {
      let pending: Promise<number>;
      try {
        pending = redis.incrementQuota(quotaKey, tokens);
      } catch (err) {
        pending = Promise.reject(asError(err)); // a synchronous throw: the fallback below handles both alike
      }
      return pending.then((total) => {
        if (total > 0) this.memory.observeQuota(quotaKey, total);
      }, (err: unknown) => {
        if (isCallerError(err)) throw err;
        this.failover.reportFailure(err);
        this.addTokensInMemory(quotaKey, tokens);
      });
    }
    try {
      this.addTokensInMemory(quotaKey, tokens);
      return DONE;
    } catch (err) {
      return Promise.reject(asError(err));
    }
  }

  private addTokensInMemory(quotaKey: string, tokens: number): void {
    const n = normalizeTokens(tokens);
    this.memory.addTokensSync(quotaKey, n);
    if (this.redis) this.journalTokens(quotaKey, n);
  }

  /** Adds every journaled count to Redis; stops at the first failure, keeping what was not sent. */
  flushJournal(): Promise<void> {
    this.flushing ??= this.flushOnce().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async flushOnce(): Promise<void> {
    const redis = this.redis;
    if (!redis) return;
    while (this.journal.size > 0) {
      const first = this.journal.entries().next();
      if (first.done) return;
      const [key, tokens] = first.value;
      this.journal.delete(key);
      try {
        await redis.incrementQuota(key, tokens);
      } catch (err) {
        this.journalTokens(key, tokens);
        throw err;
      }
    }
  }

  private journalTokens(quotaKey: string, tokens: number): void {
    if (tokens <= 0) return;
    const pending = this.journal.get(quotaKey);
    if (pending !== undefined) {
      this.journal.set(quotaKey, pending + tokens);
      return;
    }
    if (this.journal.size >= this.maxJournalKeys) {
      const oldest = this.journal.keys().next();
      if (!oldest.done) this.journal.delete(oldest.value);
    }
    this.journal.set(quotaKey, tokens);
  }
}

/** IdempotencyStore that uses Redis while it is healthy and the memory store otherwise. */
export class ResilientIdempotencyStore implements IdempotencyStore {
  constructor(
    private readonly redis: IdempotencyStore | undefined,
    private readonly memory: MemoryIdempotencyStore,
    private readonly failover: RedisFailover,
  ) {}

  get mode(): BackendMode {
    return this.failover.mode;
  }

  async begin(key: string, fingerprint: string, lockTtlS: number): Promise<IdempotencyBegin> {
    if (this.redis && this.failover.mode === 'redis') {
      try {
        return await this.redis.begin(key, fingerprint, lockTtlS);
      } catch (err) {
        if (isCallerError(err)) throw err;
        this.failover.reportFailure(err);
      }
    }
    return this.memory.beginSync(key, fingerprint, lockTtlS);
  }

  async complete(key: string, fingerprint: string, response: StoredResponse, ttlS: number): Promise<void> {
    if (this.redis && this.failover.mode === 'redis') {
      try {
        await this.redis.complete(key, fingerprint, response, ttlS);
        // A request begun in memory during the outage: settle the local record too, so a later
        // outage replays it instead of treating the key as locked.
        if (this.memory.has(key)) this.memory.completeSync(key, fingerprint, response, ttlS);
        return;
      } catch (err) {
        if (isCallerError(err)) throw err;
        this.failover.reportFailure(err);
      }
    }
    this.memory.completeSync(key, fingerprint, response, ttlS);
  }

  async abandon(key: string): Promise<void> {
    this.memory.abandonSync(key);
    if (this.redis && this.failover.mode === 'redis') {
      try {
        await this.redis.abandon(key);
      } catch (err) {
        if (isCallerError(err)) throw err;
        this.failover.reportFailure(err);
      }
    }
  }
}

export interface LimitBackendsOptions {
  /** REDIS_URL; undefined or empty: memory only ('disabled'). */
  readonly redisUrl?: string | undefined;
  /** REDIS_COMMAND_TIMEOUT_MS. Default 250. */
  readonly commandTimeoutMs?: number;
  /** How long startup waits for the first connection before running on memory. Default 2000 ms. */
  readonly connectDeadlineMs?: number;
  /** While in memory mode, how often Redis is re-checked. Default 1000 ms. */
  readonly probeIntervalMs?: number;
  /** Longest pause between reconnect attempts. Default 2000 ms. */
  readonly maxReconnectDelayMs?: number;
  readonly memory?: MemoryLimitStoreOptions & MemoryIdempotencyStoreOptions;
  /** Shown in CLIENT LIST. */
  readonly connectionName?: string;
}

/** Everything the HTTP layer needs: the two stores, health status, transitions, shutdown. */
export interface LimitBackends {
  readonly limits: ResilientLimitStore;
  readonly idempotency: ResilientIdempotencyStore;
  readonly failover: RedisFailover;
  /** The ioredis client, when Redis is configured. */
  readonly client: Redis | undefined;
  status(): RedisBackendStatus;
  onModeChange(listener: ModeChangeListener): () => void;
  close(): Promise<void>;
}

/**
 * Builds the resilient stores. With a URL: creates the client, waits up to `connectDeadlineMs` for
 * it, and returns in 'redis' mode if connected, else in 'memory' mode ('down') with the client
 * reconnecting in the background. Without a URL: memory only ('disabled'). Never throws for an
 * unreachable Redis.
 */
export async function createLimitBackends(options: LimitBackendsOptions = {}): Promise<LimitBackends> {
  const memoryLimits = new MemoryLimitStore(options.memory);
  const memoryIdempotency = new MemoryIdempotencyStore(options.memory);
  const url = options.redisUrl?.trim();
  const client = url
    ? createRedisClient(url, {
        commandTimeoutMs: options.commandTimeoutMs ?? 250,
        ...(options.maxReconnectDelayMs !== undefined ? { maxReconnectDelayMs: options.maxReconnectDelayMs } : {}),
        ...(options.connectionName !== undefined ? { connectionName: options.connectionName } : {}),
      })
    : undefined;
  const failover = new RedisFailover(client, options.probeIntervalMs !== undefined ? { probeIntervalMs: options.probeIntervalMs } : {});
  const limits = new ResilientLimitStore(client ? new RedisLimitStore(client) : undefined, memoryLimits, failover);
  const idempotency = new ResilientIdempotencyStore(client ? new RedisIdempotencyStore(client) : undefined, memoryIdempotency, failover);
  if (client && (await connectWithin(client, options.connectDeadlineMs ?? 2000))) await failover.probeNow();
  return {
    limits,
    idempotency,
    failover,
    client,
    status: () => failover.status(),
    onModeChange: (listener) => failover.onModeChange(listener),
    close: async () => {
      failover.close();
      memoryLimits.close();
      memoryIdempotency.close();
      if (client) await closeRedisClient(client);
    },
  };
}
