import type { FastifyInstance } from 'fastify';
import { lazyChildLogger } from '../observability/lazy-child-logger.js';
import type { RequestTracer, TraceSpan } from '../observability/tracing.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's server span; undefined when tracing is off. */
    span?: TraceSpan;
  }
}

/**
 * One server span per request, continuing the caller's W3C trace context. The request's logger
 * carries trace_id and span_id, so every line logged for the request joins its trace. Installed only
 * when a tracer exists: with tracing off the app has none of these hooks.
 */
export function installTracing(app: FastifyInstance, tracer: RequestTracer): void {
  app.decorateRequest('span', undefined);

  app.addHook('onRequest', (request, reply, done) => {
    const route = request.routeOptions.url;
    const span = tracer.startServerSpan(route === undefined ? request.method : `${request.method} ${route}`, request.headers, route === undefined
      ? { 'http.request.method': request.method, 'kgents.request_id': request.id }
      : { 'http.request.method': request.method, 'http.route': route, 'kgents.request_id': request.id });
    request.span = span;
    // Replaces Fastify's request logger with one that also binds the trace ids; still made on first
    // use only (a pino child per request was the largest cost of tracing in the profile).
    request.log = lazyChildLogger(app.log, { request_id: request.id, trace_id: span.traceId, span_id: span.spanId }, {});
    // W3C Trace Context level 2: tells the caller which trace (and whether sampled) served it.
    void reply.header('traceresponse', span.traceparent());
    done();
  });

  app.addHook('onResponse', (request, reply, done) => {
    const span = request.span;
    if (span) {
      span.setAttribute('http.response.status_code', reply.statusCode);
      if (request.principal) span.setAttribute('kgents.tenant', request.principal.tenant);
      if (reply.statusCode >= 500) span.fail(`HTTP ${reply.statusCode}`);
      span.end();
    }
    done();
  });

  app.addHook('onRequestAbort', (request, done) => {
    const span = request.span;
    if (span) {
      span.fail('client closed the connection before the response');
      span.end();
    }
    done();
  });
}
