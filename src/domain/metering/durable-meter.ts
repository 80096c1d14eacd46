import { setTimeout as sleep } from 'node:timers/promises';
import { asError } from '../../errors/as-error.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import {
  MeteringUnavailableError, type DurableQueue, type EventPublisher, type MeterStatus, type RecordOutcome, type UsageMeter,
} from './ports.js';
import type { UsageEvent } from './usage-event.js';
import { decodeUsageMessage, encodeUsageMessage, isUsageEvent, usageEventJsonBound, usageMessageId } from './usage-message.js';

export interface DurableMeterOptions {
  readonly mode: 'durable' | 'async';
  /** Events published per drain round; they are in flight together. */
  readonly drainBatch?: number;
  /** Retry-After for ERR_METERING_UNAVAILABLE. */
  readonly retryAfterS?: number;
  /** Pause between probes or failed drain rounds. */
  readonly retryPauseMs?: number;
  /**
   * Most events in one JetStream message (1 turns batching off). The events recorded in one
   * event-loop turn for one subject share a message and its acknowledgement.
   */
  readonly maxBatchEvents?: number;
  /**
   * Most event JSON in one message, in UTF-16 units as bounded by usageEventJsonBound (at most 3x
   * that in bytes: the 256 Ki default stays under NATS' 1 MiB max_payload and the fallback queue's
   * 1 MiB records).
   */
  readonly maxBatchBytes?: number;
}

/** Options of one record() call. */
export interface RecordOptions {
  /**
   * The event id is not random (it comes from an Idempotency-Key, so a retried request records the
   * same id again): it travels in a message of its own, whose dedup key is that id.
   */
  readonly alone?: boolean;
}

/** The events of one turn for one subject, sent as one message; every caller awaits the same result. */
interface OpenBatch {
  readonly events: UsageEvent[];
  /** Sum of the events' usageEventJsonBound, plus one per separator. */
  bytes: number;
  readonly result: Promise<'published' | 'queued'>;
  settle(outcome: 'published' | 'queued' | Error): void;
}

export interface MeterHooks {
  onRecorded?(outcome: RecordOutcome | 'refused'): void;
  onDrained?(events: number, duplicates: number): void;
  onUndeliverable?(reason: string): void;
  log?: { warn(fields: Record<string, unknown>, msg: string): void; error(fields: Record<string, unknown>, msg: string): void; info(fields: Record<string, unknown>, msg: string): void };
}

const decoder = new TextDecoder();
const BUFFERED: Promise<RecordOutcome> = Promise.resolve('buffered');

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Makes every billable call's usage event durable before the call is answered: published to
 * JetStream while the circuit is closed, otherwise (or when a publish fails) appended to the
 * on-disk queue, which a drainer publishes back in order with each event's own id, so JetStream's
 * duplicate window drops any event that had in fact got through.
 */
export class DurableMeter<P> implements UsageMeter {
  private stopped = false;
  private wakeDrainer: (() => void) | undefined;
  private drainer: Promise<void> | undefined;
  private readonly buffer: UsageEvent[] = [];
  private flushing: Promise<void> | undefined;
  private readonly drainBatch: number;
  private readonly retryAfterS: number;
  private readonly retryPauseMs: number;
  private readonly maxBatchEvents: number;
  private readonly maxBatchBytes: number;
  private readonly open = new Map<string, OpenBatch>();
  private flushScheduled = false;

  constructor(
    private readonly publisher: EventPublisher | undefined,
    private readonly queue: DurableQueue<P>,
    readonly breaker: CircuitBreaker,
    private readonly options: DurableMeterOptions,
    private readonly hooks: MeterHooks = {},
  ) {
    this.drainBatch = options.drainBatch ?? 512;
    this.retryAfterS = options.retryAfterS ?? 5;
    this.retryPauseMs = options.retryPauseMs ?? 250;
    this.maxBatchEvents = Math.max(1, Math.floor(options.maxBatchEvents ?? 128));
    this.maxBatchBytes = Math.max(1, Math.floor(options.maxBatchBytes ?? 256 * 1024));
    if (!publisher) breaker.trip('no event bus configured');
    breaker.onTransition(() => this.wakeDrainer?.());
  }

