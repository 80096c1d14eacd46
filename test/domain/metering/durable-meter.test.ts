import { strict as assert } from 'node:assert';
import { after, describe, test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { CircuitBreaker } from '../../../src/domain/metering/circuit-breaker.js';
import { DurableMeter, type DurableMeterOptions } from '../../../src/domain/metering/durable-meter.js';
import type { DurableQueue, EventPublisher } from '../../../src/domain/metering/ports.js';
import { usageEvent, type UsageEvent } from '../../../src/domain/metering/usage-event.js';
import fc from 'fast-check';
import { decodeUsageMessage, encodeUsageMessage, usageEventJsonBound, usageMessageElements } from '../../../src/domain/metering/usage-message.js';

const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

/** Records every publish; fails while `failing` is set. Dedups by message id, as JetStream does. */
class FakeBus implements EventPublisher {
  readonly messages: { id: string; subject: string; type: string; events: UsageEvent[]; bytes: number }[] = [];
  readonly seen = new Set<string>();
  failing: Error | undefined;
  /** The publish lands but its ack is lost (a timeout). */
  loseAcks = false;

  publish(meta: Pick<UsageEvent, 'id' | 'subject' | 'type'>, payload: Uint8Array): Promise<{ duplicate: boolean }> {
    if (this.failing) return Promise.reject(this.failing);
    const duplicate = this.seen.has(meta.id);
    if (!duplicate) {
      this.seen.add(meta.id);
      this.messages.push({ ...meta, events: decodeUsageMessage(text(payload)), bytes: payload.length });
    }
    return this.loseAcks ? Promise.reject(new Error('no ack within 5000 ms')) : Promise.resolve({ duplicate });
  }

  probe(): Promise<void> {
    return this.failing ? Promise.reject(this.failing) : Promise.resolve();
  }

  get events(): UsageEvent[] {
    return this.messages.flatMap((m) => m.events);
  }
}

class MemoryQueue implements DurableQueue<number> {
  readonly records: Uint8Array[] = [];
  private committed = 0;
  full = false;

  append(payload: Uint8Array): Promise<void> {
    if (this.full) {
      const err = new Error('full');
      err.name = 'QueueFullError';
      return Promise.reject(err);
    }
    this.records.push(payload);
    return Promise.resolve();
  }

  readBatch(max: number): Promise<{ records: { payload: Uint8Array }[]; end: number }> {
    const records = this.records.slice(this.committed, this.committed + max).map((payload) => ({ payload }));
    return Promise.resolve({ records, end: this.committed + records.length });
  }

  commit(position: number): Promise<void> {
    this.committed = position;
    return Promise.resolve();
  }

  get depth(): number {
    return this.records.length - this.committed;
  }

  get bytes(): number {
    return 0;
  }

  get oldestTimestamp(): number | undefined {
    return undefined;
  }
}

let seq = 0;
function event(tenant = 'acme', type = 'agentese.invoke'): UsageEvent {
  seq++;
  return usageEvent({
    id: `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}`, type, tenant, time: new Date(),
    data: { path: 'world.house.manifest', aspect: 'manifest', tokens: 5, status: 200, latency_ms: 1, key_prefix: 'abcdefgh', request_id: `r${seq}` },
  });
}

const breakers: CircuitBreaker[] = [];
after(() => {
  for (const b of breakers) b.close();
});

function setup(options: Partial<DurableMeterOptions> = {}): { meter: DurableMeter<number>; bus: FakeBus; queue: MemoryQueue; breaker: CircuitBreaker; drained: number[] } {
  const bus = new FakeBus();
  const queue = new MemoryQueue();
  const breaker = new CircuitBreaker({ failureThreshold: 1, resetTimeoutMs: 60_000, successThreshold: 1 });
  breakers.push(breaker);
  const drained: number[] = [];
  const meter = new DurableMeter(bus, queue, breaker, { mode: 'durable', retryPauseMs: 10, ...options }, { onDrained: (n) => drained.push(n) });
  return { meter, bus, queue, breaker, drained };
}

/** The bus is back: probe at once, drain the queue to empty, stop the drainer. */
async function drainAll(meter: DurableMeter<number>, breaker: CircuitBreaker): Promise<void> {
  breaker.forceProbe('test');
  meter.start();
  assert.ok(await meter.drained(5000), 'the queue drained');
  await meter.stop();
}

describe('usage messages', () => {
  test('one event is a plain CloudEvents object, several are a JSON array; both decode to their events', () => {
    const [a, b] = [event(), event()];
    assert.equal(text(encodeUsageMessage([a])), JSON.stringify(a));
    const batch = text(encodeUsageMessage([a, b]));
    assert.equal(batch, `[${JSON.stringify(a)},${JSON.stringify(b)}]`);
    assert.deepEqual(decodeUsageMessage(batch), [a, b]);
    assert.deepEqual(decodeUsageMessage(JSON.stringify(a)), [a]);
    assert.deepEqual(usageMessageElements(batch), { elements: [a, b], batch: true });
    assert.deepEqual(usageMessageElements(JSON.stringify(a)), { elements: [a], batch: false });
  });

  test('an event\'s time is the ISO text of its millisecond, given as a Date or as a number, whatever came before', () => {
    const fields = { id: 'e', type: 'agentese.invoke', tenant: 'acme', data: event().data };
    for (const ms of [0, 1_764_547_200_123, 1_764_547_200_123, 1_764_547_200_124, 1_764_547_200_123, 253_402_300_799_999]) {
      const iso = new Date(ms).toISOString();
      assert.equal(usageEvent({ ...fields, time: ms }).time, iso);
      assert.equal(usageEvent({ ...fields, time: new Date(ms) }).time, iso);
    }
  });

  test('what is not an event or a batch of events is refused', () => {
    for (const bad of ['nope', '[]', '[1]', 'null', '"x"']) assert.throws(() => decodeUsageMessage(bad), SyntaxError, bad);
    assert.throws(() => usageMessageElements('{oops'), /not JSON/);
    assert.throws(() => usageMessageElements('[]'), /empty/);
    assert.throws(() => encodeUsageMessage([]), RangeError);
  });

  test('an event\'s JSON is never longer than its bound, whatever its strings and numbers hold', () => {
    const str = fc.string({ unit: 'binary', maxLength: 40 });
    const num = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(-Number.MAX_VALUE, Number.MIN_VALUE, -5e-324, 1e21, -1.234567890123456e-300));
    fc.assert(fc.property(str, str, str, str, str, str, fc.option(str), str, str, num, num, num,
      (id, source, type, subject, time, path, aspect, keyPrefix, requestId, tokens, status, latency) => {
        const e: UsageEvent = {
          specversion: '1.0', id, source, type, subject, time, datacontenttype: 'application/json',
          data: { path, aspect, tokens, status, latency_ms: latency, key_prefix: keyPrefix, request_id: requestId },
        };
        assert.ok(usageEventJsonBound(e) >= JSON.stringify(e).length);
      }), { numRuns: 2000 });
  });
});

