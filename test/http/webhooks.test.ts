import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kvm, type KV } from '@nats-io/kv';
import type { FastifyInstance, LightMyRequestResponse as InjectResponse } from 'fastify';
import { pino } from 'pino';
import { NatsBillingBackend, STRIPE_EVENTS_BUCKET } from '../../src/adapters/stripe/nats-billing.js';
import { loadConfig } from '../../src/config/load.js';
import type { ConfigVarName } from '../../src/config/schema.js';
import type { BillingAudit, BillingBackend, ClaimResult, LedgerClaim, LedgerDone, TenantUpdate } from '../../src/domain/billing/ports.js';
import type { ProcessorOptions } from '../../src/domain/billing/processor.js';
import type { Tenant } from '../../src/domain/tenancy/types.js';
import { buildApp } from '../../src/http/app.js';
import { Lifecycle } from '../../src/http/lifecycle.js';
import { STRIPE_WEBHOOK_PATH } from '../../src/http/routes/webhooks.js';
import { ApiMetrics } from '../../src/observability/metrics.js';
import { startServices, type Services } from '../../src/runtime/services.js';
import {
  auditRecords, checkoutCompleted, invoiceEvent, makeTenant, nowS, PRICE_TIERS, SECRET, signed, stripeEvent, subscriptionEvent,
  type SignedRequest, type StripeEventJson,
} from '../adapters/stripe/fixtures.js';
import { LogCapture, testApp } from '../harness/app.js';
import { startNats, tempDir } from '../harness/servers.js';

/** Fails chosen backend calls a given number of times, like a KV write or publish timing out. */
class FlakyBackend implements BillingBackend {
  readonly failures = { updateTenant: 0, audit: 0, finish: 0 };
  constructor(private readonly inner: BillingBackend) {}
  ready(): Promise<void> {
    return this.inner.ready();
  }
  available(): boolean {
    return this.inner.available();
  }
  claim(eventId: string, owner: string, type: string, leaseMs: number): Promise<ClaimResult> {
    return this.inner.claim(eventId, owner, type, leaseMs);
  }
  finish(claim: LedgerClaim, record: LedgerDone): Promise<void> {
    return this.failures.finish-- > 0 ? Promise.reject(new Error('injected: ledger write timed out')) : this.inner.finish(claim, record);
  }
  release(claim: LedgerClaim): Promise<void> {
    return this.inner.release(claim);
  }
  tenantOfCustomer(customerId: string): Promise<string | undefined> {
    return this.inner.tenantOfCustomer(customerId);
  }
  linkCustomer(customerId: string, tenantId: string, eventId: string): Promise<void> {
    return this.inner.linkCustomer(customerId, tenantId, eventId);
  }
  updateTenant(tenantId: string, change: (current: Tenant) => Tenant | undefined): Promise<TenantUpdate | undefined> {
    return this.failures.updateTenant-- > 0 ? Promise.reject(new Error('injected: tenant write timed out')) : this.inner.updateTenant(tenantId, change);
  }
  audit(record: BillingAudit): Promise<void> {
    return this.failures.audit-- > 0 ? Promise.reject(new Error('injected: publish timed out')) : this.inner.audit(record);
  }
}

interface Instance {
  readonly name: string;
  readonly app: FastifyInstance;
  readonly services: Services;
  readonly logs: LogCapture;
  readonly backend: FlakyBackend;
  close(): Promise<void>;
}

const dirs: { remove: () => void }[] = [];

