import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import type { BillingBackend } from '../../../src/domain/billing/ports.js';
import { parsePriceTiers } from '../../../src/domain/billing/price-tiers.js';
import { StripeWebhookProcessor, type ProcessorOptions, type WebhookResult } from '../../../src/domain/billing/processor.js';
import { readStripeEvent, type StripeEvent } from '../../../src/domain/billing/stripe-event.js';
import type { Tenant } from '../../../src/domain/tenancy/types.js';
import { checkoutCompleted, makeTenant, nowS, PRICE_TIERS, stripeEvent, subscriptionEvent } from '../../adapters/stripe/fixtures.js';
import { MemoryBillingBackend } from './memory-backend.js';

const prices = parsePriceTiers(PRICE_TIERS);

function read(json: unknown): StripeEvent {
  const r = readStripeEvent(json);
  if (!r.ok) throw new Error(r.error);
  return r.event;
}

function processor(backend: BillingBackend | undefined, opts: Partial<ProcessorOptions> = {}, tenants: Tenant[] = []): StripeWebhookProcessor {
  return new StripeWebhookProcessor(backend, { listTenants: () => tenants }, { instance: 'test', prices, busyWaitMs: 200, ...opts });
}

function kinds(results: WebhookResult[]): string[] {
  return results.map((r) => (r.kind === 'recorded' ? `recorded:${r.outcome}` : r.kind === 'retry' ? `retry:${r.reason}` : r.kind)).sort();
}

