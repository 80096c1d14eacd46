import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import { usageSubject } from '../../../src/adapters/nats/streams.js';
import { DLQ_HEADERS, backoffDelay, checkCloudEvent, disabledExporterStatus, type ExporterStatus } from '../../../src/adapters/openmeter/exporter.js';
import { ExporterMetrics } from '../../../src/adapters/openmeter/metrics.js';
import type { ComponentStatus } from '../../../src/http/health.js';
import { makeEvent, metricValue, publishEvents, startEnv, waitFor } from './fixtures.js';

const key = (e: { id: string; source: string }): string => `${e.source}\u0000${e.id}`;

/**
 * The exporter counts a batch once JetStream has confirmed its acks, which consumer info can show a
 * moment earlier: a test that waited for the acks waits for the count too before asserting it.
 */
const waitForCount = (what: string, counted: () => boolean | Promise<boolean>): Promise<number> => waitFor(what, counted);

void test('N events in USAGE arrive at OpenMeter exactly once: unique id+source = N and raw deliveries = N', async (t) => {
  const env = await startEnv();
  try {
    const N = 3000;
    const events = await publishEvents(env.js, N);
    const registry = new Registry();
    const exporter = env.exporter({ batchSize: 100, registry });
    const started = performance.now();
    exporter.start();
    await waitFor('all events at the stand-in', () => env.standIn.received().length >= N, 30_000, 5);
    const took = performance.now() - started;
    await waitFor('every message acknowledged', async () => {
      const info = await env.consumerInfo();
      return info.num_pending === 0 && info.num_ack_pending === 0 && info.ack_floor.stream_seq === N;
    });
    await waitForCount('the exporter counted every event', () => exporter.stats().exported === N);
    const received = env.standIn.received();
    assert.equal(received.length, N, 'unique by id+source');
    assert.deepEqual(new Set(received.map(key)), new Set(events.map(key)));
    assert.equal(env.standIn.deliveries, N, 'no retry happened, so no raw duplicate either');
    assert.ok(env.standIn.requests.every((r) => r.status === 204));
    assert.equal(await metricValue(exporter.metrics.exported), N);
    assert.equal(exporter.stats().exported, N);
    assert.equal(exporter.status().status, 'ok');
    t.diagnostic(`exported ${N} events in ${took.toFixed(0)} ms = ${Math.round(N / (took / 1000))} events/s (batch 100, ${env.standIn.requests.length} requests); unique=${received.length} raw deliveries=${env.standIn.deliveries}`);
  } finally {
    await env.cleanup();
  }
});

void test('events are acknowledged only after a 2xx: an exporter stopped mid-retry leaves them for the next one', async (t) => {
  const env = await startEnv();
  try {
    const events = await publishEvents(env.js, 50);
    env.standIn.failFor(60_000, 500);
    const first = env.exporter({ batchSize: 20 });
    first.start();
    await waitFor('a few failed attempts', () => env.standIn.requests.length >= 3);
    const status = first.status();
    assert.equal(status.status, 'degraded');
    assert.match(status.last_error ?? '', /HTTP 500/);
    const stopping = performance.now();
    await first.stop();
    const stopTook = performance.now() - stopping;
    assert.ok(stopTook < 2000, `stop() returned promptly (${stopTook.toFixed(0)} ms)`);
    assert.equal(first.status().status, 'disabled');

    const info = await env.consumerInfo();
    assert.equal(info.ack_floor.stream_seq, 0, 'nothing was acknowledged');
    assert.equal(env.standIn.received().length, 0);
    assert.equal(first.stats().exported, 0);

    env.standIn.failFor(0);
    const second = env.exporter({ batchSize: 20 });
    second.start();
    await waitFor('the second exporter exports all 50', () => env.standIn.received().length === 50);
    await waitFor('all acknowledged', async () => (await env.consumerInfo()).ack_floor.stream_seq === 50);
    assert.deepEqual(new Set(env.standIn.received().map((e) => e.id)), new Set(events.map((e) => e.id)));
    assert.equal(env.standIn.deliveries, 50);
    t.diagnostic(`stop() took ${stopTook.toFixed(0)} ms mid-retry; failed attempts before stop: ${first.stats().failedAttempts}; second exporter: unique=${env.standIn.received().length} raw deliveries=${env.standIn.deliveries}`);
  } finally {
    await env.cleanup();
  }
});