async function instance(name: string, natsUrl: string, processor: Omit<ProcessorOptions, 'instance' | 'prices'> = {}): Promise<Instance> {
  const dir = tempDir();
  dirs.push(dir);
  const env: Partial<Record<ConfigVarName, string>> = {
    EMBEDDED_SERVICES: 'off', INSTANCE_ID: name, LOG_LEVEL: 'info', LOG_REQUESTS: 'all', NATS_URLS: natsUrl, DATA_DIR: dir.dir,
    STRIPE_WEBHOOK_SECRET: SECRET, STRIPE_PRICE_TIERS: PRICE_TIERS,
  };
  const config = loadConfig({}, env);
  const logs = new LogCapture();
  const metrics = new ApiMetrics('test', name);
  const services = await startServices(config, pino({ level: 'info' }, logs), metrics);
  assert.ok(services.nats);
  const backend = new FlakyBackend(new NatsBillingBackend(services.nats, { replicas: config.NATS_REPLICAS }));
  const app = buildApp(config, {
    keys: services.keys, limits: services.limits.limits, idempotency: services.limits.idempotency, meter: services.meter,
    health: services.health, lifecycle: new Lifecycle(), metrics, logDestination: logs, billing: backend, webhookProcessor: processor,
  });
  await app.ready();
  return { name, app, services, logs, backend, close: async () => {
    await app.close();
    await services.close();
  } };
}

function deliver(inst: Instance, req: SignedRequest): Promise<InjectResponse> {
  return inst.app.inject({ method: 'POST', url: STRIPE_WEBHOOK_PATH, headers: req.headers, payload: req.payload });
}

/** Delivers like Stripe: a non-2xx answer is retried (freshly signed) until accepted. */
async function deliverLikeStripe(inst: Instance, event: StripeEventJson, maxAttempts = 30): Promise<{ statuses: number[]; last: InjectResponse }> {
  const statuses: number[] = [];
  for (let attempt = 1; ; attempt++) {
    const res = await deliver(inst, signed(event));
    statuses.push(res.statusCode);
    if (res.statusCode !== 503 || attempt >= maxAttempts) return { statuses, last: res };
    await sleep(100);
  }
}

interface Body {
  readonly received?: boolean;
  readonly outcome?: string;
  readonly duplicate?: boolean;
  readonly error?: { code: string; message: string; details?: { reason?: string } };
}

const body = (res: InjectResponse): Body => res.json<Body>();