  status(): MeterStatus {
    const oldest = this.queue.oldestTimestamp;
    return {
      circuit: this.breaker.state,
      fallback_queue_depth: this.queue.depth,
      fallback_queue_bytes: this.queue.bytes,
      fallback_queue_oldest_age_s: oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest) / 1000),
    };
  }

  /** Not async: a billable call's event costs one `then` with handlers made once, not an async function. */
  record(event: UsageEvent, options: RecordOptions = {}): Promise<RecordOutcome> {
    if (this.options.mode === 'async') {
      this.buffer.push(event);
      this.flushing ??= this.flushBuffer();
      this.hooks.onRecorded?.('buffered');
      return BUFFERED;
    }
    let made: Promise<'published' | 'queued'>;
    try {
      made = options.alone === true || !this.batching() ? this.recordDurably([event]) : this.join(event);
    } catch (err) {
      made = Promise.reject(asError(err));
    }
    return made.then(this.recorded, this.refused);
  }

  private readonly recorded = (outcome: 'published' | 'queued'): RecordOutcome => {
    this.hooks.onRecorded?.(outcome);
    return outcome;
  };

  private readonly refused = (err: unknown): never => {
    this.hooks.onRecorded?.('refused');
    throw err;
  };

  /** Batching only pays while events are being published; with the circuit open they go to disk one by one, as before. */
  private batching(): boolean {
    return this.maxBatchEvents > 1 && this.publisher !== undefined && this.breaker.state === 'closed';
  }

  /** Adds the event to this turn's message for its subject; sent at the end of the turn, or now when full. */
  private join(event: UsageEvent): Promise<'published' | 'queued'> {
    const key = subjectKey(event);
    const size = usageEventJsonBound(event) + 1;
    let batch = this.open.get(key);
    if (batch && batch.bytes + size > this.maxBatchBytes) {
      this.open.delete(key);
      this.send(batch);
      batch = undefined;
    }
    if (!batch) {
      batch = openBatch();
      this.open.set(key, batch);
    }
    batch.events.push(event);
    batch.bytes += size;
    if (batch.events.length >= this.maxBatchEvents) {
      this.open.delete(key);
      this.send(batch);
    } else if (!this.flushScheduled) {
      this.flushScheduled = true;
      // setImmediate runs right after the poll phase in which this turn's requests were read
      setImmediate(() => this.flushOpen());
    }
    return batch.result;
  }

  private flushOpen(): void {
    this.flushScheduled = false;
    const batches = [...this.open.values()];
    this.open.clear();
    for (const batch of batches) this.send(batch);
  }

  private send(batch: OpenBatch): void {
    this.recordDurably(batch.events).then((outcome) => batch.settle(outcome), (err: unknown) => {
      batch.settle(asError(err));
    });
  }

  /**
   * Makes one message of events durable: published to JetStream while the circuit is closed,
   * otherwise (or when the publish fails) appended to the fallback queue as one record, which the
   * drainer later publishes with the same message id, so JetStream drops it if the first publish had
   * in fact got through. Throws MeteringUnavailableError when neither works.
   */
  private async recordDurably(events: readonly UsageEvent[]): Promise<'published' | 'queued'> {
    const payload = encodeUsageMessage(events);
    const first = events[0];
    if (!first) throw new RangeError('no events to record');
    if (this.publisher && this.breaker.state === 'closed') {
      try {
        await this.publisher.publish({ id: usageMessageId(events), subject: first.subject, type: first.type }, payload);
        this.breaker.recordSuccess();
        return 'published';
      } catch (err) {
        // The publish may still have landed (an ack lost to a timeout): the queued copy carries the
        // same id, so JetStream drops it as a duplicate when it is drained.
        this.breaker.recordFailure(describe(err));
      }
    }
    try {
      await this.queue.append(payload, Date.parse(first.time));
    } catch (err) {
      const full = err instanceof Error && err.name === 'QueueFullError';
      throw new MeteringUnavailableError(full
        ? 'The event bus is unavailable and the fallback queue is full.'
        : `The event bus is unavailable and the fallback queue cannot be written: ${describe(err)}`, this.retryAfterS);
    }
    this.wakeDrainer?.();
    return 'queued';
  }

  /** Async mode: events already answered for are made durable in the background, in order, a message per subject and batch. */
  private async flushBuffer(): Promise<void> {
    try {
      while (this.buffer.length > 0) {
        const taken = this.buffer.splice(0, this.drainBatch);
        await Promise.all(this.group(taken).map(async (events) => {
          try {
            await this.recordDurably(events);
          } catch (err) {
            for (const e of events) {
              this.hooks.onRecorded?.('refused');
              this.hooks.log?.error({ event_id: e.id, error: describe(err) }, 'async metering: usage event could not be made durable and is lost');
              this.hooks.onUndeliverable?.('async_lost');
            }
          }
        }));
      }
    } finally {
      this.flushing = undefined;
    }
  }

  /** Events in messages of one subject and type each, in order, within the batch limits. */
  private group(events: readonly UsageEvent[]): UsageEvent[][] {
    const bySubject = new Map<string, { events: UsageEvent[]; bytes: number }[]>();
    for (const e of events) {
      const key = subjectKey(e);
      const size = usageEventJsonBound(e) + 1;
      const lists = bySubject.get(key) ?? [];
      const last = lists[lists.length - 1];
      if (last && last.events.length < this.maxBatchEvents && last.bytes + size <= this.maxBatchBytes) {
        last.events.push(e);
        last.bytes += size;
      } else {
        lists.push({ events: [e], bytes: size });
      }
      bySubject.set(key, lists);
    }
    return [...bySubject.values()].flat().map((list) => list.events);
  }

  /** Starts the drainer: it runs until stop(), publishing queued events whenever the circuit allows. */
  start(): void {
    this.drainer ??= this.drainLoop();
  }

  /** Stops draining and flushes the async buffer; queued events stay on disk for the next start. */
  async stop(): Promise<void> {
    while (this.flushing) await this.flushing;
    this.stopped = true;
    this.wakeDrainer?.();
    await this.drainer;
  }

  /** Resolves when the queue is empty (or the timeout passes); for tests and the drain benchmark. */
  async drained(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.depth > 0 || this.buffer.length > 0 || this.flushing) {
      if (Date.now() > deadline) return false;
      await sleep(20);
    }
    return true;
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeDrainer = done;
    });
  }

  private async drainLoop(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.drainOnce();
      } catch (err) {
        this.hooks.log?.error({ error: describe(err) }, 'fallback queue drainer: unexpected error');
        await this.wait(this.retryPauseMs);
      }
    }
  }

  private async drainOnce(): Promise<void> {
    const publisher = this.publisher;
    if (!publisher || this.breaker.state === 'open') {
      await this.wait(1000);
      return;
    }
    if (this.queue.depth === 0) {
      if (this.breaker.state === 'half_open') {
        try {
          await publisher.probe();
          this.breaker.recordSuccess();
        } catch (err) {
          this.breaker.recordFailure(`probe: ${describe(err)}`);
        }
        if (this.breaker.state === 'half_open') await this.wait(this.retryPauseMs);
        return;
      }
      await this.wait(1000);
      return;
    }
    const batch = await this.queue.readBatch(this.drainBatch);
    const messages = batch.records.map((r) => this.decode(r.payload));
    const results = await Promise.allSettled(messages.map((events, i) => {
      const record = batch.records[i];
      const first = events?.[0];
      return events && first && record
        ? publisher.publish({ id: usageMessageId(events), subject: first.subject, type: first.type }, record.payload)
        : Promise.resolve({ duplicate: false });
    }));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) {
      this.breaker.recordFailure(`drain: ${describe(failure.reason)}`);
      await this.wait(this.retryPauseMs);
      return;
    }
    await this.queue.commit(batch.end);
    this.breaker.recordSuccess();
    let events = 0;
    let duplicates = 0;
    results.forEach((r, i) => {
      const n = messages[i]?.length ?? 0;
      events += n;
      if (r.status === 'fulfilled' && r.value.duplicate) duplicates += n;
    });
    this.hooks.onDrained?.(events, duplicates);
  }

  /** The events of a queue record (one message: an event or a batch); undefined when malformed. */
  private decode(payload: Uint8Array): UsageEvent[] | undefined {
    try {
      const events = decodeUsageMessage(decoder.decode(payload));
      if (events.every(isUsageEvent)) return events;
    } catch {
      // fall through
    }
    this.hooks.onUndeliverable?.('malformed');
    this.hooks.log?.error({ bytes: payload.length }, 'fallback queue: a record is not a usage event or batch; skipped');
    return undefined;
  }
}

/** Events of one tenant and type go to one subject, so they may share a message. */
function subjectKey(e: Pick<UsageEvent, 'subject' | 'type'>): string {
  return `${e.subject}\u0000${e.type}`;
}

function openBatch(): OpenBatch {
  let settle: OpenBatch['settle'] = () => undefined;
  const result = new Promise<'published' | 'queued'>((resolve, reject) => {
    settle = (outcome) => (outcome instanceof Error ? reject(outcome) : resolve(outcome));
  });
  // every caller awaits it; this keeps a batch nobody awaits any more from being an unhandled rejection
  result.catch(() => undefined);
  return { events: [], bytes: 0, result, settle };
}
