import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connectNats, type NatsConnection } from '../../../src/adapters/nats/connection.js';
import { EVENTS_STREAM } from '../../../src/adapters/nats/streams.js';
import { NatsBillingBackend, STRIPE_EVENTS_BUCKET } from '../../../src/adapters/stripe/nats-billing.js';
import type { BillingAudit } from '../../../src/domain/billing/ports.js';
import type { Tenant } from '../../../src/domain/tenancy/types.js';
import { startNats } from '../../harness/servers.js';
import { auditRecords, eventId, makeTenant } from './fixtures.js';

type Server = Awaited<ReturnType<typeof startNats>>;

function audit(id: string): BillingAudit {
  return { event_id: id, type: 'invoice.paid', created: 1, livemode: false, outcome: 'applied', changed: true, instance: 't', recorded_at: new Date().toISOString() };
}

describe('NatsBillingBackend on a real nats-server', () => {
  let server: Server;
  let conn: NatsConnection;
  let a: NatsBillingBackend;
  let b: NatsBillingBackend;

  before(async () => {
    server = await startNats();
    conn = await connectNats([server.url], { name: 'billing-test' });
    a = new NatsBillingBackend(conn);
    b = new NatsBillingBackend(conn);
    await a.ready();
    await b.ready();
  });

  after(async () => {
    await conn?.close();
    await server?.cleanup();
  });

  test('opening creates the ledger bucket with a 30-day TTL, and EVENTS when nothing else has', async () => {
    const jsm = await jetstreamManager(conn.nc);
    const ledger = await jsm.streams.info(`KV_${STRIPE_EVENTS_BUCKET}`);
    assert.equal(ledger.config.max_age, 30 * 86_400 * 1e9);
    assert.equal(ledger.config.max_msgs_per_subject, 1);
    assert.ok((await jsm.streams.info(EVENTS_STREAM)).config.subjects.includes('kgent.>'));
    assert.deepEqual(a.status(), { status: 'ok', ledger: STRIPE_EVENTS_BUCKET, opened: true });
    assert.equal(new NatsBillingBackend(conn).status().opened, false);
  });

  test('of thirty concurrent claims on one event id from two backends, exactly one wins', async () => {
    const id = eventId();
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).claim(id, `owner-${i}`, 'invoice.paid', 60_000)));
    assert.equal(results.filter((r) => r.kind === 'claimed').length, 1);
    assert.equal(results.filter((r) => r.kind === 'busy').length, 29);
  });

  test('a finished event reads as done; a released one can be claimed again', async () => {
    const id = eventId();
    const first = await a.claim(id, 'one', 'invoice.paid', 60_000);
    assert.equal(first.kind, 'claimed');
    if (first.kind !== 'claimed') return;
    await a.release(first.claim);
    const second = await b.claim(id, 'two', 'invoice.paid', 60_000);
    assert.equal(second.kind, 'claimed');
    if (second.kind !== 'claimed') return;
    await b.finish(second.claim, { state: 'done', outcome: 'applied', type: 'invoice.paid', tenant: 'acme', at: new Date().toISOString(), owner: 'two' });
    const third = await a.claim(id, 'three', 'invoice.paid', 60_000);
    assert.deepEqual(third.kind === 'done' && [third.record.outcome, third.record.tenant], ['applied', 'acme']);
  });

  test('a claim older than the lease is taken over, and the stalled owner finishing afterwards does not undo it', async () => {
    const id = eventId();
    const stalled = await a.claim(id, 'stalled', 'invoice.paid', 60_000);
    assert.equal(stalled.kind, 'claimed');
    if (stalled.kind !== 'claimed') return;
    const taken = await b.claim(id, 'rescuer', 'invoice.paid', 0);
    assert.equal(taken.kind === 'claimed' && taken.claim.takenOver, true);
    if (taken.kind !== 'claimed') return;
    await b.finish(taken.claim, { state: 'done', outcome: 'stale', type: 'invoice.paid', at: new Date().toISOString(), owner: 'rescuer' });
    await a.finish(stalled.claim, { state: 'done', outcome: 'applied', type: 'invoice.paid', at: new Date().toISOString(), owner: 'stalled' });
    await a.release(stalled.claim);
    const now = await a.claim(id, 'late', 'invoice.paid', 60_000);
    assert.deepEqual(now.kind === 'done' && now.record.owner, 'rescuer');
  });

  test('tenant updates are compare-and-set: ten concurrent changes all survive', async () => {
    const kv = await new Kvm(conn.nc).open('kgents_tenants');
    await kv.put('cas', JSON.stringify(makeTenant('cas')));
    await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).updateTenant('cas', (t: Tenant) => ({ ...t, name: `${t.name}+${i}` }))));
    const final = (await kv.get('cas'))?.json<Tenant>();
    const parts = final?.name.split('+').slice(1).map(Number).sort((x, y) => x - y);
    assert.deepEqual(parts, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(await a.updateTenant('nobody', (t) => t), undefined);
    const noop = await a.updateTenant('cas', () => undefined);
    assert.equal(noop?.written, false);
  });

  test('the customer index links a customer to a tenant', async () => {
    assert.equal(await a.tenantOfCustomer('cus_nobody'), undefined);
    await a.linkCustomer('cus_idx', 'acme', 'evt_1');
    assert.equal(await b.tenantOfCustomer('cus_idx'), 'acme');
    await b.linkCustomer('cus_idx', 'other', 'evt_2');
    assert.equal(await a.tenantOfCustomer('cus_idx'), 'other');
  });

  test('an audit record published twice for one event is stored once', async () => {
    const id = eventId();
    await a.audit(audit(id));
    await b.audit(audit(id));
    const count = (await auditRecords(conn.nc)).filter((r) => r.event_id === id).length;
    assert.equal(count, 1);
  });
});
