import { strict as assert } from 'node:assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import type { UsageEvent } from '../../../src/domain/metering/usage-event.js';
import { publishEvents, startEnv, waitFor, type Env } from './fixtures.js';

const key = (e: { id: string; source: string }): string => `${e.source}\u0000${e.id}`;

function assertExactlyOnce(env: Env, events: readonly UsageEvent[]): void {
  const received = env.standIn.received();
  assert.equal(received.length, events.length, 'unique id+source equals the number of events published');
  assert.deepEqual(new Set(received.map(key)), new Set(events.map(key)), 'the very same events');
  assert.ok(env.standIn.deliveries >= events.length);
}

void test('OpenMeter answering 500 for 10 s then recovering: every event arrives exactly once', async (t) => {
  const env = await startEnv();
  try {
    const N = 1000;
    const OUTAGE_MS = 10_000;
    const events = await publishEvents(env.js, N);
    // production backoff base (250 ms); the cap is lowered from 30 s so the test measures recovery, not the cap
    const exporter = env.exporter({ batchSize: 100, backoff: { baseMs: 250, capMs: 2000 } });
    env.standIn.failFor(OUTAGE_MS, 500);
    const outageStart = performance.now();
    exporter.start();
    await waitFor('all events after the outage', () => env.standIn.received().length >= N, OUTAGE_MS + 20_000);
    const done = performance.now();
    await waitFor('every message acknowledged', async () => (await env.consumerInfo()).ack_floor.stream_seq === N);

    assertExactlyOnce(env, events);
    assert.equal(env.standIn.deliveries, N, 'a 500 stores nothing, so raw deliveries equal N too');
    const outageEnd = outageStart + OUTAGE_MS;
    const failed = env.standIn.requests.filter((r) => r.status === 500);
    const firstOk = env.standIn.requests.find((r) => r.status === 204);
    assert.ok(firstOk && firstOk.at >= outageEnd - 50, 'nothing accepted during the outage');
    assert.ok(failed.length >= 5, 'it kept retrying during the outage');
    assert.equal(exporter.status().status, 'ok');
    t.diagnostic(`outage ${OUTAGE_MS} ms: ${failed.length} attempts answered 500; first accepted batch ${(firstOk.at - outageEnd).toFixed(0)} ms after recovery; all ${N} exported ${(done - outageEnd).toFixed(0)} ms after recovery; unique=${env.standIn.received().length} raw deliveries=${env.standIn.deliveries}`);
  } finally {
    await env.cleanup();
  }
});

void test('a request that times out is retried; OpenMeter de-duplication keeps it exactly once though it was delivered twice', async (t) => {
  const env = await startEnv();
  try {
    const N = 200;
    const events = await publishEvents(env.js, N);
    // held requests are answered after 2.5 s, long after the 1 s client timeout, but still stored
    env.standIn.hangFor(2500);
    const exporter = env.exporter({ batchSize: 50, requestTimeoutMs: 1000 });
    exporter.start();
    await waitFor('all events', () => env.standIn.received().length >= N, 15_000);
    await waitFor('every message acknowledged', async () => (await env.consumerInfo()).ack_floor.stream_seq === N);
    assertExactlyOnce(env, events);
    const timedOut = env.standIn.requests.filter((r) => !r.clientWaited).length;
    assert.ok(timedOut >= 1, 'at least one attempt timed out');
    assert.ok(env.standIn.deliveries > N, 'the timed-out attempt was stored too: a real retry duplicate');
    t.diagnostic(`${timedOut} attempts timed out but were stored; unique=${env.standIn.received().length} raw deliveries=${env.standIn.deliveries} (the extra ${env.standIn.deliveries - N} were de-duplicated)`);
  } finally {
    await env.cleanup();
  }
});

