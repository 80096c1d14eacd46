/**
 * The API as `kgents serve` builds it, minus the usage meter: authentication, rate limit and quota
 * in Redis, tokens added, metrics, hooks — but no usage event per invoke. For `npm run bench` only,
 * to measure what durable metering costs (`invoke` vs `invoke-nometer` in the same run). Not a
 * supported mode of the service: every billable call of the real service is metered.
 *
 * BENCH_WAIT_METER (unset by default) gives it a stand-in meter that builds and sends no usage event,
 * to tell what of metering's cost is the answer waiting from what is the event's own work. The
 * stand-in's record() resolves, once per event-loop turn for all of that turn's calls:
 *   turn   at the end of the turn (setImmediate), with no I/O;
 *   nats   on JetStream's acknowledgement of one fixed 14-byte message published at the end of the
 *          turn, as the real meter publishes the turn's batch (same publisher class, same stream);
 *   delay  1 ms after the end of the turn (a timer), with no I/O.
 */
import { pino } from 'pino';
import { JetStreamUsagePublisher } from '../src/adapters/nats/usage-publisher.js';
import { loadConfig } from '../src/config/load.js';
import type { UsageMeter } from '../src/domain/metering/ports.js';
import { uniqueId } from '../src/domain/unique-id.js';
import { buildApp } from '../src/http/app.js';
import { Lifecycle } from '../src/http/lifecycle.js';
import { loggerOptions } from '../src/observability/logger.js';
import { ApiMetrics } from '../src/observability/metrics.js';
import { startServices } from '../src/runtime/services.js';
import { keepTickObjectShape } from '../src/runtime/tick-shape.js';
import { VERSION } from '../src/version.js';

const WAIT_MODES = ['turn', 'nats', 'delay'] as const;
const waitMode = process.env.BENCH_WAIT_METER;
if (waitMode !== undefined && !(WAIT_MODES as readonly string[]).includes(waitMode)) {
  process.stderr.write(`BENCH_WAIT_METER must be one of ${WAIT_MODES.join(', ')}; got "${waitMode}"\n`);
  process.exit(2);
}

const config = loadConfig();
if (config.TICK_SHAPE_KEEP === 'on') keepTickObjectShape();
const bootLog = pino(loggerOptions(config.LOG_LEVEL, config.INSTANCE_ID));
const metrics = new ApiMetrics(VERSION, config.INSTANCE_ID);
const services = await startServices(config, bootLog, metrics);
const natsConn = services.nats;
if (waitMode === 'nats' && !natsConn) {
  process.stderr.write('BENCH_WAIT_METER=nats needs NATS_URLS\n');
  process.exit(2);
}
const publisher = waitMode === 'nats' && natsConn ? new JetStreamUsagePublisher(natsConn, config.PUBLISH_TIMEOUT_MS) : undefined;
const FIXED_MESSAGE = Buffer.from('{"bench":true}');
let turnWait: Promise<'published'> | undefined;
/** One promise per event-loop turn, shared by the turn's calls, as the real meter's batch is. */
const waitMeter: UsageMeter = {
  record: () => (turnWait ??= new Promise((resolve, reject) => setImmediate(() => {
    turnWait = undefined;
    if (publisher) publisher.publish({ id: uniqueId(), subject: 'bench', type: 'agentese.invoke' }, FIXED_MESSAGE).then(() => resolve('published'), reject);
    else if (waitMode === 'delay') setTimeout(() => resolve('published'), 1);
    else resolve('published');
  }))),
};
const app = buildApp(config, {
  keys: services.keys, limits: services.limits.limits, idempotency: services.limits.idempotency, bus: services.bus,
  health: services.health, lifecycle: new Lifecycle(), metrics,
  ...(waitMode !== undefined && { meter: waitMeter }),
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
