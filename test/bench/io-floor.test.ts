import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { Redis } from 'ioredis';
import { freePort } from '../../src/adapters/local/ports.js';
import { connectNats } from '../../src/adapters/nats/connection.js';
import { ensureStreams } from '../../src/adapters/nats/streams.js';
import { INVOKE_BODY } from '../../bench/lib/targets.js';
import { http, spawnNode } from '../harness/serve-process.js';
import { startNats, startRedis } from '../harness/servers.js';
import { readAllUsage, tally } from '../harness/usage.js';

// Budget: about 2 s (one nats-server, one redis-server, one server process).
const IO_FLOOR = join(import.meta.dirname, '..', '..', 'bench', 'io-floor-server.js');

void test('the I/O floor server answers a call only after its Redis command and its usage event in JetStream, one event per call', async () => {
  const [nats, redis] = await Promise.all([startNats(), startRedis()]);
  const connection = await connectNats([nats.url], { name: 'io-floor-test' });
  const client = new Redis(redis.url);
  try {
    await ensureStreams(await jetstreamManager(connection.nc), { replicas: 1, usageDuplicateWindowS: 60, usageRetentionDays: 1 });
    const port = await freePort();
    const floor = await spawnNode([IO_FLOOR], { PORT: String(port), REDIS_URL: redis.url, NATS_URLS: nats.url }, 'listening');
    try {
      const calls = 40;
      const answers = await Promise.all(Array.from({ length: calls }, () => http(port, '/invoke', { method: 'POST', headers: { 'content-type': 'application/json' }, body: INVOKE_BODY })));
      for (const a of answers) {
        assert.equal(a.status, 200, a.body);
        assert.deepEqual(JSON.parse(a.body), { path: 'world.house.manifest', tokens_used: 1, cached: false });
      }
      // Every 200 was sent after both, so both are there as soon as the answers are.
      assert.equal(await client.get('kg:bench:floor'), String(calls));
      const events = await readAllUsage(nats.url, 10_000);
      assert.equal(events.length, calls);
      assert.ok(events.every((e) => e.subject === 'bench-floor' && e.data.path === 'world.house.manifest'));
      assert.equal(tally(events.map((e) => e.id)).unique, calls);

      floor.child.kill('SIGTERM');
      assert.equal(await floor.exited, 0, floor.output());
    } finally {
      floor.child.kill('SIGKILL');
    }
  } finally {
    client.disconnect();
    await connection.close();
    await Promise.all([nats.cleanup(), redis.cleanup()]);
  }
});
