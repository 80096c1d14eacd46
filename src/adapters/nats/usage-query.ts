import { DeliverPolicy, jetstream, type JsMsg } from '@nats-io/jetstream';
import type { UsageAggregate, UsageQuery } from '../../domain/metering/ports.js';
import type { UsageEvent } from '../../domain/metering/usage-event.js';
import { decodeUsageMessage } from '../../domain/metering/usage-message.js';
import type { NatsConnection } from './connection.js';
import { USAGE_STREAM, USAGE_SUBJECT_PREFIX } from './streams.js';

/**
 * Aggregates a tenant's usage straight from the USAGE stream, so the figures agree exactly with
 * what is billed. Events are selected by their own `time`; the scan starts at `from` by storage time
 * and runs to the end of the stream, because an event that waited in a fallback queue is stored
 * later than it happened.
 */
export class StreamUsageQuery implements UsageQuery {
  constructor(private readonly connection: NatsConnection, private readonly batch = 1000) {}

  async aggregate(req: { tenant: string; from: Date; to: Date; groupBy: 'type' | 'path' | 'day' }): Promise<UsageAggregate> {
    const js = jetstream(this.connection.nc, { timeout: 5000 });
    const consumer = await js.consumers.get(USAGE_STREAM, {
      filter_subjects: `${USAGE_SUBJECT_PREFIX}.${req.tenant}.>`,
      deliver_policy: DeliverPolicy.StartTime,
      opt_start_time: req.from.toISOString(),
    });
    const groups = new Map<string, { events: number; tokens: number }>();
    const total = { events: 0, tokens: 0 };
    const fromMs = req.from.getTime();
    const toMs = req.to.getTime();
    const addEvent = (event: UsageEvent): void => {
      const at = Date.parse(event.time);
      if (!(at >= fromMs && at < toMs)) return;
      const key = req.groupBy === 'type' ? event.type : req.groupBy === 'path' ? event.data.path : event.time.slice(0, 10);
      const g = groups.get(key) ?? { events: 0, tokens: 0 };
      g.events += 1;
      g.tokens += event.data.tokens;
      groups.set(key, g);
      total.events += 1;
      total.tokens += event.data.tokens;
    };
    // a message holds one event or a batch of them (usage-message.ts)
    const add = (m: JsMsg): void => {
      let events: UsageEvent[];
      try {
        events = decodeUsageMessage(m.string());
      } catch {
        return;
      }
      for (const event of events) addEvent(event);
    };
    try {
      for (;;) {
        const messages = await consumer.fetch({ max_messages: this.batch, expires: 1000 });
        let got = 0;
        let pending = 1;
        for await (const m of messages) {
          got++;
          add(m);
          pending = m.info.pending;
        }
        if (got === 0 || pending === 0) break;
      }
    } finally {
      await consumer.delete().catch(() => undefined);
    }
    return {
      tenant: req.tenant,
      from: req.from.toISOString(),
      to: req.to.toISOString(),
      group_by: req.groupBy,
      total,
      groups: [...groups].sort(([a], [b]) => a.localeCompare(b)).map(([key, g]) => ({ key, ...g })),
    };
  }
}
