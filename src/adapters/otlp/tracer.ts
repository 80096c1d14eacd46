import type { TRACE_SAMPLERS } from '../../config/schema.js';
import type { Attributes, IncomingTraceContext, RequestTracer, TraceSpan } from '../../observability/tracing.js';
import { BatchSpanQueue, type BatchEvents, type BatchOptions } from './batch-queue.js';
import { encodeSpans, type ResourceInfo } from './encode.js';
import { OtlpHttpTransport } from './http-transport.js';
import { newTraceId } from './ids.js';
import { NonRecordingSpan, RecordingSpan } from './span.js';
import { parseTraceparent, type ParentContext } from './trace-context.js';

/** The sampler names of the OpenTelemetry environment specification (OTEL_TRACES_SAMPLER). */
export type SamplerName = (typeof TRACE_SAMPLERS)[number];

export interface OtlpTracerOptions {
  /** OTEL_EXPORTER_OTLP_ENDPOINT: the base URL; spans go to `<base>/v1/traces`. */
  readonly endpoint: string;
  readonly timeoutMs: number;
  readonly resource: ResourceInfo;
  readonly sampler: SamplerName;
  /** For the traceidratio samplers: the fraction of new traces recorded, 0..1. */
  readonly ratio: number;
  readonly batch: BatchOptions;
  readonly events: BatchEvents;
}

/** The signal-specific path appended to the base endpoint, as the OTLP exporter specification says. */
export function tracesUrl(endpoint: string): string {
  return `${endpoint.endsWith('/') ? endpoint : `${endpoint}/`}v1/traces`;
}

/** Whether a trace id falls within `ratio`: its last 8 hex digits (random in W3C level 2 ids) against the ratio. */
function inRatio(traceId: string, ratio: number): boolean {
  if (ratio >= 1) return true;
  if (ratio <= 0) return false;
  return parseInt(traceId.slice(24), 16) / 0x1_0000_0000 < ratio;
}

/** Traces to an OpenTelemetry collector over OTLP/HTTP with JSON bodies. */
export class OtlpTracer implements RequestTracer {
  readonly queue: BatchSpanQueue;
  private readonly transport: OtlpHttpTransport;

  constructor(private readonly options: OtlpTracerOptions) {
    this.transport = new OtlpHttpTransport(tracesUrl(options.endpoint), options.timeoutMs);
    const transport = this.transport;
    this.queue = new BatchSpanQueue({
      export: (spans) => transport.post(encodeSpans(options.resource, spans)),
      abort: () => transport.close(),
    }, options.batch, options.events);
  }

  startServerSpan(name: string, incoming: IncomingTraceContext, attributes?: Attributes): TraceSpan {
    const parent = parseTraceparent(incoming['traceparent'], incoming['tracestate']);
    const traceId = parent?.traceId ?? newTraceId();
    if (!this.sample(parent, traceId)) return new NonRecordingSpan(traceId);
    return new RecordingSpan(this.queue, traceId, parent?.spanId, parent?.traceState, name, 'server', attributes);
  }

  /** Exports what is queued within `deadlineMs`, then drops the rest (counted) and closes the connection. */
  shutdown(deadlineMs: number): Promise<boolean> {
    return this.queue.shutdown(deadlineMs);
  }

  private sample(parent: ParentContext | undefined, traceId: string): boolean {
    const { sampler, ratio } = this.options;
    if (parent && sampler.startsWith('parentbased_')) return parent.sampled;
    switch (sampler) {
      case 'always_on':
      case 'parentbased_always_on':
        return true;
      case 'always_off':
      case 'parentbased_always_off':
        return false;
      case 'traceidratio':
      case 'parentbased_traceidratio':
        return inRatio(traceId, ratio);
    }
  }
}
