import type { FastifyInstance } from 'fastify';
import type { UsageQuery } from '../../domain/metering/ports.js';
import { ApiError } from '../../errors/api-error.js';

export interface UsageRouteDeps {
  /** Absent when the service runs without NATS. */
  readonly usage?: UsageQuery;
}

interface UsageQueryString { from?: string; to?: string; group_by?: 'type' | 'path' | 'day'; tenant?: string }

const MAX_RANGE_MS = 366 * 86_400_000;

function parseTime(name: string, raw: string | undefined, fallback: Date): Date {
  if (raw === undefined) return fallback;
  const t = Date.parse(raw);
  if (Number.isNaN(t)) throw new ApiError('ERR_VALIDATION', `query.${name} must be an ISO 8601 time, got "${raw.slice(0, 40)}"`, { field: name });
  return new Date(t);
}

export function usageRoutes(app: FastifyInstance, deps: UsageRouteDeps): void {
  app.get<{ Querystring: UsageQueryString }>('/v1/usage', {
    config: { policy: { scope: 'read' } },
    schema: {
      querystring: {
        type: 'object', additionalProperties: false,
        properties: {
          from: { type: 'string', maxLength: 40 }, to: { type: 'string', maxLength: 40 },
          group_by: { type: 'string', enum: ['type', 'path', 'day'] },
          tenant: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' },
        },
      },
    },
  }, async (request) => {
    const principal = request.principal;
    if (!principal) throw new ApiError('ERR_AUTH_MISSING_KEY', 'Send an API key.');
    const q = request.query;
    if (q.tenant !== undefined && q.tenant !== principal.tenant && !principal.scopes.includes('admin')) {
      throw new ApiError('ERR_AUTH_INSUFFICIENT_SCOPE', "Only an admin key may read another tenant's usage.", { required: 'admin', granted: [...principal.scopes] });
    }
    const now = new Date();
    const monthStart = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
    const from = parseTime('from', q.from, monthStart);
    const to = parseTime('to', q.to, now);
    if (to.getTime() <= from.getTime()) throw new ApiError('ERR_VALIDATION', 'query.to must be after query.from', { field: 'to' });
    if (to.getTime() - from.getTime() > MAX_RANGE_MS) throw new ApiError('ERR_VALIDATION', 'the range from..to may span at most 366 days', { field: 'from' });
    if (!deps.usage) throw new ApiError('ERR_SERVICE_UNAVAILABLE', 'Usage reports need the event bus (NATS), which this instance does not have.', undefined, { 'retry-after': '30' });
    try {
      return await deps.usage.aggregate({ tenant: q.tenant ?? principal.tenant, from, to, groupBy: q.group_by ?? 'type' });
    } catch (err) {
      request.log.warn({ err }, 'usage query failed');
      throw new ApiError('ERR_SERVICE_UNAVAILABLE', 'The usage store is not reachable right now; retry shortly.', undefined, { 'retry-after': '5' });
    }
  });
}
