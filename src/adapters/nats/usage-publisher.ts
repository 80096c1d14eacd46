import { jetstreamManager } from '@nats-io/jetstream';
import { createInbox, headers, type Msg, type Subscription } from '@nats-io/transport-node';
import { asError } from '../../errors/as-error.js';
import type { NatsConnection } from './connection.js';
import type { EventPublisher } from '../../domain/metering/ports.js';
import type { UsageEvent } from '../../domain/metering/usage-event.js';
import { USAGE_STREAM, usageSubject } from './streams.js';

export interface PublishAck {
  readonly seq: number;
  readonly duplicate: boolean;
}

/** A JetStream publish that got no acknowledgement within the timeout; it may still have landed. */
export class PublishTimeoutError extends Error {
  override readonly name = 'PublishTimeoutError';
}

/** JetStream refused the message (no stream for the subject, wrong expected stream, storage full...). */
export class PublishRejectedError extends Error {
  override readonly name = 'PublishRejectedError';
}

interface Pending {
  readonly resolve: (ack: PublishAck) => void;
  readonly reject: (err: Error) => void;
  readonly deadline: number;
}

interface AckBody {
  stream?: string;
  seq?: number;
  duplicate?: boolean;
  error?: { code?: number; err_code?: number; description?: string };
}

const decoder = new TextDecoder();
const PLAIN_ACK = new RegExp(`^\\{"stream":"${USAGE_STREAM}","seq":(\\d{1,15})\\}$`);

/**
 * Publishes usage events to JetStream with the event id as Nats-Msg-Id (and Nats-Expected-Stream),
 * waiting for the stream's acknowledgement, and probes the stream.
 *
 * Not `js.publish`: nats.js builds, per request, a reply token, a timer with its own TimeoutError,
 * a RequestError for async stack traces, a "cancelled" RequestError when the request settles, and a
 * Promise.race, and that was the largest cost of a metered call in the profile. Here every publish
 * shares one wildcard reply subscription (`<inbox>.<n>`), pending acks wait in a Map in publish order,
 * and one sweep timer fails those past their deadline. The semantics are js.publish's: resolve on
 * the stream's ack, reject on an error reply, a no-responders status (no stream bound) or a timeout.
 * (Publishing the events of one event-loop turn together, in one socket write, was tried on
 * 2026-12-01: no measurable CPU difference on the bench, a turn more latency; not kept.)
 */
export class JetStreamUsagePublisher implements EventPublisher {
  private readonly pending = new Map<string, Pending>();
  private readonly inbox: string;
  private subscription: Subscription | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly sweepEveryMs: number;
  private next = 0;

  constructor(private readonly connection: NatsConnection, private readonly timeoutMs: number) {
    this.inbox = `${createInbox()}.`;
    // Timeouts fire at most one tick late; a tick is cheap (it stops at the first live entry).
    this.sweepEveryMs = Math.max(5, Math.min(100, Math.floor(timeoutMs / 10)));
  }

  get connected(): boolean {
    return this.connection.isUp;
  }

  publish(event: Pick<UsageEvent, 'id' | 'subject' | 'type'>, payload: Uint8Array): Promise<PublishAck> {
    return new Promise<PublishAck>((resolve, reject) => {
      const nc = this.connection.nc;
      try {
        this.subscription ??= this.subscribe();
        const token = (this.next++).toString(36);
        const h = headers();
        h.set('Nats-Msg-Id', event.id);
        h.set('Nats-Expected-Stream', USAGE_STREAM);
        nc.publish(usageSubject(event.subject, event.type), payload, { reply: this.inbox + token, headers: h });
        this.pending.set(token, { resolve, reject, deadline: performance.now() + this.timeoutMs });
        // Runs while anything waits (stopped by the sweep that finds nothing): no timer per publish.
        if (!this.sweeper) {
          this.sweeper = setInterval(() => this.sweep(), this.sweepEveryMs);
          this.sweeper.unref();
        }
      } catch (err) {
        reject(asError(err));
      }
    });
  }

  /** A cheap JetStream round trip that only succeeds when the USAGE stream has a leader. */
  async probe(): Promise<void> {
    const jsm = await jetstreamManager(this.connection.nc, { timeout: this.timeoutMs });
    await jsm.streams.info(USAGE_STREAM);
  }

  /** Pending acks in flight (for tests). */
  get inFlight(): number {
    return this.pending.size;
  }

  private subscribe(): Subscription {
    const sub = this.connection.nc.subscribe(`${this.inbox}*`, { callback: (err, msg) => this.onReply(err, msg) });
    // The subscription ends only with the connection: whatever still waits cannot be answered.
    void sub.closed.then(() => {
      if (this.subscription === sub) this.subscription = undefined;
      this.failAll('NATS connection closed before the JetStream acknowledgement arrived');
    }, () => undefined);
    return sub;
  }

  private onReply(err: Error | null, msg: Msg): void {
    if (err) return;
    const token = msg.subject.slice(this.inbox.length);
    const waiting = this.pending.get(token);
    if (!waiting) return; // timed out already
    this.pending.delete(token);
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      waiting.reject(new PublishRejectedError(`no JetStream stream answered for the subject (is the ${USAGE_STREAM} stream created?)`));
      return;
    }
    const text = decoder.decode(msg.data);
    // The usual ack, `{"stream":"USAGE","seq":N}`, read without JSON.parse; anything else is parsed in full.
    const plain = PLAIN_ACK.exec(text);
    if (plain) {
      waiting.resolve({ seq: Number(plain[1]), duplicate: false });
      return;
    }
    let body: AckBody;
    try {
      body = JSON.parse(text) as AckBody;
    } catch {
      waiting.reject(new PublishRejectedError('invalid JetStream ack: not JSON'));
      return;
    }
    if (body.error) {
      waiting.reject(new PublishRejectedError(`JetStream refused the message: ${body.error.description ?? 'unknown error'} (${body.error.err_code ?? body.error.code ?? '?'})`));
    } else if (typeof body.stream !== 'string' || body.stream === '' || typeof body.seq !== 'number') {
      waiting.reject(new PublishRejectedError('invalid JetStream ack response'));
    } else {
      waiting.resolve({ seq: body.seq, duplicate: body.duplicate === true });
    }
  }

  /** The timeout is the same for every publish, so the Map (insertion order) is in deadline order. */
  private sweep(): void {
    const now = performance.now();
    for (const [token, waiting] of this.pending) {
      if (waiting.deadline > now) break;
      this.pending.delete(token);
      waiting.reject(new PublishTimeoutError(`no JetStream acknowledgement within ${this.timeoutMs} ms`));
    }
    if (this.pending.size === 0) this.stopSweeper();
  }

  private stopSweeper(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  private failAll(reason: string): void {
    const waiting = [...this.pending.values()];
    this.pending.clear();
    this.stopSweeper();
    for (const w of waiting) w.reject(new PublishRejectedError(reason));
  }
}
