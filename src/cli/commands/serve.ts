import { buildApp } from '../../http/app.js';
import { Lifecycle } from '../../http/lifecycle.js';
import { loadConfig } from '../../config/load.js';
import { ApiMetrics } from '../../observability/metrics.js';
import { gracefulShutdown } from '../../runtime/shutdown.js';
import { closeHungUpStdioOnExit, stdoutLogs } from '../../runtime/stdio.js';
import { startServices } from '../../runtime/services.js';
import { keepTickObjectShape } from '../../runtime/tick-shape.js';
import { VERSION } from '../../version.js';
import type { Command } from '../command.js';
import { pino } from 'pino';
import { loggerOptions } from '../../observability/logger.js';

/** What a shell reports for a process killed by the signal (128 + its number). */
const SIGNAL_EXIT_CODES = { SIGHUP: 129, SIGINT: 130, SIGQUIT: 131, SIGTERM: 143 } as const;
type StopSignal = 'SIGTERM' | 'SIGINT' | 'SIGHUP';

export const serveCommand: Command = {
  name: 'serve',
  summary: 'Run the API service (configured by environment variables; see README).',
  usage: 'Usage: kgents serve\n\nConfiguration comes from environment variables (PORT, NATS_URLS, REDIS_URL, ...); see the README.',
  async run() {
    const config = loadConfig();
    if (config.TICK_SHAPE_KEEP === 'on') keepTickObjectShape();
    // SIGHUP means the terminal was closed: the service still drains, with nowhere to log.
    const logs = stdoutLogs();
    closeHungUpStdioOnExit();
    const bootLog = pino(loggerOptions(config.LOG_LEVEL, config.INSTANCE_ID), logs.stream);
    const exitNow = (code: number): void => {
      void logs.close(500).then(() => process.exit(code));
    };
    // The embedded servers run in their own process group, out of reach of a terminal's Ctrl-C or
    // hang-up, so every way this process stops has to take them along. Until the service is up there
    // is nothing to drain: a stop request exits at once, and ManagedProcess's exit hook kills them.
    let stop = (signal: StopSignal): void => {
      bootLog.warn({ signal }, 'shutdown requested during start-up: exiting now');
      exitNow(SIGNAL_EXIT_CODES[signal]);
    };
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => stop(signal));
    // Ctrl-\ asks for no drain; without a handler the process would die before its exit hook runs.
    process.on('SIGQUIT', () => {
      bootLog.warn({ signal: 'SIGQUIT' }, 'SIGQUIT: exiting now, without draining');
      exitNow(SIGNAL_EXIT_CODES.SIGQUIT);
    });
    const metrics = new ApiMetrics(VERSION, config.INSTANCE_ID);
    const lifecycle = new Lifecycle();
    const services = await startServices(config, bootLog, metrics);
    const app = buildApp(config, {
      keys: services.keys, limits: services.limits.limits, idempotency: services.limits.idempotency, meter: services.meter, bus: services.bus, ...(services.billing && { billing: services.billing }), ...(services.usage && { usage: services.usage }),
      health: services.health, lifecycle, metrics, logDestination: logs.stream, ...(services.tracing && { tracer: services.tracing.tracer }),
    });

    let stopping = false;
    stop = (signal) => {
      if (stopping) {
        app.log.warn({ signal }, 'second signal: exiting now');
        exitNow(1);
        return;
      }
      stopping = true;
      app.log.info({ signal }, 'shutdown requested');
      void (async () => {
        let code = 1;
        try {
          const outcome = await gracefulShutdown(app, lifecycle, { delayMs: config.SHUTDOWN_DELAY_MS, timeoutMs: config.SHUTDOWN_TIMEOUT_MS }, () => services.close());
          code = outcome === 'clean' ? 0 : 1;
        } catch (err) {
          app.log.error({ err }, 'shutdown failed');
        }
        await logs.close(1000);
        process.exit(code);
      })();
    };

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
