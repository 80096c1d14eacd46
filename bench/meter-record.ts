/**
 * `node dist/bench/meter-record.js [--events N] [--per-turn K] [--rounds R]`: the usage meter's own
 * cost per event, in process: `record()` of N events, K per event-loop turn (as concurrent requests
 * would), against a publisher that acknowledges at once, so no NATS, disk or HTTP is in the figure.
 * Printed: µs per event for each round, and for building + serialising the event alone.
 */
import { parseArgs } from 'node:util';
import { CircuitBreaker } from '../src/domain/metering/circuit-breaker.js';
import { DurableMeter } from '../src/domain/metering/durable-meter.js';
import type { DurableQueue, EventPublisher } from '../src/domain/metering/ports.js';
import { usageEvent, usageEventId, type UsageEvent } from '../src/domain/metering/usage-event.js';

const { values } = parseArgs({ options: { events: { type: 'string' }, 'per-turn': { type: 'string' }, rounds: { type: 'string' } } });
const events = Number(values.events ?? 200_000);
const perTurn = Number(values['per-turn'] ?? 10);
const rounds = Number(values.rounds ?? 3);

const publisher: EventPublisher = { publish: () => Promise.resolve({ duplicate: false }), probe: () => Promise.resolve() };
const queue: DurableQueue<number> = {
  append: () => Promise.resolve(),
  readBatch: () => Promise.resolve({ records: [], end: 0 }),
  commit: () => Promise.resolve(),
  depth: 0,
  bytes: 0,
  oldestTimestamp: undefined,
};
const breaker = new CircuitBreaker({ failureThreshold: 5, resetTimeoutMs: 1000, successThreshold: 1 });
const meter = new DurableMeter(publisher, queue, breaker, { mode: 'durable' });

function makeEvent(i: number): UsageEvent {
  return usageEvent({
    id: usageEventId('bench', undefined), type: 'agentese.invoke', tenant: 'bench', time: new Date(),
    data: { path: 'world.house.manifest', aspect: 'manifest', tokens: 57, status: 200, latency_ms: 0.41, key_prefix: 'benchkey', request_id: `req-${i}` },
  });
}

async function recordRound(): Promise<number> {
  const started = process.hrtime.bigint();
  for (let i = 0; i < events; i += perTurn) {
    const turn: Promise<unknown>[] = [];
    for (let j = 0; j < perTurn; j++) turn.push(meter.record(makeEvent(i + j)));
    await Promise.all(turn);
  }
  return Number(process.hrtime.bigint() - started) / events / 1000;
}

function buildRound(): number {
  const started = process.hrtime.bigint();
  let bytes = 0;
  for (let i = 0; i < events; i++) bytes += JSON.stringify(makeEvent(i)).length;
  if (bytes === 0) throw new Error('unreachable');
  return Number(process.hrtime.bigint() - started) / events / 1000;
}

process.stdout.write(`meter record(): ${events} events, ${perTurn} per turn, publisher acknowledging at once (node ${process.version})\n`);
for (let r = 1; r <= rounds; r++) {
  const record = await recordRound();
  const build = buildRound();
  process.stdout.write(`round ${r}: record() ${record.toFixed(2)} µs/event; building + JSON.stringify alone ${build.toFixed(2)} µs/event\n`);
}
breaker.close();
