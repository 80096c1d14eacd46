import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connectNats, type NatsConnection } from '../../../src/adapters/nats/connection.js';
import { KEYS_BUCKET, NatsKvKeyStore, TENANTS_BUCKET } from '../../../src/adapters/nats/key-store.js';
import { createKeyStore, openKeyStore } from '../../../src/adapters/nats/key-store-factory.js';
import { loadConfig } from '../../../src/config/load.js';
import { startNats, startNatsCluster } from '../../harness/servers.js';
import { captureLogger, makeKey, makeTenant, record, retry, waitFor } from './fixtures.js';

type Server = Awaited<ReturnType<typeof startNats>>;

void describe('NatsKvKeyStore on one nats-server', () => {
  let server: Server;
  const connections: NatsConnection[] = [];
  const stores: NatsKvKeyStore[] = [];

  async function openStore(options: ConstructorParameters<typeof NatsKvKeyStore>[1] = {}): Promise<NatsKvKeyStore> {
    const connection = await connectNats([server.url], { name: 'key-store-test' });
    connections.push(connection);
    const store = new NatsKvKeyStore(connection, { logger: captureLogger(), ...options });
    stores.push(store);
    await store.start();
    return store;
  }

  before(async () => {
    server = await startNats();
  });

  after(async () => {
    for (const s of stores) await s.close();
    for (const c of connections) await c.close();
    await server.cleanup();
  });

  void test('stores tenants and keys and reads them back synchronously, in creation order', async () => {
    const store = await openStore();
    const tenant = makeTenant('acme', 'pro');
    await store.putTenant(tenant);
    const first = makeKey('acme', ['read']);
    const second = { ...makeKey('acme', ['read', 'write', 'admin']), created_at: new Date(Date.now() + 1000).toISOString() };
    await store.putKey(record(first));
    await store.putKey(record(second));

    assert.deepEqual(store.getTenant('acme'), tenant);
    assert.deepEqual(store.getKey(first.prefix), record(first));
    assert.equal(store.getKey('zzzzzzzz'), undefined);
    assert.equal(store.getTenant('nobody'), undefined);
    const prefixes = store.listKeys().map((k) => k.prefix);
    assert.ok(prefixes.indexOf(first.prefix) < prefixes.indexOf(second.prefix));
    assert.ok(store.listTenants().some((t) => t.id === 'acme'));
    assert.equal(store.status().status, 'ok');
  });

  void test('a new instance loads everything already stored before start() resolves', async () => {
    const writer = await openStore();
    await writer.putTenant(makeTenant('preloaded'));
    const keys = Array.from({ length: 25 }, () => makeKey('preloaded'));
    for (const k of keys) await writer.putKey(record(k));

    const reader = await openStore();
    for (const k of keys) assert.deepEqual(reader.getKey(k.prefix), record(k));
    assert.deepEqual(reader.getTenant('preloaded'), writer.getTenant('preloaded'));
  });

  void test('a key revoked through one instance is seen revoked by another within one second', async () => {
    const a = await openStore();
    const b = await openStore();
    const key = makeKey('acme');
    await a.putKey(record(key));
    await waitFor('key on b', () => b.getKey(key.prefix) !== undefined, 2000);

    const started = performance.now();
    assert.equal(await a.revokeKey(key.prefix), true);
    await waitFor('revocation on b', () => b.getKey(key.prefix)?.revoked_at != null, 2000, 1);
    const elapsed = performance.now() - started;
    console.log(`revocation propagated to the other instance in ${elapsed.toFixed(1)} ms`);
    assert.ok(elapsed < 1000, `took ${elapsed} ms`);
    assert.equal(b.getKey(key.prefix)?.revoked_at, a.getKey(key.prefix)?.revoked_at);
  });

  void test('a key created through one instance appears on the other', async () => {
    const a = await openStore();
    const b = await openStore();
    const key = makeKey('acme', ['read']);
    await a.putKey(record(key));
    const elapsed = await waitFor('key on b', () => b.getKey(key.prefix) !== undefined, 1000, 1);
    assert.deepEqual(b.getKey(key.prefix), record(key));
    assert.ok(elapsed < 1000);
    await b.putTenant(makeTenant('from-b'));
    await waitFor('tenant on a', () => a.getTenant('from-b') !== undefined, 1000, 1);
  });

  void test('revokeKey answers false for unknown prefixes and keeps the first revocation time', async () => {
    const store = await openStore();
    assert.equal(await store.revokeKey('Nope1234'), false);
    assert.equal(await store.revokeKey('not a prefix'), false);
    const key = makeKey('acme');
    await store.putKey(record(key));
    const first = new Date('2030-01-01T00:00:00.000Z');
    assert.equal(await store.revokeKey(key.prefix, first), true);
    assert.equal(await store.revokeKey(key.prefix, new Date('2031-01-01T00:00:00.000Z')), true);
    assert.equal(store.getKey(key.prefix)?.revoked_at, first.toISOString());
  });

  void test('writes of invalid records are refused before they reach NATS', async () => {
    const store = await openStore();
    await assert.rejects(store.putTenant({ ...makeTenant('x'), id: 'Not Valid' }), /invalid tenant/);
    await assert.rejects(store.putKey({ ...record(makeKey('acme')), prefix: 'short' }), /invalid API key record/);
  });

  void test('corrupt KV values are skipped with a warning, not fatal', async () => {
    const logger = captureLogger();
    const watching = await openStore({ logger });
    const connection = await connectNats([server.url], { name: 'raw-writer' });
    connections.push(connection);
    const kv = await new Kvm(connection.nc).open(KEYS_BUCKET);
    const good = makeKey('acme');
    await kv.put('Garbage1', 'this is not json');
    await kv.put('Garbage2', JSON.stringify({ prefix: 'Garbage2', hash: 'nope' }));
    await kv.put('Mismatch', JSON.stringify({ ...record(good), prefix: good.prefix }));
    await watching.putKey(record(good));

    await waitFor('three warnings', () => logger.warnings.length >= 3, 2000);
    assert.equal(watching.getKey('Garbage1'), undefined);
    assert.equal(watching.getKey('Garbage2'), undefined);
    assert.equal(watching.getKey('Mismatch'), undefined);
    assert.deepEqual(watching.getKey(good.prefix), record(good));
    assert.ok(logger.warnings.every((w) => w.fields.bucket === KEYS_BUCKET));

    // a store starting on a bucket that holds corrupt entries starts anyway
    const laterLogger = captureLogger();
    const later = await openStore({ logger: laterLogger });
    assert.deepEqual(later.getKey(good.prefix), record(good));
    assert.equal(later.getKey('Garbage1'), undefined);
    assert.ok(laterLogger.warnings.length >= 3);
    await assert.rejects(later.revokeKey('Garbage2'), /stored record is invalid/);
  });

  void test('a deleted KV entry disappears from every instance', async () => {
    const a = await openStore();
    const b = await openStore();
    const key = makeKey('acme');
    await a.putKey(record(key));
    await waitFor('key on b', () => b.getKey(key.prefix) !== undefined, 1000);
    const connection = await connectNats([server.url], { name: 'raw-deleter' });
    connections.push(connection);
    await (await new Kvm(connection.nc).open(KEYS_BUCKET)).delete(key.prefix);
    await waitFor('deletion on a and b', () => a.getKey(key.prefix) === undefined && b.getKey(key.prefix) === undefined, 1000);
    assert.ok(!b.listKeys().some((k) => k.prefix === key.prefix));
  });

  void test('a watch whose consumer is deleted on the server (connection still up) is re-created within seconds', async () => {
    const a = await openStore();
    const logger = captureLogger();
    const b = await openStore({ logger });
    const jsm = await jetstreamManager(connections[0]!.nc);
    for await (const ci of jsm.consumers.list(`KV_${KEYS_BUCKET}`)) {
      await jsm.consumers.delete(`KV_${KEYS_BUCKET}`, ci.name);
    }
    const key = makeKey('acme');
    await a.putKey(record(key));
    const elapsed = await waitFor('key on b after its consumer was deleted', () => b.getKey(key.prefix) !== undefined, 10_000, 10);
    console.log(`watch with a deleted consumer recovered after ${elapsed.toFixed(0)} ms`);
    assert.ok(logger.warnings.some((w) => /stalled/.test(w.message)), 'the stall detector noticed');
    // and it keeps following afterwards
    const next = makeKey('acme');
    await a.putKey(record(next));
    await waitFor('next key on b', () => b.getKey(next.prefix) !== undefined, 1000, 2);
  });

  void test('buckets are created with file storage and the configured history', async () => {
    await openStore();
    const jsm = await jetstreamManager(connections[0]!.nc);
    for (const bucket of [TENANTS_BUCKET, KEYS_BUCKET]) {
      const info = await jsm.streams.info(`KV_${bucket}`);
      assert.equal(info.config.storage, 'file');
      assert.equal(info.config.max_msgs_per_subject, 5);
      assert.equal(info.config.num_replicas, 1);
    }
  });

  void test('openKeyStore picks NATS KV when given a connection under KEY_STORE=auto, the file store without one', async () => {
    const connection = await connectNats([server.url], { name: 'factory-test' });
    connections.push(connection);
    const config = loadConfig({}, { KEY_STORE: 'auto', DATA_DIR: '/nonexistent-kgents-dir' });
    const store = await openKeyStore(config, { natsConnection: connection, logger: captureLogger() });
    assert.equal(store.kind, 'nats');
    await store.close();
    assert.equal(createKeyStore(config).kind, 'file');
    assert.equal(createKeyStore(loadConfig({}, { KEY_STORE: 'file' }), { natsConnection: connection }).kind, 'file');
    assert.throws(() => createKeyStore(loadConfig({}, { KEY_STORE: 'nats' })), /KEY_STORE.*NATS/);
  });
});

