import type { AttributeValue, SpanKind } from '../../observability/tracing.js';
import type { FinishedSpan } from './span.js';

/**
 * OTLP/JSON encoding of ExportTraceServiceRequest (opentelemetry-proto, JSON mapping as the OTLP
 * specification defines it: ids as hex strings, enums as integers, 64-bit integers as strings).
 */

const KIND: Record<SpanKind, number> = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 };
const STATUS_ERROR = 2;

interface AnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string;
  doubleValue?: number;
}

function anyValue(value: AttributeValue): AnyValue {
  if (typeof value === 'string') return { stringValue: value };
  if (typeof value === 'boolean') return { boolValue: value };
  return Number.isSafeInteger(value) ? { intValue: String(value) } : { doubleValue: value };
}

export function encodeAttributes(attributes: Readonly<Record<string, AttributeValue>>): { key: string; value: AnyValue }[] {
  const out: { key: string; value: AnyValue }[] = [];
  for (const key in attributes) {
    const value = attributes[key];
    if (value !== undefined) out.push({ key, value: anyValue(value) });
  }
  return out;
}

/** Epoch milliseconds (with fraction) as a decimal nanosecond string; a double cannot hold ~1.8e18 exactly. */
export function unixNanoString(ms: number): string {
  const whole = Math.floor(ms);
  const fraction = Math.min(999_999, Math.round((ms - whole) * 1e6));
  return `${whole}${String(fraction).padStart(6, '0')}`;
}

export interface ResourceInfo {
  readonly attributes: Readonly<Record<string, AttributeValue>>;
  readonly scopeName: string;
  readonly scopeVersion: string;
}

export function encodeSpans(resource: ResourceInfo, spans: readonly FinishedSpan[]): string {
  return JSON.stringify({
    resourceSpans: [{
      resource: { attributes: encodeAttributes(resource.attributes) },
      scopeSpans: [{
        scope: { name: resource.scopeName, version: resource.scopeVersion },
        spans: spans.map((s) => ({
          traceId: s.traceId,
          spanId: s.spanId,
          ...(s.parentSpanId !== undefined && { parentSpanId: s.parentSpanId }),
          ...(s.traceState !== undefined && { traceState: s.traceState }),
          name: s.name,
          kind: KIND[s.kind],
          startTimeUnixNano: unixNanoString(s.startMs),
          endTimeUnixNano: unixNanoString(s.endMs),
          attributes: encodeAttributes(s.attributes),
          ...(s.errorDescription !== undefined && { status: { code: STATUS_ERROR, message: s.errorDescription } }),
        })),
      }],
    }],
  });
}
