import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { ConfigError } from '../../../src/config/load.js';
import { billingIntent, type BillingChange } from '../../../src/domain/billing/intent.js';
import { parsePriceTiers } from '../../../src/domain/billing/price-tiers.js';
import { readStripeEvent, type StripeEvent } from '../../../src/domain/billing/stripe-event.js';
import { checkoutCompleted, invoiceEvent, PRICE_TIERS, stripeEvent, subscriptionEvent } from '../../adapters/stripe/fixtures.js';

const prices = parsePriceTiers(PRICE_TIERS);

function read(json: unknown): StripeEvent {
  const r = readStripeEvent(json);
  if (!r.ok) throw new Error(r.error);
  return r.event;
}

function change(json: unknown): BillingChange {
  const intent = billingIntent(read(json), prices);
  if (intent.kind !== 'change') throw new Error(`expected a change, got ignore: ${intent.reason}`);
  return intent.change;
}

function ignored(json: unknown): string {
  const intent = billingIntent(read(json), prices);
  if (intent.kind !== 'ignore') throw new Error('expected the event to be ignored');
  return intent.reason;
}

describe('STRIPE_PRICE_TIERS', () => {
  test('parses price=tier pairs, tolerating spaces and an empty value', () => {
    assert.deepEqual([...parsePriceTiers(' price_a=pro , price_b=enterprise ')], [['price_a', 'pro'], ['price_b', 'enterprise']]);
    assert.equal(parsePriceTiers('').size, 0);
  });

  test('refuses an unknown tier, a missing price and a price mapped twice, naming the bad part', () => {
    for (const bad of ['price_a=gold', '=pro', 'price_a', 'price a=pro', 'price_a=pro,price_a=enterprise']) {
      assert.throws(() => parsePriceTiers(bad), (err: unknown) => err instanceof ConfigError && err.message.includes('STRIPE_PRICE_TIERS'), bad);
    }
  });
});

describe('reading a verified Stripe event', () => {
  test('accepts a snapshot event and refuses payloads that are not one', () => {
    assert.equal(read(stripeEvent('invoice.paid', { id: 'in_1' })).type, 'invoice.paid');
    for (const bad of [null, [], 'x', {}, { id: 'evt_1', type: 'invoice.paid', created: 1 }, { id: 'nope', type: 'invoice.paid', created: 1, data: { object: {} } },
      { id: 'evt_1', type: 'Invoice Paid', created: 1, data: { object: {} } }, { id: 'evt_1', type: 'invoice.paid', created: -1, data: { object: {} } },
      { id: 'evt_1', type: 'invoice.paid', created: 1.5, data: { object: {} } }]) {
      assert.equal(readStripeEvent(bad).ok, false, JSON.stringify(bad));
    }
  });
});

describe('what each Stripe event asks of the tenant', () => {
  test('checkout.session.completed names the tenant and links its customer; the metadata tier counts once paid', () => {
    const c = change(checkoutCompleted({ tenant: 'acme', customer: 'cus_A', tier: 'pro', subscription: 'sub_1' }));
    assert.equal(c.tenantId, 'acme');
    assert.equal(c.customerId, 'cus_A');
    assert.equal(c.linkCustomer, true);
    assert.equal(c.subscriptionId, 'sub_1');
    assert.deepEqual(c.rule, { kind: 'checkout', tier: 'pro' });
    assert.deepEqual(change(checkoutCompleted({ tenant: 'acme', customer: 'cus_A', tier: 'pro', paymentStatus: 'unpaid' })).rule, { kind: 'checkout' });
    assert.deepEqual(change(checkoutCompleted({ tenant: 'acme', customer: 'cus_A', tier: 'pro', paymentStatus: 'no_payment_required' })).rule, { kind: 'checkout', tier: 'pro' });
    assert.match(ignored(checkoutCompleted({})), /neither a tenant nor a customer/);
  });

  test('a client_reference_id that cannot be a tenant id is not used', () => {
    const c = change(checkoutCompleted({ tenant: 'Not A Tenant!', customer: 'cus_A' }));
    assert.equal(c.tenantId, undefined);
  });

  test('subscription created/updated: the tier comes from the price mapping, else metadata.tier, else stays', () => {
    const byPrice = change(subscriptionEvent('customer.subscription.updated', { customer: 'cus_A', status: 'active', price: 'price_ent_yearly' }));
    assert.deepEqual(byPrice.rule, { kind: 'subscription', status: 'active', tier: 'enterprise', tierSource: 'price' });
    const byMeta = change(subscriptionEvent('customer.subscription.created', { customer: 'cus_A', status: 'trialing', price: 'price_unknown', metadata: { tier: 'pro' } }));
    assert.deepEqual(byMeta.rule, { kind: 'subscription', status: 'trialing', tier: 'pro', tierSource: 'metadata' });
    const unmapped = change(subscriptionEvent('customer.subscription.updated', { customer: 'cus_A', status: 'active', price: 'price_unknown' }));
    assert.deepEqual(unmapped.rule, { kind: 'subscription', status: 'active', tierSource: 'unmapped' });
  });

  test('statuses that end service map to free: canceled, unpaid, incomplete_expired, paused; deleted is canceled', () => {
    const cases: [string, string][] = [['canceled', 'canceled'], ['unpaid', 'unpaid'], ['incomplete_expired', 'canceled'], ['paused', 'unpaid']];
    for (const [stripe, ours] of cases) {
      assert.deepEqual(change(subscriptionEvent('customer.subscription.updated', { customer: 'cus_A', status: stripe, price: 'price_pro_monthly' })).rule,
        { kind: 'subscription', status: ours, tier: 'free', tierSource: 'ended' }, stripe);
    }
    assert.deepEqual(change(subscriptionEvent('customer.subscription.deleted', { customer: 'cus_A', status: 'active' })).rule,
      { kind: 'subscription', status: 'canceled', tier: 'free', tierSource: 'ended' });
    assert.match(ignored(subscriptionEvent('customer.subscription.created', { customer: 'cus_A', status: 'incomplete' })), /does not change service/);
  });

  test('past_due keeps service and the price tier', () => {
    assert.deepEqual(change(subscriptionEvent('customer.subscription.updated', { customer: 'cus_A', status: 'past_due', price: 'price_pro_monthly' })).rule,
      { kind: 'subscription', status: 'past_due', tier: 'pro', tierSource: 'price' });
  });

  test('invoices: the subscription is found in both API shapes; an invoice without one changes nothing', () => {
    assert.equal(change(invoiceEvent('invoice.paid', { customer: 'cus_A', subscription: 'sub_9' })).subscriptionId, 'sub_9');
    assert.equal(change(invoiceEvent('invoice.payment_failed', { customer: 'cus_A', subscription: 'sub_9', legacy: true })).subscriptionId, 'sub_9');
    assert.deepEqual(change(invoiceEvent('invoice.payment_failed', { customer: 'cus_A' })).rule, { kind: 'invoice_failed' });
    assert.match(ignored(stripeEvent('invoice.paid', { id: 'in_1', customer: 'cus_A' })), /not for a subscription/);
  });

  test('other event types are ignored', () => {
    assert.match(ignored(stripeEvent('customer.created', { id: 'cus_A' })), /not handled/);
    assert.match(ignored(stripeEvent('charge.succeeded', { id: 'ch_1' })), /not handled/);
  });
});
