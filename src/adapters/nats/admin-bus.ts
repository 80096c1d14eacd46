import type { Subscription } from '@nats-io/transport-node';
import type { NatsConnection } from './connection.js';

/** Core NATS subject (not captured by any stream) every API instance answers admin requests on. */
export const BUS_PROBE_SUBJECT = 'kgents.admin.bus.probe';

export interface ProbeReply {
  readonly instance: string;
  readonly circuit: string;
  readonly fallback_queue_depth: number;
}

/** Each API instance: on request, force the breaker to probe now and reply with its state. */
export function serveBusProbe(connection: NatsConnection, instance: string, probe: () => Omit<ProbeReply, 'instance'>): Subscription {
  return connection.nc.subscribe(BUS_PROBE_SUBJECT, {
    callback: (err, msg) => {
      if (err) return;
      msg.respond(JSON.stringify({ instance, ...probe() }));
    },
  });
}

/** The operator's side: asks every instance at once and collects the replies for `waitMs`. */
export async function requestBusProbe(connection: NatsConnection, waitMs = 1000): Promise<ProbeReply[]> {
  const replies: ProbeReply[] = [];
  const iter = await connection.nc.requestMany(BUS_PROBE_SUBJECT, '', { maxWait: waitMs, strategy: 'timer' });
  for await (const msg of iter) {
    try {
      replies.push(msg.json<ProbeReply>());
    } catch {
      // not one of ours
    }
  }
  return replies;
}
