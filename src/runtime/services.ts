import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import type { FastifyBaseLogger } from 'fastify';
import { FallbackQueue, type QueuePosition } from '../adapters/disk/index.js';
import { connectNats, NatsUnreachableError, redactUrl, type NatsConnection } from '../adapters/nats/connection.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureStreams } from '../adapters/nats/streams.js';
import { JETSTREAM_NOT_READY } from '../adapters/nats/transient.js';
import { JetStreamUsagePublisher } from '../adapters/nats/usage-publisher.js';
import { StreamUsageQuery } from '../adapters/nats/usage-query.js';
import { disabledExporterStatus, UsageExporter } from '../adapters/openmeter/exporter.js';
import { NatsBillingBackend } from '../adapters/stripe/nats-billing.js';
import { serveBusProbe } from '../adapters/nats/admin-bus.js';
import { watchBusRecovery } from '../adapters/nats/bus-recovery.js';
import { USAGE_STREAM } from '../adapters/nats/streams.js';
import type { BusAdmin } from '../http/routes/admin.js';
import { CircuitBreaker } from '../domain/metering/circuit-breaker.js';
import { DurableMeter } from '../domain/metering/durable-meter.js';
import { openKeyStore } from '../adapters/nats/key-store-factory.js';
import { createLimitBackends, type LimitBackends } from '../adapters/redis/resilient.js';
import type { Config } from '../config/load.js';
import type { KeyStore } from '../domain/tenancy/types.js';
import { HealthRegistry } from '../http/health.js';
import type { ApiMetrics } from '../observability/metrics.js';
import { VERSION } from '../version.js';
import { startEmbedded, type EmbeddedServices } from './embedded.js';
import { startTracing, type Tracing } from './tracing.js';

/** Everything `kgents serve` wires up before building the app, and how to take it down again. */
export interface Services {
  readonly keys: KeyStore;
  readonly limits: LimitBackends;
  readonly nats: NatsConnection | undefined;
  readonly meter: DurableMeter<QueuePosition>;
  readonly usage: StreamUsageQuery | undefined;
  readonly bus: BusAdmin;
  readonly billing: NatsBillingBackend | undefined;
  readonly health: HealthRegistry;
  readonly embedded: EmbeddedServices;
  /** OpenTelemetry tracing; undefined when OTEL_EXPORTER_OTLP_ENDPOINT is unset. */
  readonly tracing: Tracing | undefined;
  /** Which backend each dependency runs on, for the start-up banner. */
  readonly summary: Readonly<Record<string, string>>;
  close(): Promise<void>;
}

/**
 * Resolves where NATS and Redis are (configured, embedded, or absent), connects, opens the key
 * store and registers health sources. Order matters for close(): the reverse of opening.
 */