void test('the exporter survives a nats-server restart, even mid-retry, and exports everything once', async (t) => {
  const env = await startEnv();
  try {
    const first = await publishEvents(env.js, 300);
    const exporter = env.exporter({ batchSize: 50 });
    exporter.start();
    await waitFor('first 300', () => env.standIn.received().length === 300);

    // a batch is in retry when NATS goes away; OpenMeter recovers while NATS is down, so its ack waits for the reconnect
    env.standIn.failFor(2000, 503);
    const second = await publishEvents(env.js, 300);
    await waitFor('a failing attempt', () => env.standIn.requests.some((r) => r.status === 503));
    const downAt = performance.now();
    await env.server.stop();
    await waitFor('the exporter sees NATS down', () => !env.nats.isUp, 5000);
    // OpenMeter recovers while NATS is down: the batch in retry gets its 2xx, its ack has to wait
    await waitFor('the batch in retry accepted while NATS is down', () => env.standIn.received().length > 300, 10_000);
    const acceptedWhileDown = env.standIn.received().length - 300;
    await sleep(300);
    await env.server.start();
    const upAt = performance.now();
    await waitFor('the client reconnects', () => env.nats.isUp, 10_000);

    const third: UsageEvent[] = [];
    await waitFor('JetStream accepts publishes again', async () => {
      try {
        third.push(...(await publishEvents(env.js, 300)));
        return true;
      } catch {
        return false;
      }
    }, 15_000, 200);
    const all = [...first, ...second, ...third];
    await waitFor('all 900 events', () => env.standIn.received().length >= all.length, 20_000);
    const done = performance.now();
    await waitFor('every message acknowledged', async () => {
      const info = await env.consumerInfo();
      return info.num_pending === 0 && info.num_ack_pending === 0;
    }, 10_000);
    assertExactlyOnce(env, all);
    assert.ok(acceptedWhileDown > 0);
    assert.equal(exporter.status().status, 'ok');
    t.diagnostic(`NATS down ${(upAt - downAt).toFixed(0)} ms; ${acceptedWhileDown} events reached OpenMeter while NATS was down; all ${all.length} exported ${(done - upAt).toFixed(0)} ms after nats-server was back; unique=${env.standIn.received().length} raw deliveries=${env.standIn.deliveries}`);
  } finally {
    await env.cleanup();
  }
});

void test('while a batch is retried past the ack wait, working() keeps it from being redelivered to another replica', async (t) => {
  const env = await startEnv();
  const otherConnection = await connectNats([env.server.url], { name: 'exporter-test-2' });
  try {
    const N = 100;
    const events = await publishEvents(env.js, N);
    const FAIL_MS = 4000;
    env.standIn.failFor(FAIL_MS, 502);
    const failStart = performance.now();
    // ack wait 1.5 s: without working() the server would hand the batch to the idle second replica
    const a = env.exporter({ batchSize: N, ackWaitMs: 1500 });
    a.start();
    await waitFor('the first replica holds the batch', () => env.standIn.requests.length >= 1);
    const b = env.exporter({ batchSize: N, ackWaitMs: 1500, nats: otherConnection });
    b.start();
    // watch the consumer through two ack waits of the failure window: nothing may be redelivered
    let maxRedelivered = 0;
    let samples = 0;
    while (performance.now() - failStart < FAIL_MS - 300) {
      maxRedelivered = Math.max(maxRedelivered, (await env.consumerInfo()).num_redelivered);
      samples++;
      await sleep(100);
    }
    assert.equal(maxRedelivered, 0, 'nothing was redelivered while the first replica retried');
    await waitFor('all events after the failures', () => env.standIn.received().length === N, 15_000);
    await waitFor('every message acknowledged', async () => (await env.consumerInfo()).ack_floor.stream_seq === N);
    await Promise.all([a.stop(), b.stop()]);
    assertExactlyOnce(env, events);
    assert.equal(env.standIn.deliveries, N, 'the batch was sent by one replica only');
    assert.equal(a.stats().exported, N);
    assert.equal(b.stats().exported, 0);
    assert.equal(b.stats().failedAttempts, 0, 'the second replica never got the batch');
    t.diagnostic(`retried ${a.stats().failedAttempts} times over ${FAIL_MS} ms with a 1.5 s ack wait; max redelivered over ${samples} samples=${maxRedelivered}; unique=${env.standIn.received().length} raw deliveries=${env.standIn.deliveries}`);
  } finally {
    await env.cleanup();
    await otherConnection.close(500);
  }
});
