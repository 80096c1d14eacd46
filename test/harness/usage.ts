import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { USAGE_STREAM } from '../../src/adapters/nats/streams.js';
import type { UsageEvent } from '../../src/domain/metering/usage-event.js';
import { decodeUsageMessage } from '../../src/domain/metering/usage-message.js';

/**
 * Every event in USAGE (a message holds one event or a batch), in stream order, read with an ordered consumer on its own connection.
 * Retried whole until `withinMs`: right after a leader election JetStream API calls time out until the
 * cluster has elected its leaders again, which took more than four 5 s attempts on a loaded CI machine.
 */
export async function readAllUsage(servers: string | string[], withinMs = 60_000): Promise<UsageEvent[]> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    try {
      return await readOnce(servers);
    } catch (err) {
      if (Date.now() >= deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

async function readOnce(servers: string | string[]): Promise<UsageEvent[]> {
  const nc = await connect({ servers });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(USAGE_STREAM);
    const total = info.state.messages;
    const out: UsageEvent[] = [];
    if (total === 0) return out;
    const consumer = await jetstream(nc).consumers.get(USAGE_STREAM);
    const messages = await consumer.consume();
    for await (const m of messages) {
      out.push(...decodeUsageMessage(m.string()));
      if (m.info.pending === 0) break;
    }
    return out;
  } finally {
    await nc.close();
  }
}

/** Counts how often each value occurs; for loss/duplicate checks. */
export function tally(values: readonly string[]): { unique: number; duplicates: string[] } {
  const seen = new Map<string, number>();
  for (const v of values) seen.set(v, (seen.get(v) ?? 0) + 1);
  return { unique: seen.size, duplicates: [...seen].filter(([, n]) => n > 1).map(([v]) => v) };
}
