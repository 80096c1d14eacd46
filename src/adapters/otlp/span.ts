import { performance } from 'node:perf_hooks';
import type { AttributeValue, Attributes, SpanKind, TraceSpan } from '../../observability/tracing.js';
import { newSpanId } from './ids.js';
import { formatTraceparent } from './trace-context.js';

/** Wall-clock milliseconds with sub-millisecond precision (monotonic within the process). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** An ended span as the exporter reads it. */
export interface FinishedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly traceState: string | undefined;
  readonly name: string;
  readonly kind: SpanKind;
  readonly startMs: number;
  readonly endMs: number;
  /** Alternating keys and values (a flat array: objects with varying dotted keys were slow to build). */
  readonly attributes: readonly (string | AttributeValue)[];
  readonly errorDescription: string | undefined;
}

/** Where ended spans go (the batch queue). Must not block or throw. */
export interface SpanSink {
  onEnd(span: FinishedSpan): void;
}

/** At most this many attributes per span: a bug that sets them in a loop cannot grow a span without bound. */
const MAX_ATTRIBUTES = 64;
const MAX_VALUE_LENGTH = 1024;

export class RecordingSpan implements TraceSpan, FinishedSpan {
  readonly sampled = true;
  readonly spanId = newSpanId();
  readonly attributes: (string | AttributeValue)[] = [];
  readonly startMs = nowMs();
  endMs = 0;
  errorDescription: string | undefined = undefined;

  constructor(
    private readonly sink: SpanSink,
    readonly traceId: string,
    readonly parentSpanId: string | undefined,
    readonly traceState: string | undefined,
    readonly name: string,
    readonly kind: SpanKind,
    attributes: Attributes | undefined,
  ) {
    if (attributes) for (const key in attributes) this.setAttribute(key, attributes[key] as AttributeValue);
  }

  /** Setting a key twice keeps both; the encoder writes the last one. */
  setAttribute(key: string, value: AttributeValue): void {
    if (this.endMs !== 0 || this.attributes.length >= MAX_ATTRIBUTES * 2) return;
    this.attributes.push(key, typeof value === 'string' && value.length > MAX_VALUE_LENGTH ? value.slice(0, MAX_VALUE_LENGTH) : value);
  }

  fail(description: string): void {
    if (this.endMs === 0) this.errorDescription = description.slice(0, MAX_VALUE_LENGTH);
  }

  child(name: string, kind: SpanKind, attributes?: Attributes): TraceSpan {
    return new RecordingSpan(this.sink, this.traceId, this.spanId, this.traceState, name, kind, attributes);
  }

  end(): void {
    if (this.endMs !== 0) return;
    this.endMs = nowMs();
    this.sink.onEnd(this);
  }

  traceparent(): string {
    return formatTraceparent(this.traceId, this.spanId, true);
  }
}

/** A span the sampler left out: it has ids (for logs and propagation) and records nothing. */
export class NonRecordingSpan implements TraceSpan {
  readonly sampled = false;
  readonly spanId = newSpanId();

  constructor(readonly traceId: string) {}

  setAttribute(): void {
    // not recorded
  }

  fail(): void {
    // not recorded
  }

  child(): TraceSpan {
    return new NonRecordingSpan(this.traceId);
  }

  end(): void {
    // not recorded
  }

  traceparent(): string {
    return formatTraceparent(this.traceId, this.spanId, false);
  }
}
