import type { UsageEvent } from './usage-event.js';

export type CircuitState = 'closed' | 'open' | 'half_open';

/** Where a billable request's usage event goes. Resolves once the event is durable (per METERING_MODE). */
export interface UsageMeter {
  /**
   * `alone`: the event id is not random (derived from an Idempotency-Key, so a retry records it
   * again) and must be the dedup key of a message of its own.
   */
  record(event: UsageEvent, options?: { readonly alone?: boolean }): Promise<RecordOutcome>;
}

export type RecordOutcome = 'published' | 'queued' | 'buffered';

/** Thrown by UsageMeter.record when the event cannot be made durable: the request must not be served. */
export class MeteringUnavailableError extends Error {
  constructor(message: string, readonly retryAfterS: number) {
    super(message);
    this.name = 'MeteringUnavailableError';
  }
}

/** The metering pipeline's state for /health/saas and metrics. */
export interface MeterStatus {
  readonly circuit: CircuitState;
  readonly fallback_queue_depth: number;
  readonly fallback_queue_bytes: number;
  readonly fallback_queue_oldest_age_s: number;
}

/** Aggregated usage for GET /v1/usage. */
export interface UsageQuery {
  aggregate(req: { tenant: string; from: Date; to: Date; groupBy: 'type' | 'path' | 'day' }): Promise<UsageAggregate>;
}

export interface UsageAggregate {
  readonly tenant: string;
  readonly from: string;
  readonly to: string;
  readonly group_by: 'type' | 'path' | 'day';
  readonly total: { readonly events: number; readonly tokens: number };
  readonly groups: readonly { readonly key: string; readonly events: number; readonly tokens: number }[];
}

/** Publishes one usage event to the event bus; the event id is the bus-level dedup key. */
export interface EventPublisher {
  publish(event: Pick<UsageEvent, 'id' | 'subject' | 'type'>, payload: Uint8Array): Promise<{ readonly duplicate: boolean }>;
  /** A cheap round trip that succeeds only when publishing would. */
  probe(): Promise<void>;
}

/**
 * The durable local queue: append resolves once the record is on disk; readBatch re-reads from the
 * committed position until commit moves it.
 */
export interface DurableQueue<P> {
  append(payload: Uint8Array, timestampMs?: number): Promise<void>;
  readBatch(max: number): Promise<{ readonly records: readonly { readonly payload: Uint8Array }[]; readonly end: P }>;
  commit(position: P): Promise<void>;
  readonly depth: number;
  readonly bytes: number;
  readonly oldestTimestamp: number | undefined;
}
