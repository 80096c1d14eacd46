import { randomBytes } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection as NatsClient } from '@nats-io/transport-node';
import { Stripe } from 'stripe';
import { EVENTS_STREAM } from '../../../src/adapters/nats/streams.js';
import { STRIPE_AUDIT_SUBJECT_PREFIX } from '../../../src/adapters/stripe/nats-billing.js';
import type { BillingAudit } from '../../../src/domain/billing/ports.js';
import type { Tier } from '../../../src/config/schema.js';
import type { Tenant } from '../../../src/domain/tenancy/types.js';

/** A fresh endpoint secret per test process, so a leak in logs is unambiguous. */
export const SECRET = `whsec_${randomBytes(18).toString('base64url')}`;
export const PRICE_TIERS = 'price_pro_monthly=pro,price_ent_yearly=enterprise';

let seq = 0;
export function eventId(): string {
  return `evt_test${Date.now().toString(36)}${(seq++).toString(36)}${randomBytes(3).toString('hex')}`;
}

export function nowS(): number {
  return Math.floor(Date.now() / 1000);
}

export interface StripeEventJson {
  readonly id: string;
  readonly object: 'event';
  readonly type: string;
  readonly created: number;
  readonly livemode: false;
  readonly api_version: string;
  readonly data: { readonly object: Record<string, unknown> };
}

export function stripeEvent(type: string, object: Record<string, unknown>, opts: { id?: string; created?: number } = {}): StripeEventJson {
  return {
    id: opts.id ?? eventId(),
    object: 'event',
    type,
    created: opts.created ?? nowS(),
    livemode: false,
    api_version: '2025-09-30.clover',
    data: { object },
  };
}

export function checkoutCompleted(opts: { tenant?: string; customer?: string; tier?: Tier; subscription?: string; paymentStatus?: string; metadataTenant?: string }, eventOpts: { id?: string; created?: number } = {}): StripeEventJson {
  return stripeEvent('checkout.session.completed', {
    id: `cs_test_${randomBytes(6).toString('hex')}`,
    object: 'checkout.session',
    mode: 'subscription',
    client_reference_id: opts.tenant ?? null,
    customer: opts.customer ?? null,
    subscription: opts.subscription ?? null,
    payment_status: opts.paymentStatus ?? 'paid',
    metadata: { ...(opts.tier && { tier: opts.tier }), ...(opts.metadataTenant && { tenant_id: opts.metadataTenant }) },
  }, eventOpts);
}

export function subscriptionEvent(
  type: 'customer.subscription.created' | 'customer.subscription.updated' | 'customer.subscription.deleted',
  opts: { customer: string; status: string; price?: string; id?: string; metadata?: Record<string, string> },
  eventOpts: { id?: string; created?: number } = {},
): StripeEventJson {
  return stripeEvent(type, {
    id: opts.id ?? 'sub_test1',
    object: 'subscription',
    customer: opts.customer,
    status: opts.status,
    items: { object: 'list', data: opts.price ? [{ id: 'si_1', object: 'subscription_item', price: { id: opts.price, object: 'price' } }] : [] },
    metadata: opts.metadata ?? {},
  }, eventOpts);
}

/** An invoice in the 2025+ shape (`parent.subscription_details`) or the older one (`subscription`). */
export function invoiceEvent(type: 'invoice.paid' | 'invoice.payment_failed', opts: { customer: string; subscription?: string; legacy?: boolean }, eventOpts: { id?: string; created?: number } = {}): StripeEventJson {
  const subscription = opts.subscription ?? 'sub_test1';
  return stripeEvent(type, {
    id: `in_test_${randomBytes(6).toString('hex')}`,
    object: 'invoice',
    customer: opts.customer,
    ...(opts.legacy
      ? { subscription }
      : { parent: { type: 'subscription_details', subscription_details: { subscription, metadata: {} } } }),
  }, eventOpts);
}

/** Body and headers as Stripe sends them, signed with the SDK's own test helper. */
export interface SignedRequest {
  readonly payload: string;
  readonly headers: { readonly 'content-type': string; readonly 'stripe-signature': string };
}

export function signed(event: unknown, opts: { secret?: string; timestamp?: number } = {}): SignedRequest {
  const payload = typeof event === 'string' ? event : JSON.stringify(event);
  const header = Stripe.webhooks.generateTestHeaderString({
    payload,
    secret: opts.secret ?? SECRET,
    ...(opts.timestamp !== undefined && { timestamp: opts.timestamp }),
  });
  return { payload, headers: { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': header } };
}

export function makeTenant(id: string, fields: Partial<Tenant> = {}): Tenant {
  const now = new Date().toISOString();
  return { id, name: id, tier: 'free', subscription_status: 'none', created_at: now, updated_at: now, ...fields };
}

/** Every Stripe audit record in EVENTS (read with an ordered consumer), in stream order. */
export async function auditRecords(nc: NatsClient): Promise<BillingAudit[]> {
  const js = jetstream(nc);
  const consumer = await js.consumers.get(EVENTS_STREAM, { filter_subjects: `${STRIPE_AUDIT_SUBJECT_PREFIX}.>` });
  const out: BillingAudit[] = [];
  for (;;) {
    const m = await consumer.next({ expires: 1000 });
    if (!m) break;
    out.push(m.json<BillingAudit>());
    if (m.info.pending === 0) break;
  }
  await consumer.delete().catch(() => undefined);
  return out;
}
