import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { loadConfig, type Config } from '../../src/config/load.js';
import type { ConfigVarName } from '../../src/config/schema.js';
import { buildApp } from '../../src/http/app.js';
import { Lifecycle } from '../../src/http/lifecycle.js';
import { ApiMetrics } from '../../src/observability/metrics.js';
import { startServices, type Services } from '../../src/runtime/services.js';
import { LogCapture } from './app.js';

/** The real service wired as `kgents serve` wires it, in this process, for app.inject(). */
export interface ApiInstance {
  readonly app: FastifyInstance;
  readonly services: Services;
  readonly config: Config;
  readonly logs: LogCapture;
  close(): Promise<void>;
}

export async function startApi(env: Partial<Record<ConfigVarName, string>>, name = 'api'): Promise<ApiInstance> {
  const config = loadConfig({}, { EMBEDDED_SERVICES: 'off', INSTANCE_ID: name, LOG_LEVEL: 'info', ...env });
  const logs = new LogCapture();
  const metrics = new ApiMetrics('test', name);
  const services = await startServices(config, pino({ level: 'info' }, logs), metrics);
  const app = buildApp(config, {
    keys: services.keys, limits: services.limits.limits, idempotency: services.limits.idempotency, meter: services.meter,
    bus: services.bus, ...(services.billing && { billing: services.billing }), ...(services.usage && { usage: services.usage }),
    health: services.health, lifecycle: new Lifecycle(), metrics, logDestination: logs, ...(services.tracing && { tracer: services.tracing.tracer }),
  });
  await app.ready();
  return {
    app, services, config, logs,
    close: async () => {
      await app.close();
      await services.close();
    },
  };
}