void test('a 429 with Retry-After is honoured before the next attempt', async (t) => {
  const env = await startEnv();
  try {
    await publishEvents(env.js, 5);
    env.standIn.failFor(200, 429, { retryAfter: '2' });
    const registry = new Registry();
    const exporter = env.exporter({ registry });
    exporter.start();
    await waitFor('events exported after the Retry-After', () => env.standIn.received().length === 5, 10_000);
    const [limited, next] = env.standIn.requests;
    assert.ok(limited && next);
    assert.equal(limited.status, 429);
    assert.equal(next.status, 204);
    const gap = next.at - limited.answeredAt;
    assert.ok(gap >= 1950, `waited ${gap.toFixed(0)} ms (Retry-After: 2), not the 50 ms base backoff`);
    assert.equal(env.standIn.requests.length, 2);
    assert.equal(await metricValue(exporter.metrics.failures, { reason: 'rate_limited' }), 1);
    t.diagnostic(`next attempt ${gap.toFixed(0)} ms after the 429`);
  } finally {
    await env.cleanup();
  }
});

void test('events OpenMeter rejects as invalid go to USAGE_DLQ with the reason; the rest of their batch is exported', async (t) => {
  const env = await startEnv();
  try {
    const events = await publishEvents(env.js, 20);
    const badIdx = [3, 12];
    const bad = badIdx.map((i) => events[i]).filter((e) => e !== undefined);
    env.standIn.rejectIds(bad.map((e) => e.id));
    const registry = new Registry();
    const exporter = env.exporter({ batchSize: 20, registry });
    exporter.start();
    await waitFor('18 exported and 2 dead-lettered', async () => env.standIn.received().length === 18 && (await env.deadLetters()).length === 2);
    await waitFor('all 20 acknowledged', async () => {
      const info = await env.consumerInfo();
      return info.ack_floor.stream_seq === 20 && info.num_ack_pending === 0;
    });
    const exportedIds = new Set(env.standIn.received().map((e) => e.id));
    for (const [i, ev] of events.entries()) assert.equal(exportedIds.has(ev.id), !badIdx.includes(i), `event ${i}`);

    const dlq = await env.deadLetters();
    assert.deepEqual(dlq.map((m) => m.subject), ['usage-dlq.openmeter', 'usage-dlq.openmeter']);
    for (const [n, m] of dlq.entries()) {
      const original = bad[n];
      assert.ok(original);
      assert.equal(m.header.get(DLQ_HEADERS.kind), 'invalid');
      assert.match(m.header.get(DLQ_HEADERS.reason), new RegExp(`HTTP 400: Bad Request: event ${original.id}: rejected by the stand-in`));
      assert.equal(m.header.get(DLQ_HEADERS.httpStatus), '400');
      assert.equal(m.header.get(DLQ_HEADERS.originalStream), 'USAGE');
      assert.equal(m.header.get(DLQ_HEADERS.originalSeq), String((badIdx[n] ?? 0) + 1));
      assert.equal(m.header.get(DLQ_HEADERS.originalSubject), usageSubject(original.subject, original.type));
      assert.equal(m.header.get(DLQ_HEADERS.originalMsgId), original.id);
      assert.equal(m.header.get(DLQ_HEADERS.eventId), original.id);
      assert.deepEqual(m.json(), original, 'the payload is the original event');
    }
    assert.equal(await metricValue(exporter.metrics.deadLettered, { reason: 'invalid' }), 2);
    assert.equal(exporter.status().status, 'ok', 'an invalid event is not a degraded exporter');
    t.diagnostic(`bisection took ${env.standIn.requests.length} requests (${env.standIn.requests.filter((r) => r.status === 400).length} answered 400) for a batch of 20 with 2 bad events`);
  } finally {
    await env.cleanup();
  }
});

void test('a message that is not a CloudEvent goes to USAGE_DLQ as malformed and is never sent', async () => {
  const env = await startEnv();
  try {
    const good = [makeEvent(), makeEvent()];
    const { subject: _s, ...noSubject } = makeEvent();
    const payloads: [string, RegExp][] = [
      ['this is {not json', /not JSON/],
      ['{"hello":"world"}', /specversion/],
      [JSON.stringify(noSubject), /"subject"/],
      ['[42]', /not a JSON object/],
    ];
    await env.js.publish(usageSubject('acme', 'agentese.invoke'), JSON.stringify(good[0]), { msgID: good[0]?.id });
    for (const [p] of payloads) await env.js.publish(usageSubject('acme', 'junk'), p);
    await env.js.publish(usageSubject('acme', 'agentese.invoke'), JSON.stringify(good[1]), { msgID: good[1]?.id });

    const exporter = env.exporter({ batchSize: 10 });
    exporter.start();
    await waitFor('2 exported and 4 dead-lettered', async () => env.standIn.received().length === 2 && (await env.deadLetters()).length === 4);
    const dlq = await env.deadLetters();
    for (const [i, m] of dlq.entries()) {
      const [payload, reason] = payloads[i] ?? ['', /$^/];
      assert.equal(m.header.get(DLQ_HEADERS.kind), 'malformed');
      assert.match(m.header.get(DLQ_HEADERS.reason), reason);
      assert.equal(m.header.get(DLQ_HEADERS.httpStatus), '', 'never sent, so no HTTP status');
      assert.equal(m.header.get(DLQ_HEADERS.originalSeq), String(i + 2));
      assert.equal(m.string(), payload);
    }
    assert.ok(env.standIn.requests.every((r) => r.status === 204), 'nothing malformed reached OpenMeter');
    await waitFor('all 6 acknowledged', async () => (await env.consumerInfo()).ack_floor.stream_seq === 6);
  } finally {
    await env.cleanup();
  }
});

