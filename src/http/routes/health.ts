import type { FastifyInstance } from 'fastify';
import type { HealthRegistry } from '../health.js';
import type { Lifecycle } from '../lifecycle.js';
import type { ApiMetrics } from '../../observability/metrics.js';

export interface HealthRouteDeps {
  readonly version: string;
  readonly lifecycle: Lifecycle;
  readonly health: HealthRegistry;
  readonly metrics: ApiMetrics;
  /** Why the instance sheds load, if it does (see load-shedding.ts). */
  readonly overloaded?: () => string | undefined;
}

const startedAt = Date.now();

/** The liveness route; the fast path (fast-health.ts) answers the same path. */
export const LIVENESS_PATH = '/health';

export interface Liveness {
  readonly status: 'ok';
  readonly version: string;
  readonly uptime_s: number;
}

function uptimeS(): number {
  return Math.round((Date.now() - startedAt) / 1000);
}

/** GET /health's answer, as the route serves it. */
export function liveness(version: string): Liveness {
  return { status: 'ok', version, uptime_s: uptimeS() };
}

/**
 * The same answer as JSON text, for the fast path (fast-health.ts): the constant part is built
 * once, so a probe costs one concatenation, not an object and a JSON.stringify.
 */
export function livenessText(version: string): () => string {
  const head = `{"status":"ok","version":${JSON.stringify(version)},"uptime_s":`;
  return () => `${head}${uptimeS()}}`;
}

export function healthRoutes(app: FastifyInstance, deps: HealthRouteDeps): void {
  app.get(LIVENESS_PATH, {
    schema: {
      response: { 200: { type: 'object', properties: { status: { type: 'string' }, version: { type: 'string' }, uptime_s: { type: 'number' } } } },
    },
  }, () => liveness(deps.version));

  app.get('/ready', (_request, reply) => {
    const state = deps.lifecycle.state;
    // Overloaded reads as not ready so the balancer (or Kubernetes) moves traffic elsewhere until it recovers.
    const overload = state === 'ready' ? deps.overloaded?.() : undefined;
    if (state === 'ready' && overload === undefined) return { ready: true };
    if (overload !== undefined) return reply.code(503).header('retry-after', '1').send({ ready: false, reason: 'overloaded', detail: overload });
    return reply.code(503).header('retry-after', '1').send({ ready: false, reason: state });
  });

  app.get('/health/saas', () => {
    const snap = deps.health.snapshot();
    return { status: snap.status, version: deps.version, instance_state: deps.lifecycle.state, components: snap.components };
  });

  app.get('/metrics', async (_request, reply) => {
    const body = await deps.metrics.registry.metrics();
    return reply.type(deps.metrics.registry.contentType).send(body);
  });
}
