import type { Scope, Tier } from '../../config/schema.js';

export type SubscriptionStatus = 'active' | 'trialing' | 'past_due' | 'canceled' | 'unpaid' | 'none';

export interface Tenant {
  readonly id: string;
  readonly name: string;
  readonly tier: Tier;
  readonly subscription_status: SubscriptionStatus;
  readonly stripe_customer_id?: string;
  /** The Stripe subscription the tier follows; set by the Stripe webhook. */
  readonly stripe_subscription_id?: string;
  /** `created` (unix seconds) of the newest Stripe event applied; an older one arriving later is ignored. */
  readonly stripe_event_at?: number;
  readonly created_at: string;
  readonly updated_at: string;
}

/** What is stored for a key: never the secret, only its SHA-256. */
export interface ApiKeyRecord {
  readonly prefix: string;
  /** Hex SHA-256 of the full key string. */
  readonly hash: string;
  readonly tenant: string;
  readonly tier: Tier;
  readonly scopes: readonly Scope[];
  readonly created_at: string;
  readonly revoked_at: string | null;
}

/** The identity a request carries after authentication. */
export interface Principal {
  readonly tenant: string;
  readonly keyPrefix: string;
  readonly tier: Tier;
  readonly scopes: readonly Scope[];
}

/**
 * Where tenants and keys live. Reads are synchronous from a live in-memory view, so authenticating
 * costs no network round trip; writes go to the backing store and reach every instance's view.
 */
export interface KeyStore {
  readonly kind: 'nats' | 'file';
  /** Loads the current state and starts following changes. */
  start(): Promise<void>;
  getKey(prefix: string): ApiKeyRecord | undefined;
  getTenant(id: string): Tenant | undefined;
  listKeys(): ApiKeyRecord[];
  listTenants(): Tenant[];
  putKey(record: ApiKeyRecord): Promise<void>;
  putTenant(tenant: Tenant): Promise<void>;
  /** Marks the key revoked (kept for audit); resolves false when no such key exists. */
  revokeKey(prefix: string, at?: Date): Promise<boolean>;
  close(): Promise<void>;
}
