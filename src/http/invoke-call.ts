import * as agentese from '../domain/agentese/index.js';
import type { LimitStore } from '../domain/limits/ports.js';
import { MeteringUnavailableError, type UsageMeter } from '../domain/metering/ports.js';
import { usageEvent, usageEventId } from '../domain/metering/usage-event.js';
import type { Principal } from '../domain/tenancy/types.js';
import { ApiError } from '../errors/api-error.js';
import type { ApiMetrics } from '../observability/metrics.js';
import { inChildSpan, type TraceSpan } from '../observability/tracing.js';

export interface ObserverBody { name?: string; archetype?: string; capabilities?: string[] }
export interface InvokeBody { path: string; observer?: ObserverBody; kwargs?: Record<string, unknown> }

export interface InvokeDeps {
  readonly limits: LimitStore;
  readonly metrics: ApiMetrics;
  /** Records the usage event of each invoke; absent only in tests that are not about metering. */
  readonly meter?: UsageMeter;
}

/** One admitted, validated invoke: who calls, what it is charged to, and how to report. */
export interface InvokeCall {
  readonly body: InvokeBody;
  readonly principal: Principal;
  readonly quotaKey: string;
  /** The request's Idempotency-Key: its usage event id derives from it and travels alone. */
  readonly idempotencyKey: string | undefined;
  readonly requestId: string;
  /** Milliseconds since the request arrived (the usage event's latency_ms). */
  readonly elapsedMs: () => number;
  readonly span: TraceSpan | undefined;
  /** Where a failed token charge is reported (it happens after the answer is on its way). */
  readonly chargeFailed: (err: unknown) => void;
}

/** record() options, made once: an Idempotency-Key's event travels alone (see UsageMeter.record). */
const BATCHED = Object.freeze({ alone: false });
const ALONE = Object.freeze({ alone: true });

/**
 * The billable call, after authentication and admission: runs the aspect, makes its usage event
 * durable, charges its tokens, and returns the answer's JSON text (and its size). Shared by the Fastify route
 * (routes/agentese.ts) and invoke's fast path (fast-invoke.ts), so both bill the same way.
 * Throws ApiError (the domain's, or ERR_METERING_UNAVAILABLE when the event cannot be recorded:
 * then nothing was charged).
 */
export async function performInvoke(deps: InvokeDeps, call: InvokeCall): Promise<agentese.InvokeText> {
  const { body, principal, span } = call;
  const answer = agentese.invokeText(body.path, body.observer ?? {}, body.kwargs ?? {});
  const tokens = answer.tokens_used;
  if (deps.meter) {
    const event = usageEvent({
      id: usageEventId(principal.tenant, call.idempotencyKey),
      type: 'agentese.invoke',
      tenant: principal.tenant,
      time: Date.now(),
      data: {
        path: body.path, aspect: answer.aspect, tokens, status: 200,
        latency_ms: Math.round(call.elapsedMs() * 100) / 100, key_prefix: principal.keyPrefix, request_id: call.requestId,
      },
    });
    try {
      // The answer waits until the usage event is durable: a 2xx is a promise that it is billed.
      const meter = deps.meter;
      const options = call.idempotencyKey === undefined ? BATCHED : ALONE;
      if (!span) await meter.record(event, options);
      else {
        await inChildSpan(span, 'usage.record', 'producer', { 'messaging.system': 'nats', 'messaging.destination.name': 'USAGE' }, async (child) => {
          const outcome = await meter.record(event, options);
          // published: acked by JetStream; queued: fsynced to the fallback queue; buffered: async mode.
          child?.setAttribute('kgents.usage.outcome', outcome);
        });
      }
    } catch (err) {
      if (err instanceof MeteringUnavailableError) {
        throw new ApiError('ERR_METERING_UNAVAILABLE', `${err.message} The call was not performed and nothing was charged.`, undefined, { 'retry-after': String(err.retryAfterS) });
      }
      throw err;
    }
  }
  deps.metrics.countTokens(principal.tier, tokens);
  if (span) {
    await inChildSpan(span, 'limits.addTokens', 'client', { 'kgents.store.mode': deps.limits.mode }, () => deps.limits.addTokens(call.quotaKey, tokens));
    return answer;
  }
  // Not awaited: the charge is queued (in order, before any later admission of this instance) as
  // soon as it is called, and the limit store absorbs a Redis failure itself (memory + journal),
  // so waiting would only add a Redis round trip to every call. Traced calls wait, for their span.
  deps.limits.addTokens(call.quotaKey, tokens).catch(call.chargeFailed);
  return answer;
}