void describe('NatsKvKeyStore across a nats-server restart', () => {
  void test('the watch resumes after nats-server restarts on the same port: a key created after the restart reaches the other instance', async () => {
    const server = await startNats();
    const connA = await connectNats([server.url], { name: 'restart-a' });
    const connB = await connectNats([server.url], { name: 'restart-b' });
    const a = new NatsKvKeyStore(connA, { logger: captureLogger() });
    const b = new NatsKvKeyStore(connB, { logger: captureLogger() });
    try {
      await a.start();
      await b.start();
      await a.putTenant(makeTenant('acme'));
      const before = makeKey('acme');
      await a.putKey(record(before));
      await waitFor('key on b before restart', () => b.getKey(before.prefix) !== undefined, 1000);

      await server.stop();
      await waitFor('b sees the connection down', () => connB.health().status === 'down', 5000);
      assert.equal(b.status().status, 'degraded');
      // reads keep working from memory while NATS is away
      assert.deepEqual(b.getKey(before.prefix), record(before));

      await server.start();
      await waitFor('both reconnected', () => connA.isUp && connB.isUp, 10_000, 20);

      const afterRestart = makeKey('acme');
      await retry(() => a.putKey(record(afterRestart)));
      const created = performance.now();
      await waitFor('key created after the restart on b', () => b.getKey(afterRestart.prefix) !== undefined, 10_000, 2);
      console.log(`after restart: new key reached the other instance ${(performance.now() - created).toFixed(1)} ms after its write was acknowledged`);

      const started = performance.now();
      assert.equal(await a.revokeKey(before.prefix), true);
      await waitFor('revocation on b after restart', () => b.getKey(before.prefix)?.revoked_at != null, 2000, 1);
      const elapsed = performance.now() - started;
      console.log(`after restart: revocation propagated in ${elapsed.toFixed(1)} ms`);
      assert.ok(elapsed < 1000, `took ${elapsed} ms`);
      await waitFor('b live again', () => b.status().status === 'ok', 5000);
      // data written before the restart survived in the server's store directory
      const fresh = new NatsKvKeyStore(connA, { logger: captureLogger() });
      await fresh.start();
      assert.equal(fresh.getTenant('acme')?.id, 'acme');
      assert.ok(fresh.getKey(before.prefix)?.revoked_at);
      await fresh.close();
    } finally {
      await a.close();
      await b.close();
      await connA.close();
      await connB.close();
      await server.cleanup();
    }
  });

  void test('a store whose server comes back later catches up on writes it missed while disconnected', async () => {
    const server = await startNats();
    const connA = await connectNats([server.url], { name: 'missed-a' });
    const connB = await connectNats([server.url], { name: 'missed-b' });
    const a = new NatsKvKeyStore(connA, { logger: captureLogger() });
    const b = new NatsKvKeyStore(connB, { logger: captureLogger() });
    try {
      await a.start();
      await b.start();
      await server.stop();
      await server.start();
      // a writes as soon as it can; b may still be reconnecting and must catch up from its last revision
      const keys = [makeKey('acme'), makeKey('acme'), makeKey('acme')];
      for (const k of keys) await retry(() => a.putKey(record(k)));
      await waitFor('all keys on b', () => keys.every((k) => b.getKey(k.prefix) !== undefined), 10_000, 10);
    } finally {
      await a.close();
      await b.close();
      await connA.close();
      await connB.close();
      await server.cleanup();
    }
  });
});

