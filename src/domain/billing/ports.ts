import type { Tier } from '../../config/schema.js';
import type { SubscriptionStatus, Tenant } from '../tenancy/types.js';
import type { ApplyOutcome } from './apply.js';

/** What the ledger keeps for an event whose effect is durable. */
export type RecordedOutcome = ApplyOutcome | 'unmatched';

export interface LedgerDone {
  readonly state: 'done';
  readonly outcome: RecordedOutcome;
  readonly type: string;
  readonly tenant?: string;
  /** ISO time the effect was recorded. */
  readonly at: string;
  readonly owner: string;
}

/** A processing claim this instance holds on an event id; `revision` guards every later write. */
export interface LedgerClaim {
  readonly eventId: string;
  readonly revision: number;
  readonly owner: string;
  /** The previous owner's claim had expired (it crashed or stalled) and was taken over. */
  readonly takenOver: boolean;
}

export type ClaimResult =
  | { readonly kind: 'claimed'; readonly claim: LedgerClaim }
  | { readonly kind: 'done'; readonly record: LedgerDone }
  /** Another instance is processing it right now (its claim is younger than the lease). */
  | { readonly kind: 'busy'; readonly owner: string; readonly ageMs: number };

export interface TenantUpdate {
  readonly before: Tenant;
  readonly after: Tenant;
  /** False when the function asked for no write (nothing changed). */
  readonly written: boolean;
}

/** One audit record per processed event, published once (deduplicated by event id). */
export interface BillingAudit {
  readonly event_id: string;
  readonly type: string;
  readonly created: number;
  readonly livemode: boolean;
  readonly outcome: RecordedOutcome;
  readonly reason?: string;
  readonly tenant?: string;
  readonly customer?: string;
  readonly subscription?: string;
  readonly before?: { readonly tier: Tier; readonly subscription_status: SubscriptionStatus };
  readonly after?: { readonly tier: Tier; readonly subscription_status: SubscriptionStatus };
  readonly changed: boolean;
  readonly instance: string;
  readonly recorded_at: string;
}

/**
 * Everything the webhook needs to record an effect durably and exactly once, shared by every
 * replica (NATS JetStream KV in production). All methods may throw when the backend is
 * unreachable; the processor then answers "retry later".
 */
export interface BillingBackend {
  /** Opens buckets/streams; cheap after the first success, retried after a failure. */
  ready(): Promise<void>;
  /** False while the backend is known to be unreachable: fail fast instead of waiting on timeouts. */
  available(): boolean;

  /** Atomically claims an event id: only one caller across all replicas gets `claimed`. */
  claim(eventId: string, owner: string, type: string, leaseMs: number): Promise<ClaimResult>;
  /** Marks the claimed event done; resolves even when the claim was taken over meanwhile. */
  finish(claim: LedgerClaim, record: LedgerDone): Promise<void>;
  /** Gives a claim up after a failure, so the retry Stripe sends can run at once. */
  release(claim: LedgerClaim): Promise<void>;

  /** The tenant a Stripe customer is linked to, if any. */
  tenantOfCustomer(customerId: string): Promise<string | undefined>;
  linkCustomer(customerId: string, tenantId: string, eventId: string): Promise<void>;
  /**
   * Compare-and-set on the authoritative tenant record: `change` receives the current record and
   * returns the new one, or undefined for no write; it is called again if the record changed
   * meanwhile. Resolves undefined when there is no such tenant.
   */
  updateTenant(tenantId: string, change: (current: Tenant) => Tenant | undefined): Promise<TenantUpdate | undefined>;
  /** Publishes the audit record; a second publish for the same event id is dropped. */
  audit(record: BillingAudit): Promise<void>;
}

/** Finds a tenant by its stored stripe_customer_id when the customer index has no entry (a tenant set up by hand). */
export interface TenantDirectory {
  listTenants(): readonly Tenant[];
}
