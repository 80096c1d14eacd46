import type { IncomingMessage, ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type onSendHookHandler, type preHandlerAsyncHookHandler, type RawServerDefault } from 'fastify';
import { pino, type DestinationStream } from 'pino';
import type { Config } from '../config/load.js';
import type { BillingBackend } from '../domain/billing/ports.js';
import type { IdempotencyStore, LimitStore } from '../domain/limits/ports.js';
import type { UsageMeter, UsageQuery } from '../domain/metering/ports.js';
import type { KeyStore } from '../domain/tenancy/types.js';
import { ApiError } from '../errors/api-error.js';
import { loggerOptions } from '../observability/logger.js';
import { lazyChildLogger } from '../observability/lazy-child-logger.js';
import { ApiMetrics } from '../observability/metrics.js';
import type { RequestTracer } from '../observability/tracing.js';
import { uniqueId } from '../domain/unique-id.js';
import { VERSION } from '../version.js';
import { admit } from './admission.js';
import { authenticate } from './auth.js';
import { installErrorHandling } from './errors.js';
import { HealthRegistry } from './health.js';
import { beginIdempotent, finishIdempotent, type IdempotencyOptions } from './idempotency.js';
import { drainAwareResponse } from './drain-response.js';
import { Lifecycle } from './lifecycle.js';
import type { PressureSource } from '../adapters/local/pressure-monitor.js';
import { installLoadShedding } from './shed-guard.js';
import { installTestRetention } from './test-retention.js';
import { agenteseRoutes } from './routes/agentese.js';
import { adminRoutes, type BusAdmin } from './routes/admin.js';
import { healthRoutes, LIVENESS_PATH, livenessText } from './routes/health.js';
import { fastHealthAllowed, fastHealthHandler } from './fast-health.js';
import { fastInvokeHandler } from './fast-invoke.js';
import { fastPathServerFactory, type FastHandler } from './fast-paths.js';
import { usageRoutes } from './routes/usage.js';
import { webhookRoutes, type WebhookRouteDeps } from './routes/webhooks.js';
import { completionFields } from './request-log.js';
import { installTracing } from './tracing.js';
import type { RoutePolicy } from './types.js';
import type { Scope } from '../config/schema.js';
import './types.js';

export interface AppDeps {
  readonly keys: KeyStore;
  readonly limits: LimitStore;
  readonly idempotency: IdempotencyStore;
  /** Usage events for billable calls (see src/domain/metering). */
  readonly meter?: UsageMeter;
  /** Usage reports from the USAGE stream; absent without NATS. */
  readonly usage?: UsageQuery;
  /** Lets an admin force the event-bus breaker to probe now. */
  readonly bus?: BusAdmin;
  /** Stripe webhook ledger on NATS; absent: handled Stripe events get 503 and Stripe retries. */
  readonly billing?: BillingBackend;
  /** Tuning of the webhook processor (lease, busy wait); tests shorten them. */
  readonly webhookProcessor?: WebhookRouteDeps['processor'];
  readonly health?: HealthRegistry;
  readonly lifecycle?: Lifecycle;
  readonly metrics?: ApiMetrics;
  readonly version?: string;
  /** OpenTelemetry tracing; absent (tracing off): no tracing hooks at all. */
  readonly tracer?: RequestTracer;
  /** Load samples for shedding (LOAD_SHEDDING); absent: this process's own monitor. Tests drive their own. */
  readonly pressure?: PressureSource;
  /** Where JSON logs go; stdout when absent. Tests pass a stream to inspect them. */
  readonly logDestination?: DestinationStream;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** Fastify's Ajv options; invoke's fast path compiles its body schema with the same. */
const AJV_OPTIONS = Object.freeze({ removeAdditional: false, coerceTypes: false, allErrors: false });

function requestId(req: { headers: Record<string, string | string[] | undefined> }): string {
  const incoming = req.headers['x-request-id'];
  return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : uniqueId();
}

/**
 * requestId from the raw header list, for /health's fast path: reading `req.headers` makes Node
 * build the whole header object, which that path otherwise never needs (perf: ~0.2 µs per probe).
 */
function rawRequestId(req: { rawHeaders: readonly string[] }): string {
  const raw = req.rawHeaders;
  let incoming: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    if (name === undefined || name.length !== 12 || name.toLowerCase() !== 'x-request-id') continue;
    // Node joins a repeated header's values with ", ", which no valid id contains.
    if (incoming !== undefined) return uniqueId();
    incoming = raw[i + 1];
  }
  return incoming !== undefined && REQUEST_ID.test(incoming) ? incoming : uniqueId();
}

