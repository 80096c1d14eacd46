import { createServer, type IncomingMessage, type ServerOptions, type ServerResponse } from 'node:http';
import type { FastifyServerFactory, FastifyServerFactoryHandler } from 'fastify';

/** Takes a request ahead of Fastify's router: true when it answers it, false to leave it to Fastify untouched. */
export type FastHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

/**
 * A server factory for Fastify whose listener offers each request to the fast paths (fast-health.ts,
 * fast-invoke.ts) in turn, and passes it to Fastify when none takes it.
 *
 * The server is built as Fastify builds its own HTTP/1 server from the same options, so timeouts,
 * keep-alive and the response class (drain-response.ts) do not change.
 */
export function fastPathServerFactory(handlers: readonly FastHandler[]): FastifyServerFactory {
  return (handler: FastifyServerFactoryHandler, fastifyOptions: Record<string, unknown>) => {
    const listener = (req: IncomingMessage, res: ServerResponse): void => {
      for (const fast of handlers) if (fast(req, res)) return;
      handler(req, res);
    };
    const server = createServer(httpOptions(fastifyOptions), listener);
    server.keepAliveTimeout = numberOption(fastifyOptions, 'keepAliveTimeout', server.keepAliveTimeout);
    server.requestTimeout = numberOption(fastifyOptions, 'requestTimeout', server.requestTimeout);
    server.setTimeout(numberOption(fastifyOptions, 'connectionTimeout', 0));
    const perSocket = numberOption(fastifyOptions, 'maxRequestsPerSocket', 0);
    // Zero means Node's default, as in Fastify.
    if (perSocket > 0) server.maxRequestsPerSocket = perSocket;
    return server;
  };
}

function httpOptions(fastifyOptions: Record<string, unknown>): ServerOptions<typeof IncomingMessage, typeof ServerResponse> {
  const http = fastifyOptions.http;
  return typeof http === 'object' && http !== null ? http : {};
}

function numberOption(fastifyOptions: Record<string, unknown>, name: string, fallback: number): number {
  const value = fastifyOptions[name];
  return typeof value === 'number' ? value : fallback;
}