void describe('NatsKvKeyStore on a 3-node cluster', () => {
  void test('buckets get the configured replicas (NATS_REPLICAS=3)', async () => {
    const cluster = await startNatsCluster(3);
    const connection = await connectNats(cluster.urls, { name: 'cluster-test' });
    const config = loadConfig({}, { NATS_REPLICAS: '3', KEY_STORE: 'nats' });
    const store = await openKeyStore(config, { natsConnection: connection, logger: captureLogger(), startTimeoutMs: 30_000 });
    const otherConnection = await connectNats([...cluster.urls].reverse(), { name: 'cluster-test-2' });
    const other = new NatsKvKeyStore(otherConnection, { replicas: 3, logger: captureLogger() });
    try {
      const jsm = await jetstreamManager(connection.nc);
      for (const bucket of [TENANTS_BUCKET, KEYS_BUCKET]) {
        const info = await jsm.streams.info(`KV_${bucket}`);
        assert.equal(info.config.num_replicas, 3, bucket);
        assert.equal((await (await new Kvm(connection.nc).open(bucket)).status()).replicas, 3);
      }
      await other.start();
      const key = makeKey('acme');
      await store.putKey(record(key));
      await waitFor('key on the other cluster client', () => other.getKey(key.prefix) !== undefined, 2000);
    } finally {
      await store.close();
      await other.close();
      await connection.close();
      await otherConnection.close();
      await cluster.cleanup();
    }
  });
});
