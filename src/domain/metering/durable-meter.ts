import { setTimeout as sleep } from 'node:timers/promises';
import type { CircuitBreaker } from './circuit-breaker.js';
import {
  MeteringUnavailableError, type DurableQueue, type EventPublisher, type MeterStatus, type RecordOutcome, type UsageMeter,
} from './ports.js';
import type { UsageEvent } from './usage-event.js';

export interface DurableMeterOptions {
  readonly mode: 'durable' | 'async';
  /** Events published per drain round; they are in flight together. */
  readonly drainBatch?: number;
  /** Retry-After for ERR_METERING_UNAVAILABLE. */
  readonly retryAfterS?: number;
  /** Pause between probes or failed drain rounds. */
  readonly retryPauseMs?: number;
}

export interface MeterHooks {
  onRecorded?(outcome: RecordOutcome | 'refused'): void;
  onDrained?(events: number, duplicates: number): void;
  onUndeliverable?(reason: string): void;
  log?: { warn(fields: Record<string, unknown>, msg: string): void; error(fields: Record<string, unknown>, msg: string): void; info(fields: Record<string, unknown>, msg: string): void };
}

const decoder = new TextDecoder();

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

  async record(event: UsageEvent): Promise<RecordOutcome> {
    if (this.options.mode === 'async') {
      this.buffer.push(event);
      this.flushing ??= this.flushBuffer();
      this.hooks.onRecorded?.('buffered');
      return 'buffered';
    }
    const outcome = await this.recordDurably(event);
    this.hooks.onRecorded?.(outcome);
    return outcome;
  }

  private async recordDurably(event: UsageEvent): Promise<'published' | 'queued'> {
    // Buffer.from, not TextEncoder: ~4x cheaper for a small string (a Buffer is a Uint8Array).
    const payload = Buffer.from(JSON.stringify(event), 'utf8');
    if (this.publisher && this.breaker.state === 'closed') {
      try {
        await this.publisher.publish(event, payload);
        this.breaker.recordSuccess();
        return 'published';
      } catch (err) {
        // The publish may still have landed (an ack lost to a timeout): the queued copy carries the
        // same id, so JetStream drops it as a duplicate when it is drained.
        this.breaker.recordFailure(describe(err));
      }
    }
    try {
      await this.queue.append(payload, Date.parse(event.time));
    } catch (err) {
      this.hooks.onRecorded?.('refused');
      const full = err instanceof Error && err.name === 'QueueFullError';
      throw new MeteringUnavailableError(full
        ? 'The event bus is unavailable and the fallback queue is full.'
        : `The event bus is unavailable and the fallback queue cannot be written: ${describe(err)}`, this.retryAfterS);
    }
    this.wakeDrainer?.();
    return 'queued';
  }

  /** Async mode: events already answered for are made durable in the background, in order. */
  private async flushBuffer(): Promise<void> {
    try {
      while (this.buffer.length > 0) {
        const batch = this.buffer.splice(0, this.drainBatch);
        await Promise.all(batch.map(async (e) => {
          try {
            await this.recordDurably(e);
          } catch (err) {
            this.hooks.log?.error({ event_id: e.id, error: describe(err) }, 'async metering: usage event could not be made durable and is lost');
            this.hooks.onUndeliverable?.('async_lost');
          }
        }));
      }
    } finally {
      this.flushing = undefined;
    }
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
    const events = batch.records.map((r) => this.decode(r.payload));
    const results = await Promise.allSettled(events.map((e, i) => {
      const record = batch.records[i];
      return e && record ? publisher.publish(e, record.payload) : Promise.resolve({ duplicate: false });
    }));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) {
      this.breaker.recordFailure(`drain: ${describe(failure.reason)}`);
      await this.wait(this.retryPauseMs);
      return;
    }
    await this.queue.commit(batch.end);
    this.breaker.recordSuccess();
    const duplicates = results.filter((r) => r.status === 'fulfilled' && r.value.duplicate).length;
    this.hooks.onDrained?.(batch.records.length, duplicates);
  }

  private decode(payload: Uint8Array): UsageEvent | undefined {
    try {
      const event = JSON.parse(decoder.decode(payload)) as UsageEvent;
      if (typeof event.id === 'string' && typeof event.subject === 'string' && typeof event.type === 'string') return event;
    } catch {
      // fall through
    }
    this.hooks.onUndeliverable?.('malformed');
    this.hooks.log?.error({ bytes: payload.length }, 'fallback queue: a record is not a usage event; skipped');
    return undefined;
  }
}
