import type { Scope } from '../config/schema.js';
import type { Principal } from '../domain/tenancy/types.js';

/** What a route declares about itself; hooks read it from routeOptions.config. */
export interface RoutePolicy {
  /** Scope the API key must carry; absent for public routes. */
  readonly scope?: Scope;
  /** Charged against the monthly token quota (AGENTESE invoke). */
  readonly billable?: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    policy?: RoutePolicy;
  }
  interface FastifyRequest {
    principal?: Principal;
    /** `tenant:yyyy-mm` counter that the request's tokens are added to. */
    quotaKey?: string;
    idempotency?: { key: string; fingerprint: string };
  }
}
