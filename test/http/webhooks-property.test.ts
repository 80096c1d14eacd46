import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import fc from 'fast-check';
import { pino } from 'pino';
import { parseTenant } from '../../src/adapters/nats/records.js';
import { NatsBillingBackend } from '../../src/adapters/stripe/nats-billing.js';
import { loadConfig } from '../../src/config/load.js';
import { HANDLED_EVENT_TYPES } from '../../src/domain/billing/intent.js';
import { buildApp } from '../../src/http/app.js';
import { Lifecycle } from '../../src/http/lifecycle.js';
import { STRIPE_WEBHOOK_PATH } from '../../src/http/routes/webhooks.js';
import { ApiMetrics } from '../../src/observability/metrics.js';
import { startServices, type Services } from '../../src/runtime/services.js';
import { eventId, makeTenant, nowS, PRICE_TIERS, SECRET, signed } from '../adapters/stripe/fixtures.js';
import { LogCapture } from '../harness/app.js';
import { startNats, tempDir } from '../harness/servers.js';

interface ErrorBody {
  readonly error?: { readonly code?: string; readonly details?: { readonly reason?: string } };
}

/** 5xx is allowed only as the documented 503 ERR_WEBHOOK_UNAVAILABLE ("retry later"). */
function assertNoUndocumented5xx(res: LightMyRequestResponse, allowed: readonly number[]): void {
  assert.ok(allowed.includes(res.statusCode), `status ${res.statusCode}: ${res.body.slice(0, 300)}`);
  if (res.statusCode >= 500) {
    assert.equal(res.statusCode, 503, res.body);
    assert.equal(res.json<ErrorBody>().error?.code, 'ERR_WEBHOOK_UNAVAILABLE', res.body);
  }
}

