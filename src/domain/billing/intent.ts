import type { Tier } from '../../config/schema.js';
import type { SubscriptionStatus } from '../tenancy/types.js';
import { higherTier, isTier, type PriceTiers } from './price-tiers.js';
import { idField, isRecord, recordField, stringField, type Fields, type StripeEvent } from './stripe-event.js';

export const HANDLED_EVENT_TYPES = [
  'checkout.session.completed',
  'customer.subscription.created',
  'customer.subscription.updated',
  'customer.subscription.deleted',
  'invoice.paid',
  'invoice.payment_failed',
] as const;

export type HandledEventType = (typeof HANDLED_EVENT_TYPES)[number];

export function isHandledType(type: string): type is HandledEventType {
  return (HANDLED_EVENT_TYPES as readonly string[]).includes(type);
}

/** What an event does to the tenant's plan; see applyChange for how each rule meets the current record. */
export type StateRule =
  /** Checkout: the tier named in the session's metadata, once the session is paid. */
  | { readonly kind: 'checkout'; readonly tier?: Tier }
  /** Subscription created/updated/deleted: its status, and the tier its price (or metadata) names. */
  | { readonly kind: 'subscription'; readonly status: SubscriptionStatus; readonly tier?: Tier; readonly tierSource: TierSource }
  /** A paid invoice brings a past_due or unpaid subscription back to active. */
  | { readonly kind: 'invoice_paid' }
  /** A failed invoice payment makes an active or trialing subscription past_due (service continues). */
  | { readonly kind: 'invoice_failed' };

export type TierSource = 'price' | 'metadata' | 'unmapped' | 'ended';

/** The absolute change one Stripe event asks for: SETs only, so applying it again changes nothing. */
export interface BillingChange {
  readonly eventId: string;
  readonly type: HandledEventType;
  /** Unix seconds (the event's `created`); orders events for the same tenant. */
  readonly created: number;
  /** The tenant the event itself names: a checkout session's client_reference_id. */
  readonly tenantId?: string;
  /** `metadata.tenant_id` on the object: used when the customer is not linked to a tenant yet. */
  readonly tenantHint?: string;
  readonly customerId?: string;
  /** Checkout links its customer to the tenant even when the event is older than the tenant's state. */
  readonly linkCustomer: boolean;
  readonly subscriptionId?: string;
  readonly rule: StateRule;
}

export type BillingIntent =
  | { readonly kind: 'ignore'; readonly reason: string }
  | { readonly kind: 'change'; readonly change: BillingChange };

/** Same shape as tenant ids (TENANT_ID_PATTERN): anything else cannot name a tenant. */
const TENANT_REF = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Stripe object ids (cus_…, sub_…); they double as KV keys. */
const OBJECT_ID = /^[a-z]{2,8}_[A-Za-z0-9_]{1,200}$/;

/**
 * Stripe subscription statuses → ours. active/trialing/past_due keep service; canceled, unpaid,
 * incomplete_expired (never paid) and paused (trial ended without a payment method) do not.
 * `incomplete` (first payment pending) is not mapped: the subscription has not started yet.
 */
const SUBSCRIPTION_STATUS: Readonly<Record<string, SubscriptionStatus>> = {
  active: 'active',
  trialing: 'trialing',
  past_due: 'past_due',
  canceled: 'canceled',
  unpaid: 'unpaid',
  incomplete_expired: 'canceled',
  paused: 'unpaid',
};

export function keepsService(status: SubscriptionStatus): boolean {
  return status === 'active' || status === 'trialing' || status === 'past_due';
}

function tenantRef(value: string | undefined): string | undefined {
  return value !== undefined && TENANT_REF.test(value) ? value : undefined;
}

function objectId(value: string | undefined): string | undefined {
  return value !== undefined && OBJECT_ID.test(value) ? value : undefined;
}

function metadataOf(object: Fields | undefined): Fields | undefined {
  return recordField(object, 'metadata');
}

/** The highest tier any of the subscription's prices maps to, else its metadata.tier. */
function subscriptionTier(subscription: Fields, prices: PriceTiers): { tier?: Tier; source: TierSource } {
  let tier: Tier | undefined;
  const items = recordField(subscription, 'items')?.data;
  if (Array.isArray(items)) {
    for (const item of items) {
      if (!isRecord(item)) continue;
      for (const id of [idField(item, 'price'), idField(item, 'plan')]) {
        const mapped = id !== undefined ? prices.get(id) : undefined;
        if (mapped !== undefined) tier = higherTier(tier, mapped);
      }
    }
  }
  if (tier !== undefined) return { tier, source: 'price' };
  const fromMetadata = metadataOf(subscription)?.tier;
  if (isTier(fromMetadata)) return { tier: fromMetadata, source: 'metadata' };
  return { source: 'unmapped' };
}

