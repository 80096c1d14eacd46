import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { TIERS } from '../../../src/config/schema.js';
import { applyChange } from '../../../src/domain/billing/apply.js';
import type { BillingChange, StateRule } from '../../../src/domain/billing/intent.js';
import type { SubscriptionStatus, Tenant } from '../../../src/domain/tenancy/types.js';
import { makeTenant } from '../../adapters/stripe/fixtures.js';

const now = new Date('2026-01-01T00:00:00Z');

function change(rule: StateRule, fields: Partial<BillingChange> = {}): BillingChange {
  return { eventId: 'evt_1', type: 'customer.subscription.updated', created: 1000, linkCustomer: false, customerId: 'cus_A', subscriptionId: 'sub_1', rule, ...fields };
}

const active = (tier: 'pro' | 'enterprise'): StateRule => ({ kind: 'subscription', status: 'active', tier, tierSource: 'price' });

describe('applying a billing change to a tenant', () => {
  test('a subscription that keeps service sets status, tier and the subscription the tenant follows', () => {
    const r = applyChange(makeTenant('acme', { stripe_customer_id: 'cus_A' }), change(active('pro')), now);
    assert.equal(r.outcome, 'applied');
    assert.equal(r.changed, true);
    assert.equal(r.tenant.tier, 'pro');
    assert.equal(r.tenant.subscription_status, 'active');
    assert.equal(r.tenant.stripe_subscription_id, 'sub_1');
    assert.equal(r.tenant.stripe_event_at, 1000);
    assert.equal(r.tenant.updated_at, now.toISOString());
  });

  test('applying the same change again changes nothing', () => {
    const once = applyChange(makeTenant('acme'), change(active('enterprise')), now);
    const twice = applyChange(once.tenant, change(active('enterprise')), new Date(now.getTime() + 5000));
    assert.equal(twice.changed, false);
    assert.equal(twice.tenant, once.tenant);
  });

  test('an event created before the newest applied one is stale and leaves the plan alone', () => {
    const tenant = makeTenant('acme', { tier: 'free', subscription_status: 'canceled', stripe_event_at: 2000, stripe_subscription_id: 'sub_1', stripe_customer_id: 'cus_A' });
    const r = applyChange(tenant, change(active('pro'), { created: 1999 }), now);
    assert.equal(r.outcome, 'stale');
    assert.equal(r.changed, false);
    assert.equal(r.tenant.tier, 'free');
  });

  test('a stale checkout still links its customer', () => {
    const tenant = makeTenant('acme', { stripe_event_at: 2000 });
    const r = applyChange(tenant, change({ kind: 'checkout', tier: 'pro' }, { created: 1500, linkCustomer: true, customerId: 'cus_NEW' }), now);
    assert.equal(r.outcome, 'stale');
    assert.equal(r.tenant.stripe_customer_id, 'cus_NEW');
    assert.equal(r.tenant.tier, 'free');
  });

  test('a subscription event created before its checkout still applies when its retry arrives after the checkout', () => {
    // Stripe's order: the subscription (created 1000) exists before the session completes (1001);
    // its event was deferred while the customer was unlinked, and Stripe retries it later.
    const checkout = applyChange(makeTenant('acme'), change({ kind: 'checkout', tier: 'enterprise' }, { type: 'checkout.session.completed', created: 1001, linkCustomer: true, customerId: 'cus_A' }), now);
    assert.equal(checkout.outcome, 'applied');
    assert.equal(checkout.tenant.stripe_event_at, undefined);
    const sub = applyChange(checkout.tenant, change(active('enterprise'), { type: 'customer.subscription.created', created: 1000 }), now);
    assert.equal(sub.outcome, 'applied');
    assert.equal(sub.tenant.subscription_status, 'active');
    assert.equal(sub.tenant.tier, 'enterprise');
    assert.equal(sub.tenant.stripe_event_at, 1000);
  });

  test('a checkout older than the newest subscription state it would override is stale', () => {
    const tenant = makeTenant('acme', { tier: 'pro', subscription_status: 'active', stripe_event_at: 2000, stripe_subscription_id: 'sub_1' });
    const r = applyChange(tenant, change({ kind: 'checkout', tier: 'enterprise' }, { created: 1999, subscriptionId: 'sub_2' }), now);
    assert.equal(r.outcome, 'stale');
    assert.equal(r.tenant.tier, 'pro');
    assert.equal(r.tenant.stripe_subscription_id, 'sub_1');
  });

  test('canceling a subscription the tenant no longer follows is skipped', () => {
    const tenant = makeTenant('acme', { tier: 'pro', subscription_status: 'active', stripe_subscription_id: 'sub_NEW' });
    const r = applyChange(tenant, change({ kind: 'subscription', status: 'canceled', tier: 'free', tierSource: 'ended' }, { subscriptionId: 'sub_OLD' }), now);
    assert.equal(r.outcome, 'skipped');
    assert.equal(r.tenant.tier, 'pro');
  });

  test('invoice.paid reactivates past_due/unpaid, keeps the tier, and leaves canceled alone', () => {
    const paid = change({ kind: 'invoice_paid' }, { type: 'invoice.paid' });
    const pastDue = applyChange(makeTenant('a', { tier: 'pro', subscription_status: 'past_due', stripe_subscription_id: 'sub_1' }), paid, now);
    assert.equal(pastDue.tenant.subscription_status, 'active');
    assert.equal(pastDue.tenant.tier, 'pro');
    const canceled = applyChange(makeTenant('a', { subscription_status: 'canceled', stripe_subscription_id: 'sub_1' }), paid, now);
    assert.equal(canceled.tenant.subscription_status, 'canceled');
  });

  test('invoice.payment_failed makes active past_due with the tier kept; an older one after a payment is stale', () => {
    const failed = change({ kind: 'invoice_failed' }, { type: 'invoice.payment_failed', created: 1000 });
    const r = applyChange(makeTenant('a', { tier: 'enterprise', subscription_status: 'active', stripe_subscription_id: 'sub_1' }), failed, now);
    assert.equal(r.tenant.subscription_status, 'past_due');
    assert.equal(r.tenant.tier, 'enterprise');
    // paid at 1100 while active: nothing visible changes, but the mark moves, so the late failure is stale
    const afterPaid = applyChange(makeTenant('a', { tier: 'pro', subscription_status: 'active' }), change({ kind: 'invoice_paid' }, { created: 1100 }), now);
    assert.equal(afterPaid.tenant.stripe_event_at, 1100);
    assert.equal(applyChange(afterPaid.tenant, failed, now).outcome, 'stale');
  });

  test('property: any change applied twice equals applied once, and never touches identity fields', () => {
    const statuses: SubscriptionStatus[] = ['active', 'trialing', 'past_due', 'canceled', 'unpaid', 'none'];
    const rule = fc.oneof(
      fc.record({ kind: fc.constant('checkout' as const), tier: fc.option(fc.constantFrom(...TIERS), { nil: undefined }) }).map((r) => (r.tier === undefined ? { kind: r.kind } : r)),
      fc.record({ kind: fc.constant('subscription' as const), status: fc.constantFrom(...statuses), tier: fc.constantFrom(...TIERS), tierSource: fc.constant('price' as const) }),
      fc.constant({ kind: 'invoice_paid' as const }),
      fc.constant({ kind: 'invoice_failed' as const }),
    );
    const tenant = fc.record({
      tier: fc.constantFrom(...TIERS),
      subscription_status: fc.constantFrom(...statuses),
      stripe_event_at: fc.option(fc.integer({ min: 0, max: 3000 }), { nil: undefined }),
      stripe_subscription_id: fc.option(fc.constantFrom('sub_1', 'sub_2'), { nil: undefined }),
      stripe_customer_id: fc.option(fc.constantFrom('cus_A', 'cus_B'), { nil: undefined }),
    }).map((f): Tenant => {
      const t: Record<string, unknown> = { ...makeTenant('acme'), ...f };
      for (const k of Object.keys(t)) if (t[k] === undefined) delete t[k];
      return t as unknown as Tenant;
    });
    const ch = fc.record({
      rule,
      created: fc.integer({ min: 0, max: 3000 }),
      subscriptionId: fc.constantFrom('sub_1', 'sub_2'),
      customerId: fc.constantFrom('cus_A', 'cus_B'),
      linkCustomer: fc.boolean(),
    }).map((f) => change(f.rule, f));
    fc.assert(fc.property(tenant, ch, (t, c) => {
      const once = applyChange(t, c, now);
      const twice = applyChange(once.tenant, c, now);
      assert.equal(twice.changed, false);
      assert.deepEqual(twice.tenant, once.tenant);
      assert.equal(once.tenant.id, t.id);
      assert.equal(once.tenant.name, t.name);
      assert.equal(once.tenant.created_at, t.created_at);
    }), { numRuns: 500 });
  });
});