describe('POST /webhooks/stripe on two instances sharing one nats-server', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let a: Instance;
  let b: Instance;
  let tenantsKv: KV;
  let ledgerKv: KV;
  const extra: Instance[] = [];

  before(async () => {
    nats = await startNats();
    a = await instance('api-a', nats.url);
    b = await instance('api-b', nats.url);
    const kvm = new Kvm(a.services.nats!.nc);
    tenantsKv = await kvm.open('kgents_tenants');
    await a.backend.ready();
    ledgerKv = await kvm.open(STRIPE_EVENTS_BUCKET);
  });

  after(async () => {
    await Promise.all([a?.close(), b?.close(), ...extra.map((i) => i.close())]);
    await nats?.cleanup();
    for (const d of dirs) d.remove();
  });

  async function tenant(id: string): Promise<Tenant | undefined> {
    const entry = await tenantsKv.get(id);
    return entry?.operation === 'PUT' ? entry.json<Tenant>() : undefined;
  }

  async function revisionsSince(id: string, revision: number): Promise<number> {
    let n = 0;
    for await (const e of await tenantsKv.history({ key: id })) if (e.revision > revision) n++;
    return n;
  }

  /** A tenant linked to a customer through a real checkout webhook. */
  async function linkedTenant(id: string, customer: string, fields: Partial<Tenant> = {}): Promise<void> {
    await a.services.keys.putTenant(makeTenant(id, fields));
    const res = await deliver(a, signed(checkoutCompleted({ tenant: id, customer })));
    assert.equal(res.statusCode, 200, res.body);
  }

  async function metric(inst: Instance, type: string, outcome: string): Promise<number> {
    const text = (await inst.app.inject('/metrics')).body;
    const line = text.split('\n').find((l) => l.startsWith('kgents_stripe_webhooks_total{') && l.includes(`type="${type}"`) && l.includes(`outcome="${outcome}"`));
    return line ? Number(line.split(' ').at(-1)) : 0;
  }

  test('a correctly signed event is accepted with 200 once its effect is recorded', async () => {
    await a.services.keys.putTenant(makeTenant('accepted'));
    const event = checkoutCompleted({ tenant: 'accepted', customer: 'cus_ACCEPTED' });
    const res = await deliver(a, signed(event));
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(body(res), { received: true, event_id: event.id, outcome: 'applied' });
    const done = (await ledgerKv.get(event.id))?.json<{ state: string; outcome: string }>();
    assert.equal(done?.state, 'done');
    assert.equal(done?.outcome, 'applied');
  });

  test('a bad, missing, malformed, repeated or expired (> 5 min) signature is refused with 400 ERR_WEBHOOK_SIGNATURE and changes nothing', async () => {
    await a.services.keys.putTenant(makeTenant('unsigned'));
    const event = checkoutCompleted({ tenant: 'unsigned', customer: 'cus_UNSIGNED', tier: 'enterprise' });
    const good = signed(event);
    const cases: { name: string; headers: Record<string, string | string[]>; payload: string }[] = [
      { name: 'other secret', headers: signed(event, { secret: 'whsec_wrong' }).headers, payload: good.payload },
      { name: 'tampered body', headers: good.headers, payload: good.payload.replace('enterprise', 'pro') },
      { name: 'missing header', headers: { 'content-type': 'application/json' }, payload: good.payload },
      { name: 'malformed header', headers: { ...good.headers, 'stripe-signature': 'v1=abc' }, payload: good.payload },
      { name: 'expired', headers: signed(event, { timestamp: nowS() - 360 }).headers, payload: good.payload },
    ];
    for (const c of cases) {
      const res = await a.app.inject({ method: 'POST', url: STRIPE_WEBHOOK_PATH, headers: c.headers, payload: c.payload });
      assert.equal(res.statusCode, 400, `${c.name}: ${res.body}`);
      assert.equal(body(res).error?.code, 'ERR_WEBHOOK_SIGNATURE', c.name);
      assert.ok(!res.body.includes(SECRET) && !res.body.includes(good.headers['stripe-signature']), c.name);
    }
    assert.equal((await tenant('unsigned'))?.tier, 'free');
    assert.equal(await ledgerKv.get(event.id), null);
    assert.ok(await metric(a, 'unknown', 'rejected') >= cases.length);
  });

  test('checkout.session.completed links the Stripe customer to the tenant and sets the tier from its metadata', async () => {
    await a.services.keys.putTenant(makeTenant('shop'));
    const res = await deliver(b, signed(checkoutCompleted({ tenant: 'shop', customer: 'cus_SHOP', tier: 'pro', subscription: 'sub_SHOP' })));
    assert.equal(res.statusCode, 200, res.body);
    const t = await tenant('shop');
    assert.equal(t?.stripe_customer_id, 'cus_SHOP');
    assert.equal(t?.tier, 'pro');
    assert.equal(t?.stripe_subscription_id, 'sub_SHOP');
    assert.equal(await a.backend.tenantOfCustomer('cus_SHOP'), 'shop');
  });

  test('customer.subscription.updated moves the tenant to the tier its price maps to: pro, then enterprise', async () => {
    await linkedTenant('upgrade', 'cus_UP');
    const t0 = nowS();
    await deliver(a, signed(subscriptionEvent('customer.subscription.created', { customer: 'cus_UP', status: 'active', price: 'price_pro_monthly' }, { created: t0 })));
    assert.deepEqual([(await tenant('upgrade'))?.tier, (await tenant('upgrade'))?.subscription_status], ['pro', 'active']);
    await deliver(b, signed(subscriptionEvent('customer.subscription.updated', { customer: 'cus_UP', status: 'active', price: 'price_ent_yearly' }, { created: t0 + 1 })));
    assert.equal((await tenant('upgrade'))?.tier, 'enterprise');
  });

  test('a tenant on a new plan is served at that tier by every instance (auth reads the tenant tier)', async () => {
    const deadline = Date.now() + 2000;
    while (b.services.keys.getTenant('upgrade')?.tier !== 'enterprise') {
      assert.ok(Date.now() < deadline, 'the key store view on b did not follow');
      await sleep(20);
    }
  });

  test('a canceled or unpaid subscription drops the tenant to free; deleted cancels', async () => {
    for (const [status, expected] of [['canceled', 'canceled'], ['unpaid', 'unpaid']] as const) {
      const id = `drop-${status}`;
      await linkedTenant(id, `cus_DROP${status}`);
      const t0 = nowS();
      await deliver(a, signed(subscriptionEvent('customer.subscription.created', { customer: `cus_DROP${status}`, status: 'active', price: 'price_ent_yearly' }, { created: t0 })));
      assert.equal((await tenant(id))?.tier, 'enterprise');
      const res = await deliver(b, signed(subscriptionEvent('customer.subscription.updated', { customer: `cus_DROP${status}`, status, price: 'price_ent_yearly' }, { created: t0 + 1 })));
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual([(await tenant(id))?.tier, (await tenant(id))?.subscription_status], ['free', expected], status);
    }
    await linkedTenant('deleted', 'cus_DEL');
    const t0 = nowS();
    await deliver(a, signed(subscriptionEvent('customer.subscription.created', { customer: 'cus_DEL', status: 'active', price: 'price_pro_monthly' }, { created: t0 })));
    await deliver(a, signed(subscriptionEvent('customer.subscription.deleted', { customer: 'cus_DEL', status: 'canceled', price: 'price_pro_monthly' }, { created: t0 + 1 })));
    assert.deepEqual([(await tenant('deleted'))?.tier, (await tenant('deleted'))?.subscription_status], ['free', 'canceled']);
  });

  test('past_due keeps the tier (service continues)', async () => {
    await linkedTenant('late', 'cus_LATE');
    const t0 = nowS();
    await deliver(a, signed(subscriptionEvent('customer.subscription.created', { customer: 'cus_LATE', status: 'active', price: 'price_pro_monthly' }, { created: t0 })));
    await deliver(b, signed(subscriptionEvent('customer.subscription.updated', { customer: 'cus_LATE', status: 'past_due', price: 'price_pro_monthly' }, { created: t0 + 1 })));
    assert.deepEqual([(await tenant('late'))?.tier, (await tenant('late'))?.subscription_status], ['pro', 'past_due']);
  });

  test('invoice.payment_failed makes the tenant past_due and invoice.paid active again, the tier kept', async () => {
    await linkedTenant('payer', 'cus_PAYER');
    const t0 = nowS();
    await deliver(a, signed(subscriptionEvent('customer.subscription.created', { customer: 'cus_PAYER', status: 'active', price: 'price_ent_yearly', id: 'sub_PAYER' }, { created: t0 })));
    const failed = await deliver(b, signed(invoiceEvent('invoice.payment_failed', { customer: 'cus_PAYER', subscription: 'sub_PAYER' }, { created: t0 + 1 })));
    assert.equal(body(failed).outcome, 'applied');
    assert.deepEqual([(await tenant('payer'))?.tier, (await tenant('payer'))?.subscription_status], ['enterprise', 'past_due']);
    await deliver(a, signed(invoiceEvent('invoice.paid', { customer: 'cus_PAYER', subscription: 'sub_PAYER', legacy: true }, { created: t0 + 2 })));
    assert.deepEqual([(await tenant('payer'))?.tier, (await tenant('payer'))?.subscription_status], ['enterprise', 'active']);
  });

  test('an unhandled event type is answered 200 and counted as ignored', async () => {
    const before = await metric(a, 'other', 'ignored');
    const res = await deliver(a, signed(stripeEvent('customer.created', { id: 'cus_NEW' })));
    assert.equal(res.statusCode, 200);
    assert.equal(body(res).outcome, 'ignored');
    assert.equal(await metric(a, 'other', 'ignored'), before + 1);
  });

  test('PROOF: the same event delivered three times, concurrently, to two instances has exactly one effect', async () => {
    await linkedTenant('proof', 'cus_PROOF');
    const t0 = nowS();
    const rounds = 5;
    for (let round = 0; round < rounds; round++) {
      const price = round % 2 === 0 ? 'price_ent_yearly' : 'price_pro_monthly';
      const event = subscriptionEvent('customer.subscription.updated', { customer: 'cus_PROOF', status: 'active', price }, { created: t0 + round });
      const revision = (await tenantsKv.get('proof'))?.revision ?? 0;
      const appliedBefore = await metric(a, 'customer.subscription.updated', 'applied') + await metric(b, 'customer.subscription.updated', 'applied');

      const deliveries = await Promise.all([a, b, a].map((inst) => deliverLikeStripe(inst, event)));

      for (const d of deliveries) {
        assert.ok(d.statuses.slice(0, -1).every((s) => s === 503), `only 503 before the final answer: ${d.statuses.join(',')}`);
        assert.equal(d.last.statusCode, 200, d.last.body);
      }
      const outcomes = deliveries.map((d) => body(d.last).outcome).sort();
      assert.deepEqual(outcomes, ['applied', 'duplicate', 'duplicate'], `round ${round}`);
      assert.equal(await revisionsSince('proof', revision), 1, 'the tenant record was written exactly once');
      assert.equal((await tenant('proof'))?.tier, price === 'price_ent_yearly' ? 'enterprise' : 'pro');
      const audits = (await auditRecords(a.services.nats!.nc)).filter((r) => r.event_id === event.id);
      assert.equal(audits.length, 1, 'one audit record in EVENTS');
      const appliedAfter = await metric(a, 'customer.subscription.updated', 'applied') + await metric(b, 'customer.subscription.updated', 'applied');
      assert.equal(appliedAfter - appliedBefore, 1);
      console.log(`# proof round ${round}: statuses ${deliveries.map((d) => d.statuses.join('→')).join(' | ')}`);
    }
  });

  test('two different events for one tenant on two instances both take effect (compare-and-set, not last write wins)', async () => {
    await a.services.keys.putTenant(makeTenant('duo'));
    const t0 = nowS();
    const [checkout, created] = await Promise.all([
      deliverLikeStripe(a, checkoutCompleted({ tenant: 'duo', customer: 'cus_DUO' }, { created: t0 })),
      deliverLikeStripe(b, subscriptionEvent('customer.subscription.created', { customer: 'cus_DUO', status: 'active', price: 'price_pro_monthly', metadata: { tenant_id: 'duo' } }, { created: t0 })),
    ]);
    assert.equal(checkout.last.statusCode, 200);
    assert.equal(created.last.statusCode, 200);
    const t = await tenant('duo');
    assert.deepEqual([t?.stripe_customer_id, t?.tier, t?.subscription_status], ['cus_DUO', 'pro', 'active']);
  });

  test('a failure while applying answers 503 and Stripe\'s retry applies it exactly once', async () => {
    await linkedTenant('flaky', 'cus_FLAKY');
    for (const step of ['updateTenant', 'audit', 'finish'] as const) {
      const event = subscriptionEvent('customer.subscription.updated', { customer: 'cus_FLAKY', status: 'active', price: step === 'audit' ? 'price_pro_monthly' : 'price_ent_yearly' }, { created: nowS() });
      a.backend.failures[step] = 1;
      const first = await deliver(a, signed(event));
      assert.equal(first.statusCode, 503, `${step}: ${first.body}`);
      assert.equal(body(first).error?.code, 'ERR_WEBHOOK_UNAVAILABLE');
      assert.equal(body(first).error?.details?.reason, 'failed');
      assert.ok(first.headers['retry-after']);
      const retry = await deliver(b, signed(event));
      assert.equal(retry.statusCode, 200, `${step}: ${retry.body}`);
      assert.equal(body(retry).outcome, 'applied');
      assert.equal((await auditRecords(a.services.nats!.nc)).filter((r) => r.event_id === event.id).length, 1, step);
      assert.equal(body(await deliver(a, signed(event))).outcome, 'duplicate');
    }
    assert.ok(a.logs.text.includes('injected: tenant write timed out'));
  });

  test('after a restart (a new instance on the same NATS), a redelivered event is a duplicate', async () => {
    await linkedTenant('restart', 'cus_RESTART');
    const event = subscriptionEvent('customer.subscription.created', { customer: 'cus_RESTART', status: 'active', price: 'price_pro_monthly' });
    assert.equal(body(await deliver(a, signed(event))).outcome, 'applied');
    const revision = (await tenantsKv.get('restart'))?.revision ?? 0;
    const fresh = await instance('api-a-restarted', nats.url);
    extra.push(fresh);
    const res = await deliver(fresh, signed(event));
    assert.equal(res.statusCode, 200);
    assert.deepEqual(body(res), { received: true, event_id: event.id, outcome: 'duplicate', duplicate: true });
    assert.equal(await revisionsSince('restart', revision), 0);
  });

  test('an older event that arrives after a newer one is recorded as stale and changes nothing', async () => {
    await linkedTenant('order', 'cus_ORDER');
    const t0 = nowS();
    const newer = subscriptionEvent('customer.subscription.updated', { customer: 'cus_ORDER', status: 'canceled', price: 'price_ent_yearly' }, { created: t0 + 20 });
    const older = subscriptionEvent('customer.subscription.updated', { customer: 'cus_ORDER', status: 'active', price: 'price_ent_yearly' }, { created: t0 + 10 });
    assert.equal(body(await deliver(a, signed(newer))).outcome, 'applied');
    const res = await deliver(b, signed(older));
    assert.equal(res.statusCode, 200);
    assert.equal(body(res).outcome, 'stale');
    assert.deepEqual([(await tenant('order'))?.tier, (await tenant('order'))?.subscription_status], ['free', 'canceled']);
  });

  test('a customer no tenant is linked to: 503 while the event is young (checkout may still come), recorded as unmatched once it is old', async () => {
    const young = subscriptionEvent('customer.subscription.created', { customer: 'cus_GHOST', status: 'active', price: 'price_pro_monthly' });
    const res = await deliver(a, signed(young));
    assert.equal(res.statusCode, 503);
    assert.equal(body(res).error?.details?.reason, 'deferred');
    assert.equal(await ledgerKv.get(young.id).then((e) => e?.operation === 'PUT' ? 'claimed' : 'free'), 'free');
    const old = subscriptionEvent('customer.subscription.created', { customer: 'cus_GHOST', status: 'active' }, { created: nowS() - 7200 });
    const res2 = await deliver(b, signed(old));
    assert.equal(res2.statusCode, 200);
    assert.equal(body(res2).outcome, 'unmatched');
    assert.equal((await auditRecords(a.services.nats!.nc)).find((r) => r.event_id === old.id)?.outcome, 'unmatched');
  });

  test('the young event is applied by Stripe\'s retry once its checkout has linked the customer', async () => {
    await a.services.keys.putTenant(makeTenant('slow'));
    // The session completes a second after its subscription was created, as in Stripe.
    const t0 = nowS();
    const sub = subscriptionEvent('customer.subscription.created', { customer: 'cus_SLOW', status: 'active', price: 'price_ent_yearly' }, { created: t0 });
    assert.equal((await deliver(a, signed(sub))).statusCode, 503);
    assert.equal((await deliver(b, signed(checkoutCompleted({ tenant: 'slow', customer: 'cus_SLOW' }, { created: t0 + 1 })))).statusCode, 200);
    assert.equal(body(await deliver(a, signed(sub))).outcome, 'applied');
    assert.deepEqual([(await tenant('slow'))?.tier, (await tenant('slow'))?.subscription_status], ['enterprise', 'active']);
  });

  test('an event claimed by an instance that crashed is taken over once the claim is older than the lease', async () => {
    await linkedTenant('orphan', 'cus_ORPHAN');
    const event = subscriptionEvent('customer.subscription.created', { customer: 'cus_ORPHAN', status: 'active', price: 'price_pro_monthly' });
    await ledgerKv.create(event.id, JSON.stringify({ state: 'processing', owner: 'crashed/1', at: Date.now(), type: event.type }));
    const quick = await instance('api-quick', nats.url, { busyWaitMs: 100 });
    extra.push(quick);
    const busy = await deliver(quick, signed(event));
    assert.equal(busy.statusCode, 503);
    assert.equal(body(busy).error?.details?.reason, 'busy');
    const entry = await ledgerKv.get(event.id);
    await ledgerKv.update(event.id, JSON.stringify({ state: 'processing', owner: 'crashed/1', at: Date.now() - 61_000, type: event.type }), entry?.revision ?? 0);
    const res = await deliver(quick, signed(event));
    assert.equal(body(res).outcome, 'applied', res.body);
    assert.equal((await tenant('orphan'))?.tier, 'pro');
  });

  test('neither the endpoint secret nor a signature header ever reaches the logs', () => {
    for (const inst of [a, b, ...extra]) {
      assert.ok(inst.logs.lines.length > 0, `${inst.name} logged`);
      assert.ok(!inst.logs.text.includes(SECRET), `${inst.name} logged the secret`);
      assert.ok(!/v1=[0-9a-f]{64}/.test(inst.logs.text), `${inst.name} logged a signature`);
      assert.ok(!inst.logs.text.includes(SECRET.slice(6)), `${inst.name} logged part of the secret`);
    }
  });
});

