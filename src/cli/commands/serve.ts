import { buildApp } from '../../http/app.js';
import { Lifecycle } from '../../http/lifecycle.js';
import { loadConfig } from '../../config/load.js';
import { ApiMetrics } from '../../observability/metrics.js';
import { gracefulShutdown } from '../../runtime/shutdown.js';
import { startServices } from '../../runtime/services.js';
import { VERSION } from '../../version.js';
import type { Command } from '../command.js';
import { pino } from 'pino';
import { loggerOptions } from '../../observability/logger.js';

export const serveCommand: Command = {
  name: 'serve',
  summary: 'Run the API service (configured by environment variables; see README).',
  usage: 'Usage: kgents serve\n\nConfiguration comes from environment variables (PORT, NATS_URLS, REDIS_URL, ...); see the README.',
  async run() {
    const config = loadConfig();
    const bootLog = pino(loggerOptions(config.LOG_LEVEL, config.INSTANCE_ID));
    const metrics = new ApiMetrics(VERSION, config.INSTANCE_ID);
    const lifecycle = new Lifecycle();
    const services = await startServices(config, bootLog, metrics);
    const app = buildApp(config, {
      keys: services.keys, limits: services.limits.limits, idempotency: services.limits.idempotency, meter: services.meter, bus: services.bus, ...(services.billing && { billing: services.billing }), ...(services.usage && { usage: services.usage }),
      health: services.health, lifecycle, metrics, ...(services.tracing && { tracer: services.tracing.tracer }),
    });

    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        app.log.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      app.log.info({ signal }, 'shutdown requested');
      void gracefulShutdown(app, lifecycle, { delayMs: config.SHUTDOWN_DELAY_MS, timeoutMs: config.SHUTDOWN_TIMEOUT_MS }, () => services.close())
        .then((outcome) => process.exit(outcome === 'clean' ? 0 : 1));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));

    try {
      await app.listen({ port: config.PORT, host: config.HOST });
    } catch (err) {
      await services.close();
      throw err;
    }
    const degraded = services.health.snapshot().status !== 'ok';
    app.log.info({ version: VERSION, port: config.PORT, ...services.summary }, degraded
      ? 'kgents API listening in DEGRADED mode (see /health/saas)'
      : 'kgents API listening');
    if (services.keys.listKeys().length === 0) {
      app.log.info('the key store is empty: create the first API key with: npm run kgents -- keys create --tenant my-team --tier pro --scopes read,write');
    }
    return new Promise<number>(() => undefined);
  },
};
