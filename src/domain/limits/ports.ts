/** Outcome of one rate-limit + quota admission check. */
export interface Admission {
  readonly allowed: boolean;
  /** Why it was refused, when it was. */
  readonly reason?: 'rate' | 'quota';
  /** Requests per minute allowed for this key. */
  readonly limit: number;
  /** Requests still allowed right now without waiting. */
  readonly remaining: number;
  /** Seconds until the bucket is full again (RateLimit-Reset). */
  readonly resetS: number;
  /** Seconds to wait before retrying, when refused. */
  readonly retryAfterS: number;
  /** Tokens used this month by the tenant, before this request. */
  readonly quotaUsed: number;
}

export interface AdmissionRequest {
  /** Rate-limit bucket, per API key. */
  readonly rateKey: string;
  readonly limitPerMinute: number;
  /** Monthly token counter, per tenant and month (e.g. "acme:2026-11"). */
  readonly quotaKey: string;
  readonly quotaLimit: number;
  readonly now?: number;
}

/** Rate limits and quotas; one atomic operation per admission. */
export interface LimitStore {
  readonly mode: 'redis' | 'memory';
  admit(req: AdmissionRequest): Promise<Admission>;
  /** Adds tokens spent to the tenant's monthly counter. */
  addTokens(quotaKey: string, tokens: number): Promise<void>;
}

export interface StoredResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export type IdempotencyBegin =
  | { readonly state: 'started' }
  | { readonly state: 'in_progress' }
  | { readonly state: 'mismatch' }
  | { readonly state: 'replay'; readonly response: StoredResponse };

/**
 * Idempotency-Key records, scoped by tenant. `fingerprint` covers method, route and body so a reused
 * key with a different request is told apart from a replay.
 */
export interface IdempotencyStore {
  readonly mode: 'redis' | 'memory';
  begin(key: string, fingerprint: string, lockTtlS: number): Promise<IdempotencyBegin>;
  complete(key: string, fingerprint: string, response: StoredResponse, ttlS: number): Promise<void>;
  /** Forgets an in-progress record (the request failed with 5xx), so a retry may run. */
  abandon(key: string): Promise<void>;
}