describe('POST /webhooks/stripe under random input (real nats-server)', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let services: Services;
  let app: FastifyInstance;
  const dir = tempDir();
  const logs = new LogCapture();

  before(async () => {
    nats = await startNats();
    const config = loadConfig({}, {
      EMBEDDED_SERVICES: 'off', INSTANCE_ID: 'prop', NATS_URLS: nats.url, DATA_DIR: dir.dir, LOG_LEVEL: 'info', LOG_REQUESTS: 'all',
      STRIPE_WEBHOOK_SECRET: SECRET, STRIPE_PRICE_TIERS: PRICE_TIERS,
    });
    const metrics = new ApiMetrics('test', 'prop');
    services = await startServices(config, pino({ level: 'info' }, logs), metrics);
    assert.ok(services.nats);
    app = buildApp(config, {
      keys: services.keys, limits: services.limits.limits, idempotency: services.limits.idempotency, meter: services.meter,
      health: services.health, lifecycle: new Lifecycle(), metrics, logDestination: logs,
      billing: new NatsBillingBackend(services.nats), webhookProcessor: { busyWaitMs: 200 },
    });
    await app.ready();
    await services.keys.putTenant(makeTenant('prop', { stripe_customer_id: 'cus_PROP' }));
  });

  after(async () => {
    await app?.close();
    await services?.close();
    await nats?.cleanup();
    dir.remove();
  });

  test('random bodies, content types and signature headers: 400, 413 or 415, never 5xx, never processed', async () => {
    const header = fc.oneof(
      fc.constant(undefined),
      fc.string({ maxLength: 200 }),
      fc.tuple(fc.integer({ min: -1, max: 2 ** 40 }), fc.stringMatching(/^[0-9a-f]{0,70}$/)).map(([t, s]) => `t=${t},v1=${s}`),
      fc.constant(signed({ id: 'evt_other', type: 'invoice.paid', created: 1, data: { object: {} } }).headers['stripe-signature']),
    );
    const bodyArb = fc.oneof(fc.string({ maxLength: 500 }), fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)));
    const contentType = fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded');
    await fc.assert(fc.asyncProperty(bodyArb, header, contentType, async (payload, sig, type) => {
      const headers: Record<string, string> = { 'content-type': type };
      if (sig !== undefined) headers['stripe-signature'] = sig.replace(/[^\x20-\x7e]/g, '');
      const res = await app.inject({ method: 'POST', url: STRIPE_WEBHOOK_PATH, headers, payload });
      assertNoUndocumented5xx(res, [400, 413, 415]);
      if (res.statusCode === 400) assert.equal(res.json<ErrorBody>().error?.code, 'ERR_WEBHOOK_SIGNATURE', res.body);
    }), { numRuns: 150 });
  });

  test('correctly signed arbitrary JSON: 200, 400 (not a Stripe event) or the documented 503, never another 5xx', async () => {
    await fc.assert(fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), async (value) => {
      const res = await app.inject({ method: 'POST', url: STRIPE_WEBHOOK_PATH, ...signed(value) });
      assertNoUndocumented5xx(res, [200, 400, 503]);
    }), { numRuns: 100 });
  });

  test('correctly signed, Stripe-shaped events with random fields: 200 or the documented 503, and the tenant record stays valid', async () => {
    const maybe = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arb, { nil: undefined });
    const anyValue = fc.oneof(fc.string({ maxLength: 30 }), fc.integer(), fc.constant(null), fc.boolean(), fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }));
    const object = fc.record({
      id: maybe(fc.oneof(fc.constantFrom('sub_1', 'sub_2', 'in_1'), anyValue)),
      customer: maybe(fc.oneof(fc.constantFrom('cus_PROP', 'cus_OTHER'), anyValue)),
      client_reference_id: maybe(fc.oneof(fc.constantFrom('prop', 'nobody', 'BAD ID'), anyValue)),
      status: maybe(fc.oneof(fc.constantFrom('active', 'trialing', 'past_due', 'canceled', 'unpaid', 'incomplete', 'incomplete_expired', 'paused'), anyValue)),
      payment_status: maybe(fc.constantFrom('paid', 'unpaid', 'no_payment_required')),
      subscription: maybe(fc.oneof(fc.constantFrom('sub_1', 'sub_2'), anyValue)),
      items: maybe(fc.oneof(anyValue, fc.record({ data: fc.array(fc.oneof(anyValue, fc.record({ price: fc.oneof(anyValue, fc.record({ id: fc.constantFrom('price_pro_monthly', 'price_ent_yearly', 'price_x') })) })), { maxLength: 3 }) }))),
      metadata: maybe(fc.oneof(anyValue, fc.record({ tier: maybe(fc.oneof(fc.constantFrom('free', 'pro', 'enterprise'), anyValue)), tenant_id: maybe(fc.constantFrom('prop', 'nobody')) }))),
      parent: maybe(fc.oneof(anyValue, fc.record({ subscription_details: fc.oneof(anyValue, fc.record({ subscription: fc.oneof(fc.constantFrom('sub_1'), anyValue) })) }))),
    });
    const type = fc.oneof(fc.constantFrom(...HANDLED_EVENT_TYPES), fc.constantFrom('customer.created', 'charge.refunded', 'invoice.created'));
    const created = fc.integer({ min: nowS() - 3 * 86_400, max: nowS() + 60 });
    await fc.assert(fc.asyncProperty(type, object, created, async (t, obj, c) => {
      const event = { id: eventId(), object: 'event', type: t, created: c, livemode: false, data: { object: JSON.parse(JSON.stringify(obj)) as unknown } };
      const res = await app.inject({ method: 'POST', url: STRIPE_WEBHOOK_PATH, ...signed(event) });
      assertNoUndocumented5xx(res, [200, 503]);
      if (res.statusCode === 503) assert.ok(['deferred', 'busy'].includes(res.json<ErrorBody>().error?.details?.reason ?? ''), res.body);
    }), { numRuns: 200 });
    const stored = services.keys.getTenant('prop');
    assert.ok(stored);
    assert.ok(parseTenant(stored).ok);
    assert.ok(!logs.text.includes(SECRET));
  });
});
