import type { FastifyInstance } from 'fastify';
import type { CircuitState } from '../../domain/metering/ports.js';

export interface BusAdmin {
  /** Moves an open circuit to half-open now and returns the state afterwards. */
  forceProbe(): { circuit: CircuitState; fallback_queue_depth: number };
}

export interface AdminRouteDeps {
  readonly instance: string;
  readonly bus?: BusAdmin;
}

export function adminRoutes(app: FastifyInstance, deps: AdminRouteDeps): void {
  app.post('/v1/admin/bus/probe', { config: { policy: { scope: 'admin' } } }, (_request, reply) => {
    if (!deps.bus) return reply.code(200).send({ instance: deps.instance, circuit: 'none', detail: 'this instance has no metering pipeline' });
    return { instance: deps.instance, ...deps.bus.forceProbe() };
  });
}
