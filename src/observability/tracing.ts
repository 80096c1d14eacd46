/**
 * The tracing interface the HTTP layer sees. The OTLP implementation lives in src/adapters/otlp and
 * is wired by src/runtime/tracing.ts; with no endpoint configured the app gets no tracer at all, so
 * an untraced request pays only for `request.span` being undefined.
 */

export type SpanKind = 'internal' | 'server' | 'client' | 'producer' | 'consumer';
export type AttributeValue = string | number | boolean;
export type Attributes = Readonly<Record<string, AttributeValue>>;

export interface TraceSpan {
  /** 32 lowercase hex digits. */
  readonly traceId: string;
  /** 16 lowercase hex digits. */
  readonly spanId: string;
  /** Whether the span is recorded and exported (the sampler's decision, inherited by children). */
  readonly sampled: boolean;
  setAttribute(key: string, value: AttributeValue): void;
  /** Status ERROR with a short description (never a secret or a request body). */
  fail(description: string): void;
  child(name: string, kind: SpanKind, attributes?: Attributes): TraceSpan;
  /** Ends the span and hands it to the exporter; later calls do nothing. */
  end(): void;
  /** This span as a W3C `traceparent` header value, for passing the trace on. */
  traceparent(): string;
}

/** An incoming request's headers (lowercase names); `traceparent` and `tracestate` are read, possibly absent or malformed. */
export type IncomingTraceContext = Readonly<Record<string, string | string[] | undefined>>;

export interface RequestTracer {
  /** A server span continuing the caller's trace when its traceparent is valid, else a new trace. */
  startServerSpan(name: string, incoming: IncomingTraceContext, attributes?: Attributes): TraceSpan;
}

/**
 * Runs `fn` inside a child span of `parent`; without a parent it is just `fn()`. The span fails
 * when `fn` throws and ends either way.
 */
export function inChildSpan<T>(parent: TraceSpan | undefined, name: string, kind: SpanKind, attributes: Attributes | undefined, fn: (span: TraceSpan | undefined) => Promise<T>): Promise<T> {
  // Not async itself: an untraced call (the hot path) costs no extra promise.
  if (!parent) return fn(undefined);
  return inSpan(parent.child(name, kind, attributes), fn);
}

async function inSpan<T>(span: TraceSpan, fn: (span: TraceSpan | undefined) => Promise<T>): Promise<T> {
  try {
    return await fn(span);
  } catch (err) {
    span.fail(err instanceof Error ? err.name : 'error');
    throw err;
  } finally {
    span.end();
  }
}