describe('POST /webhooks/stripe without a durable ledger', () => {
  test('with the file key store (no NATS KV): 503 ERR_WEBHOOK_UNAVAILABLE for handled events, 200 for ignored ones', async () => {
    const t = await testApp({ STRIPE_WEBHOOK_SECRET: SECRET });
    try {
      const res = await t.app.inject({ method: 'POST', url: STRIPE_WEBHOOK_PATH, ...signed(checkoutCompleted({ tenant: 'acme', customer: 'cus_A' })) });
      assert.equal(res.statusCode, 503);
      assert.equal(body(res).error?.code, 'ERR_WEBHOOK_UNAVAILABLE');
      assert.match(body(res).error?.message ?? '', /NATS JetStream/);
      const ignored = await t.app.inject({ method: 'POST', url: STRIPE_WEBHOOK_PATH, ...signed(stripeEvent('charge.succeeded', { id: 'ch_1' })) });
      assert.equal(ignored.statusCode, 200);
    } finally {
      await t.close();
    }
  });

  test('with no STRIPE_WEBHOOK_SECRET: 503 "not configured"; other routes keep their JSON parsing', async () => {
    const t = await testApp({ STRIPE_WEBHOOK_SECRET: '' });
    try {
      const res = await t.app.inject({ method: 'POST', url: STRIPE_WEBHOOK_PATH, ...signed(checkoutCompleted({ tenant: 'acme', customer: 'cus_A' })) });
      assert.equal(res.statusCode, 503);
      assert.match(body(res).error?.message ?? '', /not configured/);
      const other = await t.app.inject({ method: 'POST', url: '/v1/agentese/resolve', headers: { 'content-type': 'application/json' }, payload: '{bad json' });
      assert.notEqual(other.statusCode, 500);
      assert.ok([400, 401].includes(other.statusCode), String(other.statusCode));
    } finally {
      await t.close();
    }
  });

  test('a malformed STRIPE_PRICE_TIERS stops start-up with a configuration error', async () => {
    await assert.rejects(testApp({ STRIPE_WEBHOOK_SECRET: SECRET, STRIPE_PRICE_TIERS: 'price_1=gold' }), /STRIPE_PRICE_TIERS/);
  });
});