/** Builds the API; the caller owns listening, signals and closing the dependencies. */
export function buildApp(config: Config, deps: AppDeps): FastifyInstance {
  const version = deps.version ?? VERSION;
  const lifecycle = deps.lifecycle ?? new Lifecycle();
  const health = deps.health ?? new HealthRegistry();
  const metrics = deps.metrics ?? new ApiMetrics(version, config.INSTANCE_ID);
  const logger = pino(loggerOptions(config.LOG_LEVEL, config.INSTANCE_ID), deps.logDestination);
  let closing = false;
  // GET /health and the common POST invoke ahead of the router (fast-health.ts, fast-invoke.ts).
  const fastAllowed = fastHealthAllowed(config, deps.tracer !== undefined);
  const fastPaths: FastHandler[] = fastAllowed
    ? [fastHealthHandler({
      path: LIVENESS_PATH,
      active: () => !closing,
      requestId: rawRequestId,
      body: livenessText(version),
      observe: metrics.requestRecorder(LIVENESS_PATH, 'GET', 200),
    })]
    : [];
  if (fastAllowed && config.FAST_INVOKE === 'on') {
    fastPaths.push(fastInvokeHandler({
      config, keys: deps.keys, limits: deps.limits, metrics, ...(deps.meter && { meter: deps.meter }),
      // Requests come only after buildApp has returned, when `shedding` (below) is set.
      active: () => !closing && shedding?.shedder.reason === undefined,
      requestId: rawRequestId, ajvOptions: AJV_OPTIONS, log: logger,
    }));
  }

  const app: FastifyInstance = Fastify<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger>({
    // Keep-alive clients are told to close while draining, in-flight requests included (see drain-response.ts).
    http: { ServerResponse: drainAwareResponse(() => lifecycle.state === 'draining') },
    ...(fastPaths.length > 0 && { serverFactory: fastPathServerFactory(fastPaths) }),
    loggerInstance: logger,
    genReqId: requestId,
    // request.log is made on first use: most requests never log (see LOG_REQUESTS).
    childLoggerFactory: lazyChildLogger,
    // Per-request lines are ours (onResponse below, per LOG_REQUESTS): Fastify's two lines per request cost throughput.
    logController: new LogController({ requestIdLogLabel: 'request_id', disableRequestLogging: true }),
    bodyLimit: config.BODY_LIMIT_BYTES,
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    ajv: { customOptions: { ...AJV_OPTIONS } },
  });

  // Only JSON bodies: Fastify's built-in text/plain parser would turn a wrong Content-Type into a
  // confusing validation error instead of a 415.
  app.removeContentTypeParser('text/plain');

  const knownPaths = new Map<string, string[]>();
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    knownPaths.set(route.url, [...(knownPaths.get(route.url) ?? []), ...methods]);
  });
  installErrorHandling(app, () => knownPaths);

  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  lifecycle.onChange((state) => metrics.ready.set(state === 'ready' ? 1 : 0));
  app.addHook('onReady', (done) => {
    lifecycle.markReady();
    done();
  });

  // First, so that even a request refused while closing has its span.
  if (deps.tracer) installTracing(app, deps.tracer);

  const shedding = config.LOAD_SHEDDING === 'on' ? installLoadShedding(app, config, { metrics, health, ...(deps.pressure && { source: deps.pressure }) }) : undefined;
  // One hook for request id, shutdown and load shedding: every hook Fastify runs costs each request.
  app.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    // The response class does this on a socket; the header also covers app.inject().
    if (lifecycle.state === 'draining') void reply.header('connection', 'close');
    if (closing) {
      done(new ApiError('ERR_SERVICE_UNAVAILABLE', 'This instance is shutting down; retry.', undefined, { 'retry-after': '1' }));
      return;
    }
    if (shedding?.refuse(request, reply)) return;
    done();
  });
  if (config.TEST_RETAIN_BYTES_PER_REQUEST > 0) installTestRetention(app, config.TEST_RETAIN_BYTES_PER_REQUEST, config.TEST_RETAIN_MS);

  const idem: IdempotencyOptions = { store: deps.idempotency, metrics, ttlS: config.IDEMPOTENCY_TTL_S };

  // Authentication, rate limit and idempotency, as a hook of each route that declares a scope:
  // public routes (health, metrics) run no hook for it at all.
  const guard = (policy: RoutePolicy & { scope: Scope }): preHandlerAsyncHookHandler => async (request, reply) => {
    let principal;
    try {
      principal = authenticate(deps.keys, request.headers, policy.scope);
    } catch (err) {
      if (err instanceof ApiError) metrics.authFailures.inc({ code: err.code });
      throw err;
    }
    request.principal = principal;
    await admit(config, deps.limits, metrics, principal, policy.billable === true, request, reply);
    // Checked here so that the common request (no key) does not wait a microtask for nothing.
    if (request.headers['idempotency-key'] !== undefined) await beginIdempotent(idem, request, reply, principal.tenant);
  };
  // A callback hook, not async: only a request with an Idempotency-Key waits for anything here.
  const storeIdempotent: onSendHookHandler = (request, reply, payload, done) => {
    if (!request.idempotency) {
      done(null, payload);
      return;
    }
    finishIdempotent(idem, request, reply, payload).then(() => done(null, payload), done);
  };
  // Only the routes that declare a scope get these hooks: public routes (health, metrics) run none.
  app.addHook('onRoute', (route) => {
    const policy = route.config?.policy;
    if (!policy?.scope) return;
    const own = route.preHandler === undefined ? [] : Array.isArray(route.preHandler) ? route.preHandler : [route.preHandler];
    route.preHandler = [guard({ ...policy, scope: policy.scope }), ...own];
    const ownOnSend = route.onSend === undefined ? [] : Array.isArray(route.onSend) ? route.onSend : [route.onSend];
    route.onSend = [storeIdempotent, ...ownOnSend];
  });

  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.observeRequest(route, request.method, reply.statusCode, reply.elapsedTime / 1000);
    if (config.LOG_REQUESTS === 'all' || (config.LOG_REQUESTS === 'errors' && reply.statusCode >= 400)) {
      request.log.info(completionFields(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime, request.principal), 'request completed');
    }
    done();
  });

  healthRoutes(app, { version, lifecycle, health, metrics, overloaded: () => shedding?.shedder.reason });
  agenteseRoutes(app, { limits: deps.limits, metrics, ...(deps.meter && { meter: deps.meter }) });
  usageRoutes(app, { ...(deps.usage && { usage: deps.usage }) });
  adminRoutes(app, { instance: config.INSTANCE_ID, ...(deps.bus && { bus: deps.bus }) });
  webhookRoutes(app, { config, keys: deps.keys, billing: deps.billing, registry: metrics.registry, ...(deps.webhookProcessor && { processor: deps.webhookProcessor }) });
  return app;
}
