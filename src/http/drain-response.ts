import { ServerResponse, type IncomingMessage } from 'node:http';

const KEEP_ALIVE = Symbol('kgents.keepAlive');

/**
 * The server's response class (Fastify's `http.ServerResponse` option): while the instance drains it
 * answers every response not yet started with `Connection: close`, including requests that were
 * already in flight when draining began, so keep-alive clients move to another instance and
 * server.close() is not left waiting on their idle sockets.
 *
 * Why a response class and not an onSend hook: Node decides keep-alive from `shouldKeepAlive` when
 * it writes the headers, so making that property an accessor costs one check per response, where a
 * global onSend hook made Fastify run its hook machinery for every request (including /health).
 */
export function drainAwareResponse(draining: () => boolean): typeof ServerResponse {
  // Whether this Node defines shouldKeepAlive on each instance (a class field) instead of assigning
  // it, which would bypass the accessor: learnt from the first response, then applied to each one.
  let ownField: boolean | undefined;
  class DrainAwareResponse extends ServerResponse<IncomingMessage> {
    constructor(req: IncomingMessage) {
      super(req);
      ownField ??= Object.getOwnPropertyDescriptor(this, 'shouldKeepAlive') !== undefined;
      if (!ownField) return;
      const value = (this as unknown as Record<'shouldKeepAlive', unknown>).shouldKeepAlive;
      Reflect.deleteProperty(this, 'shouldKeepAlive');
      (this as unknown as Record<typeof KEEP_ALIVE, boolean>)[KEEP_ALIVE] = value === true;
    }
  }
  // An accessor on the prototype, not a field: the base constructor assigns shouldKeepAlive (and the
  // server assigns it again) through this setter; Node reads it only when it writes the headers.
  Object.defineProperty(DrainAwareResponse.prototype, 'shouldKeepAlive', {
    configurable: true,
    get(this: Record<typeof KEEP_ALIVE, boolean | undefined>): boolean {
      return this[KEEP_ALIVE] !== false && !draining();
    },
    set(this: Record<typeof KEEP_ALIVE, boolean | undefined>, value: boolean) {
      this[KEEP_ALIVE] = value;
    },
  });
  // Node's option type is the generic class; this subclass only ever serves IncomingMessage requests.
  return DrainAwareResponse as typeof ServerResponse;
}