describe('the Stripe webhook processor (in-memory backend)', () => {
  test('applies an event once; a redelivery is a duplicate', async () => {
    const backend = new MemoryBillingBackend();
    backend.putTenant(makeTenant('acme'));
    const p = processor(backend);
    const event = read(checkoutCompleted({ tenant: 'acme', customer: 'cus_A', tier: 'pro' }));
    assert.deepEqual(kinds([await p.process(event)]), ['recorded:applied']);
    assert.deepEqual(kinds([await p.process(event)]), ['duplicate']);
    assert.equal(backend.tenant('acme')?.tier, 'pro');
    assert.equal(backend.customers.get('cus_A'), 'acme');
    assert.equal(backend.writes.length, 1);
    assert.equal(backend.audits.length, 1);
  });

  test('twenty processors racing on one event: one effect, the rest duplicates', async () => {
    const backend = new MemoryBillingBackend();
    backend.putTenant(makeTenant('acme', { stripe_customer_id: 'cus_A' }));
    backend.customers.set('cus_A', 'acme');
    const event = read(subscriptionEvent('customer.subscription.updated', { customer: 'cus_A', status: 'active', price: 'price_pro_monthly' }));
    const results = await Promise.all(Array.from({ length: 20 }, () => processor(backend).process(event)));
    const k = kinds(results);
    assert.equal(k.filter((x) => x === 'recorded:applied').length, 1, k.join(','));
    assert.ok(k.every((x) => x === 'recorded:applied' || x === 'duplicate' || x === 'retry:busy'), k.join(','));
    assert.equal(backend.writes.length, 1);
    assert.equal(backend.audits.length, 1);
  });

  test('a failure while applying gives the claim back and asks for a retry, which then applies it', async () => {
    const backend = new MemoryBillingBackend();
    backend.putTenant(makeTenant('acme'));
    const original = backend.updateTenant.bind(backend);
    let fail = true;
    backend.updateTenant = (id, fn) => {
      if (fail) {
        fail = false;
        return Promise.reject(new Error('KV write timed out'));
      }
      return original(id, fn);
    };
    const p = processor(backend);
    const event = read(checkoutCompleted({ tenant: 'acme', customer: 'cus_A', tier: 'enterprise' }));
    const first = await p.process(event);
    assert.equal(first.kind, 'retry');
    assert.equal(first.kind === 'retry' && first.reason, 'failed');
    assert.equal(backend.ledger.has(event.id), false, 'claim released');
    assert.equal(backend.tenant('acme')?.tier, 'free');
    assert.deepEqual(kinds([await p.process(event)]), ['recorded:applied']);
    assert.equal(backend.tenant('acme')?.tier, 'enterprise');
  });

  test('an event claimed by another instance is busy while its lease runs, then taken over', async () => {
    const backend = new MemoryBillingBackend();
    backend.putTenant(makeTenant('acme'));
    const event = read(checkoutCompleted({ tenant: 'acme', customer: 'cus_A' }));
    backend.ledger.set(event.id, { rev: 99, value: { state: 'processing', owner: 'crashed', at: Date.now() } });
    const busy = await processor(backend, { busyWaitMs: 100, leaseMs: 60_000 }).process(event);
    assert.equal(busy.kind === 'retry' && busy.reason, 'busy');
    backend.ledger.set(event.id, { rev: 99, value: { state: 'processing', owner: 'crashed', at: Date.now() - 61_000 } });
    assert.deepEqual(kinds([await processor(backend).process(event)]), ['recorded:applied']);
  });

  test('an unlinked customer is retried while the event is young, then recorded as unmatched', async () => {
    const backend = new MemoryBillingBackend();
    const young = read(subscriptionEvent('customer.subscription.created', { customer: 'cus_X', status: 'active', price: 'price_pro_monthly' }));
    const r = await processor(backend).process(young);
    assert.equal(r.kind === 'retry' && r.reason, 'deferred');
    assert.equal(backend.ledger.size, 0);
    const old = read(subscriptionEvent('customer.subscription.created', { customer: 'cus_X', status: 'active' }, { created: nowS() - 7200 }));
    assert.deepEqual(kinds([await processor(backend).process(old)]), ['recorded:unmatched']);
    assert.equal(backend.audits.at(-1)?.outcome, 'unmatched');
    assert.deepEqual(kinds([await processor(backend).process(old)]), ['duplicate']);
  });

  test('the tenant is found by the customer index, by a tenant holding the customer id, or by metadata.tenant_id', async () => {
    const backend = new MemoryBillingBackend();
    const held = makeTenant('held', { stripe_customer_id: 'cus_H' });
    backend.putTenant(held);
    backend.putTenant(makeTenant('meta'));
    const p = processor(backend, {}, [held]);
    await p.process(read(subscriptionEvent('customer.subscription.updated', { customer: 'cus_H', status: 'active', price: 'price_pro_monthly' })));
    assert.equal(backend.tenant('held')?.tier, 'pro');
    assert.equal(backend.customers.get('cus_H'), 'held', 'index filled in');
    await p.process(read(subscriptionEvent('customer.subscription.updated', { customer: 'cus_M', status: 'trialing', metadata: { tenant_id: 'meta', tier: 'enterprise' } })));
    assert.equal(backend.tenant('meta')?.tier, 'enterprise');
    assert.equal(backend.tenant('meta')?.stripe_customer_id, 'cus_M');
  });

  test('without a backend, handled events ask for a retry and unhandled ones are ignored', async () => {
    const p = processor(undefined);
    const r = await p.process(read(checkoutCompleted({ tenant: 'acme', customer: 'cus_A' })));
    assert.equal(r.kind === 'retry' && r.reason, 'unavailable');
    assert.equal((await p.process(read(stripeEvent('customer.created', { id: 'cus_A' })))).kind, 'ignored');
    const down = new MemoryBillingBackend();
    down.up = false;
    const r2 = await processor(down).process(read(checkoutCompleted({ tenant: 'acme', customer: 'cus_A' })));
    assert.equal(r2.kind === 'retry' && r2.reason, 'unavailable');
  });

  test('two different events for one tenant on two processors both take effect (compare-and-set)', async () => {
    const backend = new MemoryBillingBackend();
    backend.putTenant(makeTenant('acme'));
    backend.customers.set('cus_A', 'acme');
    const t = nowS();
    await Promise.all([
      processor(backend).process(read(checkoutCompleted({ tenant: 'acme', customer: 'cus_A' }, { created: t }))),
      processor(backend).process(read(subscriptionEvent('customer.subscription.created', { customer: 'cus_A', status: 'active', price: 'price_pro_monthly' }, { created: t }))),
    ]);
    const tenant = backend.tenant('acme');
    assert.equal(tenant?.stripe_customer_id, 'cus_A');
    assert.equal(tenant?.tier, 'pro');
    assert.equal(tenant?.subscription_status, 'active');
  });
});