void test('a batch message (a JSON array of events) is exported event by event and acknowledged once all are settled; a bad event in it goes to USAGE_DLQ alone', async () => {
  const env = await startEnv();
  try {
    const batch = [makeEvent(), makeEvent(), makeEvent(), makeEvent()];
    const { subject: _s, ...noSubject } = makeEvent();
    const [e0, e1, e2, e3] = batch;
    assert.ok(e0 && e1 && e2 && e3);
    // one message: four good events and, at index 2, one without a subject
    const payload = JSON.stringify([e0, e1, noSubject, e2, e3]);
    await env.js.publish(usageSubject('acme', 'agentese.invoke'), payload, { msgID: e0.id });
    env.standIn.rejectIds([e3.id]);
    const exporter = env.exporter({ batchSize: 2 });
    exporter.start();
    await waitFor('3 exported and 2 dead-lettered', async () => env.standIn.received().length === 3 && (await env.deadLetters()).length === 2);
    await waitFor('the message acknowledged', async () => (await env.consumerInfo()).ack_floor.stream_seq === 1);
    assert.deepEqual(new Set(env.standIn.received().map((e) => e.id)), new Set([e0.id, e1.id, e2.id]));
    const dlq = await env.deadLetters();
    const byKind = new Map(dlq.map((m) => [m.header.get(DLQ_HEADERS.kind), m]));
    const malformed = byKind.get('malformed');
    const invalid = byKind.get('invalid');
    assert.ok(malformed && invalid);
    assert.equal(malformed.header.get(DLQ_HEADERS.originalPart), '2');
    assert.deepEqual(malformed.json(), noSubject, 'the bad event alone, not the whole batch');
    assert.equal(invalid.header.get(DLQ_HEADERS.originalPart), '4');
    assert.equal(invalid.header.get(DLQ_HEADERS.eventId), e3.id);
    assert.deepEqual(invalid.json(), e3);
    for (const m of dlq) assert.equal(m.header.get(DLQ_HEADERS.originalSeq), '1');
    await waitForCount('the exporter counted them', () => exporter.stats().exported === 3 && exporter.stats().deadLettered === 2);
    assert.equal(exporter.stats().exported, 3);
    assert.equal(exporter.stats().deadLettered, 2);
  } finally {
    await env.cleanup();
  }
});

void test('two exporters sharing the durable consumer export each event once in total', async (t) => {
  const env = await startEnv();
  const otherConnection = await connectNats([env.server.url], { name: 'exporter-test-2' });
  try {
    const N = 2000;
    const events = await publishEvents(env.js, N);
    const a = env.exporter({ batchSize: 25 });
    const b = env.exporter({ batchSize: 25, nats: otherConnection });
    a.start();
    b.start();
    await waitFor('all events at the stand-in', () => env.standIn.received().length >= N, 30_000);
    await waitFor('every message acknowledged', async () => (await env.consumerInfo()).ack_floor.stream_seq === N);
    assert.equal(env.standIn.received().length, N);
    assert.deepEqual(new Set(env.standIn.received().map(key)), new Set(events.map(key)));
    assert.equal(env.standIn.deliveries, N, 'no event was sent by both');
    await waitForCount('both exporters counted theirs', () => a.stats().exported + b.stats().exported === N);
    assert.equal(a.stats().exported + b.stats().exported, N);
    assert.ok(a.stats().exported > 0 && b.stats().exported > 0, `both took part (a=${a.stats().exported}, b=${b.stats().exported})`);
    t.diagnostic(`exporter a: ${a.stats().exported}, exporter b: ${b.stats().exported}; unique=${env.standIn.received().length} raw deliveries=${env.standIn.deliveries}`);
  } finally {
    await env.cleanup();
    await otherConnection.close(500);
  }
});

