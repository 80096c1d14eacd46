/**
 * The API as `kgents serve` builds it, minus the usage meter: authentication, rate limit and quota
 * in Redis, tokens added, metrics, hooks — but no usage event per invoke. For `npm run bench` only,
 * to measure what durable metering costs (`invoke` vs `invoke-nometer` in the same run). Not a
 * supported mode of the service: every billable call of the real service is metered.
 */
import { pino } from 'pino';
import { loadConfig } from '../src/config/load.js';
import { buildApp } from '../src/http/app.js';
import { Lifecycle } from '../src/http/lifecycle.js';
import { loggerOptions } from '../src/observability/logger.js';
import { ApiMetrics } from '../src/observability/metrics.js';
import { startServices } from '../src/runtime/services.js';
import { keepTickObjectShape } from '../src/runtime/tick-shape.js';
import { VERSION } from '../src/version.js';

const config = loadConfig();
if (config.TICK_SHAPE_KEEP === 'on') keepTickObjectShape();
const bootLog = pino(loggerOptions(config.LOG_LEVEL, config.INSTANCE_ID));
const metrics = new ApiMetrics(VERSION, config.INSTANCE_ID);
const services = await startServices(config, bootLog, metrics);
const app = buildApp(config, {
  keys: services.keys, limits: services.limits.limits, idempotency: services.limits.idempotency, bus: services.bus,
  health: services.health, lifecycle: new Lifecycle(), metrics,
});
let stopping = false;
const stop = (): void => {
  if (stopping) process.exit(1);
  stopping = true;
  void app.close().then(() => services.close()).then(() => process.exit(0), () => process.exit(1));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
await app.listen({ port: config.PORT, host: config.HOST });
app.log.info({ port: config.PORT }, 'bench API without metering listening');
