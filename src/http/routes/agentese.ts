import type { FastifyInstance } from 'fastify';
import * as agentese from '../../domain/agentese/index.js';
import { performInvoke, type InvokeBody, type InvokeDeps, type ObserverBody } from '../invoke-call.js';

export type AgenteseRouteDeps = InvokeDeps;

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
// Invoke sends the domain's own JSON text (invokeText), so this schema only documents the shape.
const invokeResponse = {
  200: {
    type: 'object',
    additionalProperties: true,
    properties: { path: { type: 'string' }, result: {}, tokens_used: { type: 'integer' }, cached: { type: 'boolean' } },
  },
} as const;

/** The billable route; its fast path (fast-invoke.ts) validates bodies with this same schema. */
export const INVOKE_PATH = '/v1/agentese/invoke';
export const INVOKE_POLICY = Object.freeze({ scope: 'write', billable: true } as const);
export const invokeBodySchema = {
  type: 'object', required: ['path'], additionalProperties: false,
  properties: { path: pathField, observer: observerSchema, kwargs: { type: 'object' } },
} as const;

interface PathQuery { path: string; archetype?: string; name?: string }
interface ResolveBody { path: string; observer?: ObserverBody }

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

  app.post<{ Body: InvokeBody }>(INVOKE_PATH, {
    config: { policy: INVOKE_POLICY },
    schema: { body: invokeBodySchema, response: invokeResponse },
  }, async (request, reply) => {
    // The domain serialises the result itself (for the token count): sent as it is, not again.
    void reply.type('application/json; charset=utf-8');
    const { principal, quotaKey } = request;
    // Without the guard's principal (tests that register these routes alone) nothing is billed.
    if (!principal || !quotaKey) return agentese.invokeText(request.body.path, request.body.observer ?? {}, request.body.kwargs ?? {}).json;
    const answer = await performInvoke(deps, {
      body: request.body, principal, quotaKey,
      idempotencyKey: request.idempotency ? String(request.headers['idempotency-key']) : undefined,
      requestId: request.id,
      elapsedMs: () => reply.elapsedTime,
      span: request.span,
      chargeFailed: (err) => request.log.error({ err }, 'token charge failed'),
    });
    return answer.json;
  });
}
