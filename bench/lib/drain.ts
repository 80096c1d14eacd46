import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { FallbackQueue } from '../../src/adapters/disk/fallback-queue.js';
import { connectNats } from '../../src/adapters/nats/connection.js';
import { JetStreamUsagePublisher } from '../../src/adapters/nats/usage-publisher.js';
import { CircuitBreaker } from '../../src/domain/metering/circuit-breaker.js';
import { DurableMeter } from '../../src/domain/metering/durable-meter.js';
import { usageEvent } from '../../src/domain/metering/usage-event.js';

export interface DrainFigures {
  readonly events: number;
  /** Appending them to the fallback queue (64 concurrent appenders, group commit), events/s. */
  readonly appendPerSec: number;
  /** From drainer start to an empty queue, every event acknowledged by JetStream, events/s. */
  readonly drainPerSec: number;
  readonly drainMs: number;
}

/**
 * The fallback queue end to end, as the service runs it: `events` usage events are appended (as
 * during an outage), then the meter's drainer publishes them to the USAGE stream of the bench's
 * nats-server (batches of 512 in flight, cursor committed per batch) until the queue is empty.
 */
export async function benchDrain(natsUrl: string, parentDir: string, events: number): Promise<DrainFigures> {
  const dir = mkdtempSync(join(parentDir, 'drain-'));
  const nats = await connectNats([natsUrl], { name: 'bench-drain' });
  const queue = await FallbackQueue.open(join(dir, 'q'), { lingerMs: 1 });
  const breaker = new CircuitBreaker({ failureThreshold: 5, resetTimeoutMs: 30_000, successThreshold: 3 });
  const publisher = new JetStreamUsagePublisher(nats, 5000);
  const meter = new DurableMeter(publisher, queue, breaker, { mode: 'durable' });
  try {
    const encoder = new TextEncoder();
    const now = new Date();
    const payloads = Array.from({ length: events }, (_, i) => encoder.encode(JSON.stringify(usageEvent({
      id: `bench-drain-${now.getTime()}-${i}`, type: 'agentese.invoke', tenant: 'bench-drain', time: now,
      data: { path: 'world.house.manifest', aspect: 'manifest', tokens: 57, status: 200, latency_ms: 0.4, key_prefix: 'benchdrn', request_id: `r${i}` },
    }))));
    const appendStarted = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: 64 }, async () => {
      while (next < payloads.length) {
        const p = payloads[next++];
        if (p) await queue.append(p, now.getTime());
      }
    }));
    const appendMs = performance.now() - appendStarted;
    const drainStarted = performance.now();
    meter.start();
    const drained = await meter.drained(120_000);
    const drainMs = performance.now() - drainStarted;
    if (!drained) throw new Error(`fallback queue not drained within 120 s (${queue.depth} left)`);
    return { events, appendPerSec: Math.round(events / (appendMs / 1000)), drainPerSec: Math.round(events / (drainMs / 1000)), drainMs: Math.round(drainMs) };
  } finally {
    await meter.stop();
    breaker.close();
    await queue.close();
    await nats.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
