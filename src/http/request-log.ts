import type { Principal } from '../domain/tenancy/types.js';

/** The fields of a "request completed" log line, the same whether Fastify or a fast path answered. */
export function completionFields(method: string, route: string, status: number, elapsedMs: number, principal: Principal | undefined): Record<string, unknown> {
  return {
    method,
    route,
    status,
    duration_ms: Math.round(elapsedMs * 100) / 100,
    tenant: principal?.tenant,
    key_prefix: principal?.keyPrefix,
  };
}