/** The subscription an invoice belongs to, across API versions (`subscription` before 2025-03, `parent.subscription_details` after). */
function invoiceSubscription(invoice: Fields): { id?: string; metadata?: Fields } {
  const details = recordField(recordField(invoice, 'parent'), 'subscription_details') ?? recordField(invoice, 'subscription_details');
  const id = objectId(idField(invoice, 'subscription') ?? idField(details, 'subscription'));
  const metadata = metadataOf(details);
  return { ...(id !== undefined && { id }), ...(metadata !== undefined && { metadata }) };
}

/**
 * Decides, from a verified event alone, what it asks of the tenant's plan. Pure: the current
 * tenant record is consulted only when the change is applied (applyChange).
 */
export function billingIntent(event: StripeEvent, prices: PriceTiers): BillingIntent {
  const type = event.type;
  if (!isHandledType(type)) return { kind: 'ignore', reason: 'event type not handled' };
  const object = event.object;
  const customerId = objectId(idField(object, 'customer'));
  const base = { eventId: event.id, type, created: event.created, ...(customerId !== undefined && { customerId }) };

  switch (type) {
    case 'checkout.session.completed': {
      const tenantId = tenantRef(stringField(object, 'client_reference_id'));
      const tenantHint = tenantRef(stringField(metadataOf(object), 'tenant_id'));
      if (tenantId === undefined && tenantHint === undefined && customerId === undefined) {
        return { kind: 'ignore', reason: 'checkout session names neither a tenant nor a customer' };
      }
      const paid = ['paid', 'no_payment_required'].includes(stringField(object, 'payment_status') ?? '');
      const tier = metadataOf(object)?.tier;
      const subscriptionId = objectId(idField(object, 'subscription'));
      return {
        kind: 'change',
        change: {
          ...base,
          ...(tenantId !== undefined && { tenantId }),
          ...(tenantHint !== undefined && { tenantHint }),
          ...(subscriptionId !== undefined && { subscriptionId }),
          linkCustomer: customerId !== undefined,
          rule: { kind: 'checkout', ...(paid && isTier(tier) && { tier }) },
        },
      };
    }
    case 'customer.subscription.created':
    case 'customer.subscription.updated':
    case 'customer.subscription.deleted': {
      const stripeStatus = stringField(object, 'status') ?? '';
      const status = type === 'customer.subscription.deleted' ? 'canceled' : SUBSCRIPTION_STATUS[stripeStatus];
      if (status === undefined) return { kind: 'ignore', reason: `subscription status "${stripeStatus.slice(0, 40)}" does not change service` };
      const tenantHint = tenantRef(stringField(metadataOf(object), 'tenant_id'));
      if (customerId === undefined && tenantHint === undefined) return { kind: 'ignore', reason: 'subscription has no customer' };
      const subscriptionId = objectId(stringField(object, 'id'));
      const tier = keepsService(status) ? subscriptionTier(object, prices) : { tier: 'free' as const, source: 'ended' as const };
      return {
        kind: 'change',
        change: {
          ...base,
          ...(tenantHint !== undefined && { tenantHint }),
          ...(subscriptionId !== undefined && { subscriptionId }),
          linkCustomer: false,
          rule: { kind: 'subscription', status, tierSource: tier.source, ...(tier.tier !== undefined && { tier: tier.tier }) },
        },
      };
    }
    case 'invoice.paid':
    case 'invoice.payment_failed': {
      const subscription = invoiceSubscription(object);
      if (subscription.id === undefined) return { kind: 'ignore', reason: 'invoice is not for a subscription' };
      const tenantHint = tenantRef(stringField(subscription.metadata, 'tenant_id'));
      if (customerId === undefined && tenantHint === undefined) return { kind: 'ignore', reason: 'invoice has no customer' };
      return {
        kind: 'change',
        change: {
          ...base,
          ...(tenantHint !== undefined && { tenantHint }),
          subscriptionId: subscription.id,
          linkCustomer: false,
          rule: { kind: type === 'invoice.paid' ? 'invoice_paid' : 'invoice_failed' },
        },
      };
    }
  }
}
