import type { AttributeValue, SpanKind } from '../../observability/tracing.js';
import type { FinishedSpan } from './span.js';

/**
 * OTLP/JSON encoding of ExportTraceServiceRequest (opentelemetry-proto, JSON mapping as the OTLP
 * specification defines it: ids as hex strings, enums as integers, 64-bit integers as strings).
 */

const KIND: Record<SpanKind, number> = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 };
const STATUS_ERROR = 2;

/** One AnyValue as JSON text; JSON.stringify only escapes strings (building objects for it was the cost). */
function anyValue(value: AttributeValue): string {
  if (typeof value === 'string') return `{"stringValue":${JSON.stringify(value)}}`;
  if (typeof value === 'boolean') return `{"boolValue":${value}}`;
  return Number.isSafeInteger(value) ? `{"intValue":"${value}"}` : `{"doubleValue":${Number.isFinite(value) ? value : 0}}`;
}

/** A KeyValue list from alternating keys and values; a key set twice keeps its last value. */
function encodeList(flat: readonly (string | AttributeValue)[]): string {
  const parts: string[] = [];
  for (let i = 0; i < flat.length; i += 2) {
    const key = flat[i] as string;
    let later = false;
    for (let j = i + 2; j < flat.length; j += 2) if (flat[j] === key) later = true;
    if (!later) parts.push(`{"key":${JSON.stringify(key)},"value":${anyValue(flat[i + 1] as AttributeValue)}}`);
  }
  return `[${parts.join(',')}]`;
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

function encodeSpan(s: FinishedSpan): string {
  return `{"traceId":"${s.traceId}","spanId":"${s.spanId}"${s.parentSpanId !== undefined ? `,"parentSpanId":"${s.parentSpanId}"` : ''}`
    + `${s.traceState !== undefined ? `,"traceState":${JSON.stringify(s.traceState)}` : ''},"name":${JSON.stringify(s.name)},"kind":${KIND[s.kind]}`
    + `,"startTimeUnixNano":"${unixNanoString(s.startMs)}","endTimeUnixNano":"${unixNanoString(s.endMs)}","attributes":${encodeList(s.attributes)}`
    + `${s.errorDescription !== undefined ? `,"status":{"code":${STATUS_ERROR},"message":${JSON.stringify(s.errorDescription)}}` : ''}}`;
}

export function encodeSpans(resource: ResourceInfo, spans: readonly FinishedSpan[]): string {
  const resourceAttributes = encodeList(Object.entries(resource.attributes).flat());
  const scope = `{"name":${JSON.stringify(resource.scopeName)},"version":${JSON.stringify(resource.scopeVersion)}}`;
  return `{"resourceSpans":[{"resource":{"attributes":${resourceAttributes}},"scopeSpans":[{"scope":${scope},"spans":[${spans.map(encodeSpan).join(',')}]}]}]}`;
}
