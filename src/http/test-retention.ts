import type { FastifyInstance } from 'fastify';

/**
 * TEST ONLY (TEST_RETAIN_BYTES_PER_REQUEST): every admitted request keeps that many bytes of heap for
 * TEST_RETAIN_MS, standing in for a per-request working set (a cache, a session, a leak). It lets
 * tests and the memory-pressure chaos scenario drive a real instance toward its heap limit with
 * ordinary HTTP load. Installed after the load-shedding hook, so a shed request retains nothing.
 */
export function installTestRetention(app: FastifyInstance, bytesPerRequest: number, retainMs: number): void {
  const held: { until: number; data: number[] }[] = [];
  const elements = Math.max(1, Math.ceil(bytesPerRequest / 8));
  app.addHook('onRequest', (_request, _reply, done) => {
    // A plain array of doubles lives on the V8 heap; a typed array's backing store would not count.
    held.push({ until: Date.now() + retainMs, data: new Array<number>(elements).fill(0.5) });
    done();
  });
  const timer = setInterval(() => {
    const now = Date.now();
    let expired = 0;
    while (expired < held.length && (held[expired]?.until ?? Infinity) <= now) expired++;
    if (expired > 0) held.splice(0, expired);
  }, 250);
  timer.unref();
  app.addHook('onClose', (_instance, done) => {
    clearInterval(timer);
    held.length = 0;
    done();
  });
}
