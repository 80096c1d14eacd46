import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import type { Lifecycle } from '../http/lifecycle.js';

export interface ShutdownOptions {
  /** How long /ready answers 503 before the listener closes, so load balancers stop sending first. */
  readonly delayMs: number;
  /** How long in-flight requests may take after the listener closes. */
  readonly timeoutMs: number;
}

export type ShutdownOutcome = 'clean' | 'timeout';

/**
 * The zero-downtime sequence: report not-ready, keep serving while the endpoint is taken out of
 * rotation, stop accepting, let every in-flight request finish, then close dependencies.
 */
export async function gracefulShutdown(
  app: FastifyInstance,
  lifecycle: Lifecycle,
  options: ShutdownOptions,
  closeDependencies: () => Promise<void>,
): Promise<ShutdownOutcome> {
  lifecycle.drain();
  app.log.info({ delay_ms: options.delayMs }, 'shutdown: draining, /ready now answers 503');
  if (options.delayMs > 0) await sleep(options.delayMs);
  app.log.info('shutdown: closing the listener and waiting for in-flight requests');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), options.timeoutMs);
  });
  const outcome = await Promise.race([app.close().then(() => 'clean' as const), timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') app.log.error({ timeout_ms: options.timeoutMs }, 'shutdown: in-flight requests did not finish in time');
  await closeDependencies();
  app.log.info({ outcome }, 'shutdown: done');
  return outcome;
}
