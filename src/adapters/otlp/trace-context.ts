/** W3C Trace Context (https://www.w3.org/TR/trace-context/): the traceparent and tracestate headers. */

export interface ParentContext {
  readonly traceId: string;
  readonly spanId: string;
  readonly sampled: boolean;
  readonly traceState?: string;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);
/** The spec allows 32 list members of at most 256 characters each; longer is dropped, not truncated. */
const TRACESTATE_MAX = 512;

function single(value: string | string[] | undefined): string | undefined {
  if (Array.isArray(value)) return value.length === 1 ? value[0] : undefined;
  return value;
}

/**
 * The caller's span, or undefined when the header is absent or invalid (then the request starts a
 * new trace, as the spec asks: a malformed traceparent is ignored, never an error).
 */
export function parseTraceparent(header: string | string[] | undefined, tracestate?: string | string[]): ParentContext | undefined {
  const value = single(header)?.trim();
  if (!value) return undefined;
  const m = TRACEPARENT.exec(value);
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m;
  if (!version || !traceId || !spanId || !flags) return undefined;
  if (version === 'ff') return undefined;
  // Version 00 has exactly four fields; later versions may append more, which we ignore.
  if (version === '00' && rest !== undefined) return undefined;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  const state = Array.isArray(tracestate) ? tracestate.join(',') : tracestate;
  const keepState = state !== undefined && state.length > 0 && state.length <= TRACESTATE_MAX;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1, ...(keepState && { traceState: state }) };
}

export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}