export async function startServices(config: Config, log: FastifyBaseLogger, metrics: ApiMetrics): Promise<Services> {
  const wantEmbedded = config.EMBEDDED_SERVICES === 'auto';
  const embedded = await startEmbedded({
    dataDir: config.DATA_DIR,
    nats: wantEmbedded && config.NATS_URLS.length === 0,
    redis: wantEmbedded && config.REDIS_URL === undefined,
  });
  for (const note of embedded.notes) log.info(note);
  const natsUrls = config.NATS_URLS.length > 0 ? config.NATS_URLS : embedded.natsUrl ? [embedded.natsUrl] : [];
  const redisUrl = config.REDIS_URL ?? embedded.redisUrl;

  // First opened, so stopped last: every client above has let go of the servers by then.
  const opened: (() => Promise<void>)[] = [async () => {
    const running = [...(embedded.natsUrl ? ['nats-server'] : []), ...(embedded.redisUrl ? ['redis-server'] : [])];
    if (running.length > 0) log.info({ servers: running }, 'stopping the embedded servers');
    await embedded.stop();
    if (running.length > 0) log.info({ servers: running }, 'embedded servers stopped');
  }];
  const closeAll = async (): Promise<void> => {
    for (const close of opened.reverse()) {
      try {
        await close();
      } catch (err) {
        log.warn({ err }, 'error while closing a dependency');
      }
    }
  };

  try {
    // Closed next to last: spans of the whole shutdown are flushed (with a deadline) before exit.
    const tracing = startTracing(config, metrics.registry, log, VERSION);
    if (tracing) opened.push(() => tracing.shutdown());

    let nats: NatsConnection | undefined;
    if (natsUrls.length > 0) {
      nats = await connectWithRetry(natsUrls, config, log);
      const conn = nats;
      const stopFollowing = conn.onStatusChange((h) => {
        metrics.dependencyUp.set({ component: 'nats' }, h.status === 'ok' ? 1 : 0);
        if (h.status === 'ok') log.info({ component: 'nats' }, 'NATS connection restored');
        else log.warn({ component: 'nats', error: h.last_error }, 'NATS connection lost; reconnecting');
      });
      opened.push(() => {
        stopFollowing();
        return conn.close();
      });
      metrics.dependencyUp.set({ component: 'nats' }, 1);
      log.info({ servers: natsUrls.map(redactUrl) }, 'connected to NATS');
    }

    if (nats) {
      const notReady = {
        deadlineMs: config.NATS_CONNECT_TIMEOUT_MS,
        onRetry: (err: unknown, attempt: number) => {
          if (attempt === 1) log.warn({ component: 'nats', err, wait_ms: config.NATS_CONNECT_TIMEOUT_MS }, JETSTREAM_NOT_READY);
        },
      };
      const jsm = await jetstreamManager(nats.nc);
      const streams = await ensureStreams(jsm, {
        replicas: config.NATS_REPLICAS, usageDuplicateWindowS: config.USAGE_DUPLICATE_WINDOW_S, usageRetentionDays: config.USAGE_RETENTION_DAYS,
      }, notReady);
      log.info({ streams: streams.map((r) => `${r.name}:${r.action}`) }, 'JetStream streams ready');
    }

    const meter = await openMeter(config, nats, log, metrics);
    opened.push(() => meter.close());

    const bus: BusAdmin = {
      forceProbe: () => {
        meter.meter.breaker.forceProbe('forced by an operator');
        const st = meter.meter.status();
        return { circuit: st.circuit, fallback_queue_depth: st.fallback_queue_depth };
      },
    };
    if (nats) {
      const sub = serveBusProbe(nats, config.INSTANCE_ID, () => bus.forceProbe());
      opened.push(() => {
        sub.unsubscribe();
        return Promise.resolve();
      });
    }

    const keys = await openKeyStore(config, {
      ...(nats && { natsConnection: nats }),
      logger: { warn: (fields, msg) => log.warn(fields, msg), info: (fields, msg) => log.info(fields, msg) },
    });
    opened.push(() => keys.close());

    // Webhook effects need the KV ledger: without NATS, handled Stripe events get 503 and are retried.
    const billing = nats && keys.kind === 'nats' ? new NatsBillingBackend(nats, { replicas: config.NATS_REPLICAS }) : undefined;
    if (billing && config.STRIPE_WEBHOOK_SECRET !== '') {
      await billing.ready().catch((err: unknown) => log.warn({ err }, 'Stripe webhook ledger not ready yet; it opens on the first webhook'));
    }

    const limits = await createLimitBackends({
      redisUrl,
      commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
      connectionName: `kgents-api-${config.INSTANCE_ID}`,
    });
    opened.push(() => limits.close());
    const reportRedis = (): void => {
      const s = limits.status();
      metrics.dependencyUp.set({ component: 'redis' }, s.status === 'ok' ? 1 : 0);
      metrics.setMode('redis', s.mode, ['redis', 'memory']);
    };
    reportRedis();
    limits.onModeChange((s) => {
      reportRedis();
      if (s.mode === 'redis') log.info({ component: 'redis' }, 'Redis is back: rate limits and idempotency use Redis again');
      else log.warn({ component: 'redis', error: s.last_error }, 'Redis unavailable: rate limits and idempotency fall back to per-instance memory');
    });

    const health = new HealthRegistry();
    health.register('nats', () => {
      const m = meter.meter.status();
      const queue = { circuit: m.circuit, fallback_queue_depth: m.fallback_queue_depth, fallback_queue_oldest_age_s: Math.round(m.fallback_queue_oldest_age_s) };
      if (!nats) return { status: 'disabled', mode: 'fallback', ...queue, detail: 'no NATS configured or installed: usage events wait in the fallback queue' };
      const h = nats.health();
      const working = h.status === 'ok' && m.circuit === 'closed';
      return {
        status: working ? 'ok' : 'down', mode: m.circuit === 'closed' ? 'jetstream' : 'fallback', ...queue, connection: h.status,
        ...(m.circuit !== 'closed' && { last_failure: meter.meter.breaker.lastFailure }), ...(h.last_error && { last_error: h.last_error }),
      };
    });
    health.register('redis', () => ({ ...limits.status() }));

    // Replicas share one durable consumer, so running an exporter in every instance needs no election.
    let exporter: UsageExporter | undefined;
    if (nats && config.OPENMETER_URL !== undefined && config.EXPORTER_ENABLED === 'auto') {
      const running = new UsageExporter({
        nats, url: config.OPENMETER_URL, apiKey: config.OPENMETER_API_KEY, batchSize: config.EXPORTER_BATCH_SIZE, registry: metrics.registry,
        logger: { info: (f, m) => log.info(f, m), warn: (f, m) => log.warn(f, m), error: (f, m) => log.error(f, m) },
      });
      running.start();
      exporter = running;
      // Pushed after NATS opened, so it stops (and hands back unacked events) before NATS closes.
      opened.push(() => running.stop(5000));
    }
    if (billing && config.STRIPE_WEBHOOK_SECRET !== '') health.register('stripe_webhooks', () => ({ ...billing.status() }));
    health.register('exporter', () => exporter ? { ...exporter.status() } : disabledExporterStatus(
      config.OPENMETER_URL === undefined ? 'OPENMETER_URL not set: usage events stay in USAGE' : !nats ? 'no NATS' : 'EXPORTER_ENABLED=off: run kgents exporter'), { optional: true });
    health.register('key_store', () => ({
      status: keys.kind === 'nats' ? 'ok' : 'degraded',
      backend: keys.kind,
      keys: keys.listKeys().length,
      tenants: keys.listTenants().length,
    }));
    if (!nats) metrics.dependencyUp.set({ component: 'nats' }, 0);

    return {
      keys, limits, nats, health, embedded, tracing, meter: meter.meter, usage: nats ? new StreamUsageQuery(nats) : undefined, bus, billing,
      summary: {
        nats: nats ? `jetstream (${natsUrls.map(redactUrl).join(', ')})` : 'none: fallbacks',
        redis: limits.status().mode === 'redis' ? 'redis' : `memory (${limits.status().status})`,
        key_store: keys.kind,
      },
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** At most one early breaker probe per this interval (reconnect, leader elected, stream info). */
const EARLY_PROBE_INTERVAL_MS = 3000;
/** While the breaker is open, USAGE stream info is asked for this often. */
const EARLY_PROBE_CHECK_MS = 2000;

/**
 * The metering pipeline: breaker, JetStream publisher, on-disk fallback queue and its drainer. The
 * queue opens even without NATS, so usage is never dropped: it waits on disk for a bus.
 */
async function openMeter(config: Config, nats: NatsConnection | undefined, log: FastifyBaseLogger, metrics: ApiMetrics): Promise<{ meter: DurableMeter<QueuePosition>; close(): Promise<void> }> {
  const queue = await FallbackQueue.open(join(config.DATA_DIR, 'fallback-queue'), {
    maxBytes: config.FALLBACK_QUEUE_MAX_BYTES,
    lingerMs: config.METERING_LINGER_MS,
    logger: { warn: (f, m) => log.warn(f, m), error: (f, m) => log.error(f, m) },
  });
  const breaker = new CircuitBreaker({
    failureThreshold: config.BREAKER_FAILURE_THRESHOLD,
    resetTimeoutMs: config.BREAKER_RESET_TIMEOUT_MS,
    successThreshold: config.BREAKER_SUCCESS_THRESHOLD,
    earlyProbeIntervalMs: EARLY_PROBE_INTERVAL_MS,
  });
  const stateValue = { closed: 0, half_open: 1, open: 2 } as const;
  breaker.onTransition((t) => {
    metrics.circuitState.set(stateValue[t.to]);
    metrics.circuitTransitions.inc({ to: t.to });
    metrics.setMode('nats', t.to === 'closed' ? 'jetstream' : 'fallback', ['jetstream', 'fallback']);
    const fields = { component: 'metering', from: t.from, to: t.to, reason: t.reason, fallback_queue_depth: queue.depth };
    if (t.earlyProbe !== undefined) {
      metrics.circuitEarlyProbes.inc({ reason: t.earlyProbe });
      log.warn({ ...fields, early_probe: t.earlyProbe }, 'circuit breaker half-open early (the bus looks back): probing JetStream');
    } else if (t.to === 'closed') log.info(fields, 'circuit breaker closed: usage events go to JetStream');
    else log.warn(fields, t.to === 'open' ? 'circuit breaker opened: usage events go to the fallback queue' : 'circuit breaker half-open: probing JetStream');
  });
  const publisher = nats ? new JetStreamUsagePublisher(nats, config.PUBLISH_TIMEOUT_MS) : undefined;
  const meter = new DurableMeter(publisher, queue, breaker, { mode: config.METERING_MODE, maxBatchEvents: config.METERING_BATCH_EVENTS }, {
    onRecorded: (outcome) => metrics.countUsageEvent(outcome),
    onDrained: (events, duplicates) => {
      metrics.fallbackDrained.inc(events);
      if (duplicates > 0) metrics.fallbackDrainDuplicates.inc(duplicates);
    },
    onUndeliverable: (reason) => metrics.usageUndeliverable.inc({ reason }),
    log: { warn: (f, m) => log.warn(f, m), error: (f, m) => log.error(f, m), info: (f, m) => log.info(f, m) },
  });
  metrics.circuitState.set(stateValue[breaker.state]);
  metrics.setMode('nats', breaker.state === 'closed' ? 'jetstream' : 'fallback', ['jetstream', 'fallback']);
  metrics.observeMeter(() => meter.status());
  // The connection's own events move the breaker faster than counting failed publishes would, and
  // evidence that the bus is back (reconnect, new USAGE leader, stream info answered) probes early
  // instead of waiting for BREAKER_RESET_TIMEOUT_MS.
  const stopFollowing = nats?.onStatusChange((h) => {
    if (h.status === 'down') breaker.trip(`NATS connection lost${h.last_error ? `: ${h.last_error}` : ''}`);
    else breaker.probeNow('reconnect');
  });
  const stopWatching = nats && watchBusRecovery(nats, { stream: USAGE_STREAM, wanted: () => breaker.state === 'open', checkIntervalMs: EARLY_PROBE_CHECK_MS }, (signal, detail) => {
    if (breaker.state !== 'open') return;
    const outcome = breaker.probeNow(signal);
    if (outcome === 'deferred') log.info({ component: 'metering', early_probe: signal, detail }, 'bus looks back; early probe deferred (one per interval)');
  });
  if (queue.depth > 0) log.warn({ fallback_queue_depth: queue.depth }, 'fallback queue holds usage events from an earlier run; draining them');
  meter.start();
  return {
    meter,
    close: async () => {
      stopFollowing?.();
      stopWatching?.();
      // A pod being replaced may lose its disk: hand queued events to JetStream first when it answers.
      if (publisher && breaker.state !== 'open' && queue.depth > 0) {
        log.info({ fallback_queue_depth: queue.depth }, 'shutdown: draining the fallback queue before exit');
        if (!(await meter.drained(config.SHUTDOWN_DRAIN_MS))) log.warn({ fallback_queue_depth: queue.depth }, 'shutdown: fallback queue not empty; it is drained when this DATA_DIR is next used');
      }
      await meter.stop();
      breaker.close();
      await queue.close();
    },
  };
}

/**
 * An instance restarted during a NATS outage waits for it (up to NATS_CONNECT_TIMEOUT_MS) rather
 * than exiting at once: its fallback queue may hold usage events that only it can drain.
 */
async function connectWithRetry(urls: readonly string[], config: Config, log: FastifyBaseLogger): Promise<NatsConnection> {
  const deadline = Date.now() + config.NATS_CONNECT_TIMEOUT_MS;
  let attempt = 0;
  for (;;) {
    attempt++;
    try {
      return await connectNats(urls, { name: `kgents-api ${config.INSTANCE_ID}`, timeoutMs: Math.min(5000, config.NATS_CONNECT_TIMEOUT_MS) });
    } catch (err) {
      if (!(err instanceof NatsUnreachableError) || Date.now() + 500 > deadline) throw err;
      if (attempt === 1) log.warn({ servers: urls.map(redactUrl), wait_ms: config.NATS_CONNECT_TIMEOUT_MS }, `${err.message}; retrying until the start-up deadline`);
      await sleep(Math.min(1000, 100 * attempt));
    }
  }
}
