import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { pingRedis } from '../src/adapters/local/redis-server.js';
import { startNats, startNatsCluster, startRedis } from './harness/servers.js';

test('harness starts a JetStream server on a free port and removes it afterwards', async () => {
  const nats = await startNats();
  try {
    const nc = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(nc);
    const info = await jsm.getAccountInfo();
    assert.equal(typeof info.streams, 'number');
    await nc.close();
  } finally {
    await nats.cleanup();
  }
  assert.equal(nats.running, false);
});

test('harness starts a 3-node JetStream cluster that accepts replica-3 streams', async () => {
  const cluster = await startNatsCluster(3);
  try {
    const nc = await connect({ servers: cluster.urls });
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.add({ name: 'R3', subjects: ['r3.>'], num_replicas: 3 });
    assert.equal(info.config.num_replicas, 3);
    await nc.close();
  } finally {
    await cluster.cleanup();
  }
});

test('harness starts redis-server on a free port and stops it', async () => {
  const redis = await startRedis();
  assert.equal(await pingRedis(redis.port), true);
  await redis.cleanup();
  assert.equal(await pingRedis(redis.port), false);
});
