import type { FastifyInstance } from 'fastify';
import * as agentese from '../../domain/agentese/index.js';
import type { LimitStore } from '../../domain/limits/ports.js';
import type { ApiMetrics } from '../../observability/metrics.js';

export interface AgenteseRouteDeps {
  readonly limits: LimitStore;
  readonly metrics: ApiMetrics;
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

interface ObserverBody { name?: string; archetype?: string; capabilities?: string[] }
interface PathQuery { path: string; archetype?: string; name?: string }
interface ResolveBody { path: string; observer?: ObserverBody }
interface InvokeBody { path: string; observer?: ObserverBody; kwargs?: Record<string, unknown> }

function observerFromQuery(q: PathQuery): agentese.Observer {
  return { ...(q.name !== undefined && { name: q.name }), ...(q.archetype !== undefined && { archetype: q.archetype }) };
}

export function agenteseRoutes(app: FastifyInstance, deps: AgenteseRouteDeps): void {
  const read = { policy: { scope: 'read' as const } };

  app.get<{ Querystring: PathQuery }>('/v1/agentese/resolve', { config: read, schema: { querystring: querySchema } },
    (request) => agentese.resolve(request.query.path, observerFromQuery(request.query)));

  app.post<{ Body: ResolveBody }>('/v1/agentese/resolve', {
    config: read,
    schema: { body: { type: 'object', required: ['path'], additionalProperties: false, properties: { path: pathField, observer: observerSchema } } },
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
    },
  }, async (request) => {
    const out = agentese.invoke(request.body.path, request.body.observer ?? {}, request.body.kwargs ?? {});
    const principal = request.principal;
    if (principal && request.quotaKey) {
      await deps.limits.addTokens(request.quotaKey, out.tokens_used);
      deps.metrics.tokensUsed.inc({ tier: principal.tier }, out.tokens_used);
    }
    return out;
  });
}