void test('the lag gauge shows the backlog while OpenMeter fails and reaches 0 after export; status goes degraded then ok', async (t) => {
  const env = await startEnv();
  try {
    const N = 300;
    await publishEvents(env.js, N);
    env.standIn.failFor(1500, 503);
    const registry = new Registry();
    const exporter = env.exporter({ batchSize: 100, registry });
    assert.equal(exporter.status().status, 'disabled', 'not started yet');
    const before = Date.now() / 1000;
    exporter.start();
    await waitFor('lag gauge = backlog', async () => (await metricValue(exporter.metrics.lag)) === N);
    await waitFor('degraded while failing', () => exporter.status().status === 'degraded');
    assert.equal(exporter.status().lag, N);
    assert.equal(exporter.status().last_success, null);
    const drained = await waitFor('lag gauge = 0', async () => (await metricValue(exporter.metrics.lag)) === 0, 15_000);
    // the last success and the status are set with the count
    await waitForCount('the exported counter', async () => (await metricValue(exporter.metrics.exported)) === N);
    assert.equal(env.standIn.received().length, N);
    const status = exporter.status();
    assert.equal(status.status, 'ok');
    assert.equal(status.lag, 0);
    assert.equal(status.last_error, undefined);
    assert.ok(status.last_success !== null && Date.parse(status.last_success) / 1000 >= before - 1);
    assert.ok((await metricValue(exporter.metrics.lastSuccess)) >= before - 1);
    assert.equal(await metricValue(exporter.metrics.exported), N);
    assert.ok((await metricValue(exporter.metrics.failures, { reason: 'server_error' })) >= 1);
    const text = await registry.metrics();
    for (const name of ['kgents_exporter_exported_total', 'kgents_exporter_failures_total', 'kgents_exporter_lag_events', 'kgents_exporter_last_success_timestamp_seconds', 'kgents_exporter_dead_lettered_total']) {
      assert.match(text, new RegExp(`# TYPE ${name} `));
    }
    t.diagnostic(`lag ${N} -> 0 in ${drained.toFixed(0)} ms after the gauge first showed the backlog`);
  } finally {
    await env.cleanup();
  }
});

void test('status and helpers: disabled status, backoff bounds, CloudEvent checks, health-registry compatible type', () => {
  const disabled: ComponentStatus = disabledExporterStatus('OPENMETER_URL is not set');
  assert.deepEqual(disabled, { status: 'disabled', lag: null, last_success: null, detail: 'OPENMETER_URL is not set' });
  const asComponent = (s: ExporterStatus): ComponentStatus => s;
  assert.equal(asComponent(disabledExporterStatus('x')).status, 'disabled');
  for (let attempt = 0; attempt < 40; attempt++) {
    const d = backoffDelay(attempt, 250, 30_000);
    assert.ok(d >= 0 && d < Math.min(30_000, 250 * 2 ** attempt));
  }
  assert.equal(backoffDelay(3, 250, 30_000, () => 0.5), 1000);
  assert.equal(backoffDelay(20, 250, 30_000, () => 0.999_999), 29_999);
  assert.deepEqual(checkCloudEvent(JSON.stringify(makeEvent('t', 'x', 'id-1'))), { ok: true, id: 'id-1' });
  assert.equal(checkCloudEvent(JSON.stringify({ ...makeEvent(), time: 'yesterday' })).ok, false);
  const shared = new Registry();
  assert.equal(new ExporterMetrics(shared).exported, new ExporterMetrics(shared).exported, 'a second exporter on one registry reuses the series');
});

void test('the durable consumer is created with explicit acks and unlimited deliveries, and its settings are updated in place', async () => {
  const env = await startEnv();
  try {
    const first = env.exporter({ ackWaitMs: 60_000, batchSize: 10 });
    first.start();
    await waitFor('consumer created', async () => env.consumerInfo().then(() => true, () => false));
    const created = (await env.consumerInfo()).config;
    assert.equal(created.ack_policy, 'explicit');
    assert.equal(created.deliver_policy, 'all');
    assert.equal(created.max_deliver, -1);
    assert.equal(created.ack_wait, 60_000_000_000);
    assert.equal(created.max_ack_pending, 40, 'four batches');
    await first.stop(0);

    const second = env.exporter({ ackWaitMs: 30_000, batchSize: 50 });
    second.start();
    await waitFor('consumer updated', async () => (await env.consumerInfo()).config.ack_wait === 30_000_000_000);
    assert.equal((await env.consumerInfo()).config.max_ack_pending, 200);
    await publishEvents(env.js, 5);
    await waitFor('still exports', () => env.standIn.received().length === 5);
  } finally {
    await env.cleanup();
  }
});
