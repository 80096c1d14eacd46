import type { FastifyBaseLogger } from 'fastify';
import { connectNats, redactUrl, type NatsConnection } from '../adapters/nats/connection.js';
import { openKeyStore } from '../adapters/nats/key-store-factory.js';
import { createLimitBackends, type LimitBackends } from '../adapters/redis/resilient.js';
import type { Config } from '../config/load.js';
import type { KeyStore } from '../domain/tenancy/types.js';
import { HealthRegistry } from '../http/health.js';
import type { ApiMetrics } from '../observability/metrics.js';
import { startEmbedded, type EmbeddedServices } from './embedded.js';

/** Everything `kgents serve` wires up before building the app, and how to take it down again. */
export interface Services {
  readonly keys: KeyStore;
  readonly limits: LimitBackends;
  readonly nats: NatsConnection | undefined;
  readonly health: HealthRegistry;
  readonly embedded: EmbeddedServices;
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
    nats: wantEmbedded && config.NATS_URLS.length === 0 && config.KEY_STORE !== 'file',
    redis: wantEmbedded && config.REDIS_URL === undefined,
  });
  for (const note of embedded.notes) log.info(note);
  const natsUrls = config.NATS_URLS.length > 0 ? config.NATS_URLS : embedded.natsUrl ? [embedded.natsUrl] : [];
  const redisUrl = config.REDIS_URL ?? embedded.redisUrl;

  const opened: (() => Promise<void>)[] = [() => embedded.stop()];
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
    let nats: NatsConnection | undefined;
    if (natsUrls.length > 0 && config.KEY_STORE !== 'file') {
      nats = await connectNats(natsUrls, { name: `kgents-api ${config.INSTANCE_ID}`, timeoutMs: config.NATS_CONNECT_TIMEOUT_MS });
      const conn = nats;
      const stopFollowing = conn.onStatusChange((h) => {
        metrics.dependencyUp.set({ component: 'nats' }, h.status === 'ok' ? 1 : 0);
        metrics.setMode('nats', h.status === 'ok' ? 'jetstream' : 'fallback', ['jetstream', 'fallback']);
        if (h.status === 'ok') log.info({ component: 'nats' }, 'NATS connection restored');
        else log.warn({ component: 'nats', error: h.last_error }, 'NATS connection lost; reconnecting');
      });
      opened.push(() => {
        stopFollowing();
        return conn.close();
      });
      log.info({ servers: natsUrls.map(redactUrl) }, 'connected to NATS');
    }

    const keys = await openKeyStore(config, {
      ...(nats && { natsConnection: nats }),
      logger: { warn: (fields, msg) => log.warn(fields, msg), info: (fields, msg) => log.info(fields, msg) },
    });
    opened.push(() => keys.close());

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
      if (!nats) return { status: 'disabled', mode: 'fallback', circuit: 'open', fallback_queue_depth: 0, detail: 'no NATS configured or installed' };
      const h = nats.health();
      return { status: h.status, mode: h.status === 'ok' ? 'jetstream' : 'fallback', circuit: h.status === 'ok' ? 'closed' : 'open', fallback_queue_depth: 0, since: h.since, ...(h.last_error && { last_error: h.last_error }) };
    });
    health.register('redis', () => ({ ...limits.status() }));
    health.register('key_store', () => ({
      status: keys.kind === 'nats' ? 'ok' : 'degraded',
      backend: keys.kind,
      keys: keys.listKeys().length,
      tenants: keys.listTenants().length,
    }));
    if (!nats) metrics.setMode('nats', 'fallback', ['jetstream', 'fallback']);

    return {
      keys, limits, nats, health, embedded,
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