describe('durable meter', () => {
  test('a turn\'s events beyond the byte limit go out as further messages, each within it, in order and none lost', async () => {
    const events = Array.from({ length: 8 }, () => event());
    // Three of the largest fit, four of the smallest do not (their sizes differ by a digit at most).
    const limit = 3 * Math.max(...events.map((e) => usageEventJsonBound(e) + 1));
    const { meter, bus } = setup({ maxBatchBytes: limit });
    const outcomes = await Promise.all(events.map((e) => meter.record(e)));
    assert.deepEqual(outcomes, Array(8).fill('published'));
    assert.deepEqual(bus.messages.map((m) => m.events.length), [3, 3, 2]);
    for (const m of bus.messages) assert.ok(m.bytes <= limit, `${m.bytes} <= ${limit}`);
    assert.deepEqual(bus.events, events);
  });

  test('the events recorded in one turn for one subject go out as one message whose id is the first event id, and every caller learns it was published', async () => {
    const { meter, bus } = setup();
    const acme = [event(), event(), event()];
    const other = event('globex');
    const outcomes = await Promise.all([...acme, other].map((e) => meter.record(e)));
    assert.deepEqual(outcomes, ['published', 'published', 'published', 'published']);
    assert.equal(bus.messages.length, 2, 'one message per subject');
    assert.deepEqual(bus.messages[0]?.events, acme);
    assert.equal(bus.messages[0]?.id, acme[0]?.id);
    assert.deepEqual(bus.messages[1]?.events, [other]);
  });

  test('events of later turns go in later messages, and a full batch is sent at once', async () => {
    const { meter, bus } = setup({ maxBatchEvents: 2 });
    const first = [event(), event(), event()];
    const p = Promise.all(first.map((e) => meter.record(e)));
    assert.equal(bus.messages.length, 1, 'the full batch of 2 left without waiting for the turn to end');
    await p;
    await meter.record(event());
    assert.deepEqual(bus.messages.map((m) => m.events.length), [2, 1, 1]);
  });

  test('an event marked alone (an Idempotency-Key id) gets a message of its own, so a retry is dropped as a duplicate', async () => {
    const { meter, bus } = setup();
    const idem = event();
    await Promise.all([meter.record(event()), meter.record(idem, { alone: true }), meter.record(event())]);
    assert.deepEqual(bus.messages.map((m) => m.events.length).sort(), [1, 2]);
    assert.equal(bus.messages.find((m) => m.events.length === 1)?.id, idem.id);
    await meter.record(idem, { alone: true });
    assert.equal(bus.events.filter((e) => e.id === idem.id).length, 1, 'the retry did not add a second copy');
  });

  test('a batch whose publish fails is queued as one record and drained with the same message id: no loss, and no duplicate when the first publish had landed', async () => {
    const { meter, bus, queue, breaker, drained } = setup();
    bus.loseAcks = true;
    const events = [event(), event(), event()];
    const outcomes = await Promise.all(events.map((e) => meter.record(e)));
    assert.deepEqual(outcomes, ['queued', 'queued', 'queued']);
    assert.equal(queue.depth, 1, 'the batch is one record');
    assert.equal(breaker.state, 'open');
    assert.equal(bus.events.length, 3, 'it had landed');

    bus.loseAcks = false;
    await drainAll(meter, breaker);
    assert.deepEqual(bus.events, events, 'exactly once, in order');
    assert.deepEqual(drained, [3], 'the drain counts events, not records');
  });

  test('with the circuit open every event is its own record, as before batching', async () => {
    const { meter, bus, queue, breaker } = setup();
    breaker.trip('test');
    const events = [event(), event(), event()];
    await Promise.all(events.map((e) => meter.record(e)));
    assert.equal(queue.depth, 3);
    bus.failing = undefined;
    await drainAll(meter, breaker);
    assert.deepEqual(bus.events, events);
  });

  test('when neither the bus nor the queue takes a batch, every caller of it is refused', async () => {
    const { meter, bus, queue } = setup();
    bus.failing = new Error('down');
    queue.full = true;
    const results = await Promise.allSettled([event(), event()].map((e) => meter.record(e)));
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected']);
    for (const r of results) if (r.status === 'rejected') assert.match(String(r.reason), /fallback queue is full/);
  });

  test('a queue record that is not a usage event or batch is skipped, the rest drains', async () => {
    const { meter, bus, queue, breaker } = setup();
    const good = event();
    await queue.append(Buffer.from('[1,2]'));
    await queue.append(encodeUsageMessage([good]));
    await drainAll(meter, breaker);
    await nextTurn();
    assert.deepEqual(bus.events, [good]);
  });
});
