import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import { ensureStreams, USAGE_STREAM } from '../../../src/adapters/nats/streams.js';
import { JetStreamUsagePublisher, PublishRejectedError, PublishTimeoutError } from '../../../src/adapters/nats/usage-publisher.js';
import { startNats } from '../../harness/servers.js';

// Budget: about 3 s (one nats-server, one 300 ms timeout).
const encoder = new TextEncoder();
const event = (id: string, tenant = 'acme'): { id: string; subject: string; type: string } => ({ id, subject: tenant, type: 'agentese.invoke' });

void test('the usage publisher resolves with the stream sequence once JetStream acks, reports duplicates by event id, and fails fast or times out without an ack', async () => {
  const server = await startNats();
  const connection = await connectNats([server.url], { name: 'publisher-test' });
  try {
    const publisher = new JetStreamUsagePublisher(connection, 300);

    // No stream yet: nothing is bound to usage.>, so the server answers "no responders" at once.
    await assert.rejects(publisher.publish(event('e0'), encoder.encode('{}')), (err: unknown) => err instanceof PublishRejectedError && /stream/.test(err.message));

    const jsm = await jetstreamManager(connection.nc);
    await ensureStreams(jsm, { replicas: 1, usageDuplicateWindowS: 60, usageRetentionDays: 1 });

    // Concurrent publishes share the one reply subscription; each gets its own ack.
    const acks = await Promise.all(Array.from({ length: 200 }, (_, i) => publisher.publish(event(`e${i + 1}`), encoder.encode(`{"n":${i}}`))));
    assert.deepEqual(new Set(acks.map((a) => a.seq)).size, 200);
    assert.ok(acks.every((a) => !a.duplicate));
    const again = await publisher.publish(event('e7'), encoder.encode('{"n":6}'));
    assert.equal(again.duplicate, true, 'the same Nats-Msg-Id within the window is a duplicate');
    const info = await jsm.streams.info(USAGE_STREAM);
    assert.equal(info.state.messages, 200);
    assert.equal(publisher.inFlight, 0);

    // A subscriber that never answers stands in for a stream that has stopped acknowledging.
    await jsm.streams.delete(USAGE_STREAM);
    const silent = connection.nc.subscribe('usage.>');
    const started = performance.now();
    await assert.rejects(publisher.publish(event('late'), encoder.encode('{}')), PublishTimeoutError);
    const waited = performance.now() - started;
    assert.ok(waited >= 290 && waited < 3000, `timed out after ${Math.round(waited)} ms (timeout 300 ms)`);
    assert.equal(publisher.inFlight, 0);
    silent.unsubscribe();

    // A closed connection fails publishes instead of leaving them waiting.
    await connection.close();
    await assert.rejects(publisher.publish(event('closed'), encoder.encode('{}')));
  } finally {
    await connection.close();
    await server.cleanup();
  }
});
