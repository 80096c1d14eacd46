import type { FastifyInstance } from 'fastify';
import * as agentese from '../../domain/agentese/index.js';
import type { LimitStore } from '../../domain/limits/ports.js';
import { MeteringUnavailableError, type UsageMeter } from '../../domain/metering/ports.js';
import { usageEvent, usageEventId } from '../../domain/metering/usage-event.js';
import { ApiError } from '../../errors/api-error.js';
import type { ApiMetrics } from '../../observability/metrics.js';
import { inChildSpan } from '../../observability/tracing.js';

export interface AgenteseRouteDeps {
  readonly limits: LimitStore;
  readonly metrics: ApiMetrics;
  /** Records the usage event of each invoke; absent only in tests that are not about metering. */
  readonly meter?: UsageMeter;
}

const pathField = { type: 'string', minLength: 1, maxLength: 512 } as const;
const archetypeField = { type: 'string', pattern: '^[a-z][a-z0-9_-]{0,63}$' } as const;
const observerSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', maxLength: 128 },
    archetype: archetypeField,
    capabilities: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 64 } },
  },
} as const;
const querySchema = {
  type: 'object',
  required: ['path'],
  additionalProperties: false,
  properties: { path: pathField, archetype: archetypeField, name: { type: 'string', maxLength: 128 } },
} as const;

// Response schemas let Fastify serialise with fast-json-stringify instead of JSON.stringify. Fields
// in the order the domain builds them, and additionalProperties kept, so the bytes are the same.
const resolveResponse = {
  200: {
    type: 'object',
    additionalProperties: true,
    properties: {
      path: { type: 'string' }, handle: { type: 'string' }, context: { type: 'string' }, holon: { type: 'string' },
      aspect: { type: ['string', 'null'] }, description: { type: 'string' }, generic: { type: 'boolean' },
      affordances: { type: 'array', items: { type: 'string' } },
    },
  },
} as const;
// Invoke sends the domain's own JSON text (invokeWithJson), so this schema only documents the shape.
const invokeResponse = {
  200: {
    type: 'object',
    additionalProperties: true,
    properties: { path: { type: 'string' }, result: {}, tokens_used: { type: 'integer' }, cached: { type: 'boolean' } },
  },
} as const;

interface ObserverBody { name?: string; archetype?: string; capabilities?: string[] }
interface PathQuery { path: string; archetype?: string; name?: string }
interface ResolveBody { path: string; observer?: ObserverBody }
interface InvokeBody { path: string; observer?: ObserverBody; kwargs?: Record<string, unknown> }

/** record() options, made once: an Idempotency-Key's event travels alone (see UsageMeter.record). */
const BATCHED = Object.freeze({ alone: false });
const ALONE = Object.freeze({ alone: true });

function observerFromQuery(q: PathQuery): agentese.Observer {
  return { ...(q.name !== undefined && { name: q.name }), ...(q.archetype !== undefined && { archetype: q.archetype }) };
}

export function agenteseRoutes(app: FastifyInstance, deps: AgenteseRouteDeps): void {
  const read = { policy: { scope: 'read' as const } };

  app.get<{ Querystring: PathQuery }>('/v1/agentese/resolve', { config: read, schema: { querystring: querySchema, response: resolveResponse } },
    (request) => agentese.resolve(request.query.path, observerFromQuery(request.query)));

  app.post<{ Body: ResolveBody }>('/v1/agentese/resolve', {
    config: read,
    schema: { body: { type: 'object', required: ['path'], additionalProperties: false, properties: { path: pathField, observer: observerSchema } }, response: resolveResponse },
  }, (request) => agentese.resolve(request.body.path, request.body.observer ?? {}));

  app.get<{ Querystring: PathQuery }>('/v1/agentese/affordances', { config: read, schema: { querystring: querySchema } },
    (request) => agentese.affordances(request.query.path, observerFromQuery(request.query)));

  app.post<{ Body: InvokeBody }>('/v1/agentese/invoke', {
    config: { policy: { scope: 'write', billable: true } },
    schema: {
      body: {
        type: 'object', required: ['path'], additionalProperties: false,
        properties: { path: pathField, observer: observerSchema, kwargs: { type: 'object' } },
      },
      response: invokeResponse,
    },
  }, async (request, reply) => {
    const { out, json, aspect } = agentese.invokeWithJson(request.body.path, request.body.observer ?? {}, request.body.kwargs ?? {});
    // The domain has serialised the result already (for the token count): sent as it is, not again.
    void reply.type('application/json; charset=utf-8');
    const principal = request.principal;
    if (!principal || !request.quotaKey) return json;
    if (deps.meter) {
      const idempotencyKey = request.idempotency ? String(request.headers['idempotency-key']) : undefined;
      const event = usageEvent({
        id: usageEventId(principal.tenant, idempotencyKey),
        type: 'agentese.invoke',
        tenant: principal.tenant,
        time: Date.now(),
        data: {
          path: out.path, aspect, tokens: out.tokens_used, status: 200,
          latency_ms: Math.round(reply.elapsedTime * 100) / 100, key_prefix: principal.keyPrefix, request_id: request.id,
        },
      });
      try {
        // The answer waits until the usage event is durable: a 2xx is a promise that it is billed.
        const meter = deps.meter;
        const options = idempotencyKey === undefined ? BATCHED : ALONE;
        if (!request.span) await meter.record(event, options);
        else {
          await inChildSpan(request.span, 'usage.record', 'producer', { 'messaging.system': 'nats', 'messaging.destination.name': 'USAGE' }, async (span) => {
            const outcome = await meter.record(event, options);
            // published: acked by JetStream; queued: fsynced to the fallback queue; buffered: async mode.
            span?.setAttribute('kgents.usage.outcome', outcome);
          });
        }
      } catch (err) {
        if (err instanceof MeteringUnavailableError) {
          throw new ApiError('ERR_METERING_UNAVAILABLE', `${err.message} The call was not performed and nothing was charged.`, undefined, { 'retry-after': String(err.retryAfterS) });
        }
        throw err;
      }
    }
    const quotaKey = request.quotaKey;
    deps.metrics.countTokens(principal.tier, out.tokens_used);
    if (request.span) {
      await inChildSpan(request.span, 'limits.addTokens', 'client', { 'kgents.store.mode': deps.limits.mode }, () => deps.limits.addTokens(quotaKey, out.tokens_used));
      return json;
    }
    // Not awaited: the charge is queued (in order, before any later admission of this instance) as
    // soon as it is called, and the limit store absorbs a Redis failure itself (memory + journal),
    // so waiting would only add a Redis round trip to every call. Traced calls wait, for their span.
    deps.limits.addTokens(quotaKey, out.tokens_used).catch((err: unknown) => {
      request.log.error({ err }, 'token charge failed');
    });
    return json;
  });
}
