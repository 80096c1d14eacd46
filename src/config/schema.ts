import { z } from 'zod';

export const TIERS = ['free', 'pro', 'enterprise'] as const;
export type Tier = (typeof TIERS)[number];

export const SCOPES = ['read', 'write', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** OTEL_TRACES_SAMPLER values, named as in the OpenTelemetry environment variable specification. */
export const TRACE_SAMPLERS = ['parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio', 'always_on', 'always_off', 'traceidratio'] as const;

/** Parses "free=60,pro=600,enterprise=6000" into a full per-tier table; every tier must be named. */
const tierTable = (name: string) =>
  z.string().transform((raw, ctx) => {
    const table: Partial<Record<Tier, number>> = {};
    for (const part of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
      const match = /^([a-z]+)=(\d+)$/.exec(part);
      const tier = match?.[1] as Tier | undefined;
      if (!match || !tier || !TIERS.includes(tier)) {
        ctx.addIssue({ code: 'custom', message: `${name}: expected tier=number pairs for ${TIERS.join(', ')}, got "${part}"` });
        return z.NEVER;
      }
      table[tier] = Number(match[2]);
    }
    for (const tier of TIERS) {
      if (table[tier] === undefined) {
        ctx.addIssue({ code: 'custom', message: `${name}: missing a value for tier "${tier}"` });
        return z.NEVER;
      }
    }
    return table as Record<Tier, number>;
  });

const intFrom = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const urlList = z.string().transform((raw, ctx) => {
  const urls = raw.split(',').map((u) => u.trim()).filter(Boolean);
  for (const u of urls) {
    if (!/^(nats|tls|ws|wss):\/\/[^\s]+$|^[A-Za-z0-9.-]+:\d+$/.test(u)) {
      ctx.addIssue({ code: 'custom', message: `NATS_URLS: "${u}" is not a NATS URL (nats://host:port)` });
      return z.NEVER;
    }
  }
  return urls;
});

const optionalUrl = (name: string, protocols: readonly string[]) =>
  z.string().transform((raw, ctx) => {
    const value = raw.trim();
    if (value === '') return undefined;
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: `${name}: not a valid URL` });
      return z.NEVER;
    }
    if (!protocols.includes(parsed.protocol)) {
      ctx.addIssue({ code: 'custom', message: `${name}: protocol must be one of ${protocols.join(', ')}` });
      return z.NEVER;
    }
    return value;
  });

/**
 * Every environment variable the service reads, with its default and its meaning. README's
 * configuration table is checked against this list by a test, so keep descriptions user-facing.
 */
export const CONFIG_VARS = {
  PORT: { schema: intFrom(0, 65535), default: '8000', doc: 'TCP port the API listens on.' },
  HOST: { schema: z.string().min(1), default: '0.0.0.0', doc: 'Interface the API binds to.' },
  NATS_URLS: { schema: urlList, default: '', doc: 'Comma-separated NATS servers. Empty: start a local nats-server if installed, else run on fallbacks.' },
  REDIS_URL: { schema: optionalUrl('REDIS_URL', ['redis:', 'rediss:']), default: '', doc: 'Redis URL. Empty: start a local redis-server if installed, else keep limits in memory.' },
  EMBEDDED_SERVICES: { schema: z.enum(['auto', 'off']), default: 'auto', doc: '`auto`: when NATS_URLS/REDIS_URL are empty, start local nats-server/redis-server if installed. `off`: never.' },
  DATA_DIR: { schema: z.string().min(1), default: './data', doc: 'Directory for local state: embedded servers\' data, the file key store.' },
  LOG_LEVEL: { schema: z.enum(LOG_LEVELS), default: 'info', doc: 'pino log level.' },
  LOG_REQUESTS: { schema: z.enum(['errors', 'all', 'none']), default: 'errors', doc: 'Which requests get a completion log line: `errors` (status >= 400), `all`, or `none`.' },
  SHUTDOWN_DELAY_MS: { schema: intFrom(0, 600_000), default: '5000', doc: 'After SIGTERM, how long /ready answers 503 before the listener closes.' },
  SHUTDOWN_TIMEOUT_MS: { schema: intFrom(100, 600_000), default: '25000', doc: 'After the listener closes, how long in-flight requests may take before the process exits anyway.' },
  SHUTDOWN_DRAIN_MS: { schema: intFrom(0, 600_000), default: '10000', doc: 'At shutdown, how long to wait for the fallback queue to drain into JetStream (when JetStream answers) before exiting.' },
  RATE_LIMITS: { schema: tierTable('RATE_LIMITS'), default: 'free=60,pro=600,enterprise=6000', doc: 'Requests per minute per API key, by tier.' },
  TOKEN_QUOTAS: { schema: tierTable('TOKEN_QUOTAS'), default: 'free=100000,pro=10000000,enterprise=1000000000', doc: 'AGENTESE tokens per tenant per calendar month (UTC), by tier.' },
  IDEMPOTENCY_TTL_S: { schema: intFrom(60, 7 * 86400), default: '86400', doc: 'How long a response kept for an Idempotency-Key can be replayed.' },
  BODY_LIMIT_BYTES: { schema: intFrom(1024, 10 * 1024 * 1024), default: '65536', doc: 'Largest accepted request body; larger gets 413.' },
  REDIS_COMMAND_TIMEOUT_MS: { schema: intFrom(10, 60_000), default: '250', doc: 'A Redis call slower than this counts as a failure and the request is served from memory.' },
  NATS_CONNECT_TIMEOUT_MS: { schema: intFrom(100, 600_000), default: '15000', doc: 'How long start-up waits for NATS (to connect, then for JetStream to create or check the streams) before exiting with an error (the orchestrator restarts it).' },
  NATS_REPLICAS: { schema: intFrom(1, 5), default: '1', doc: 'Replicas for JetStream streams and KV buckets (3 in a cluster).' },
  METERING_MODE: { schema: z.enum(['durable', 'async']), default: 'durable', doc: '`durable`: a billable request is answered only after its usage event is acknowledged by JetStream or fsynced to the fallback queue. `async`: answered first; an event buffered in memory can be lost if the process crashes.' },
  METERING_LINGER_MS: { schema: z.coerce.number().min(0).max(50), default: '1', doc: 'How long the first usage event appended to an idle fallback queue waits for others to share its write and fsync (group commit). JetStream publishes do not wait for it: the events recorded in one event-loop turn share a message (METERING_BATCH_EVENTS).' },
  METERING_BATCH_EVENTS: { schema: intFrom(1, 1024), default: '128', doc: 'Most usage events in one JetStream message: the events recorded in one event-loop turn for one tenant and type share a message (a CloudEvents JSON batch) and its acknowledgement. 1: a message per event.' },
  PUBLISH_TIMEOUT_MS: { schema: intFrom(50, 60_000), default: '1000', doc: 'A JetStream publish not acknowledged within this time counts as a failure; the event goes to the fallback queue instead.' },
  BREAKER_FAILURE_THRESHOLD: { schema: intFrom(1, 1000), default: '5', doc: 'Consecutive publish failures or timeouts that open the circuit breaker.' },
  BREAKER_RESET_TIMEOUT_MS: { schema: intFrom(100, 3_600_000), default: '30000', doc: 'How long the breaker stays open before its own timer half-opens it to probe JetStream.' },
  BREAKER_SUCCESS_THRESHOLD: { schema: intFrom(1, 1000), default: '3', doc: 'Successful probes in half-open state that close the breaker.' },
  FALLBACK_QUEUE_MAX_BYTES: { schema: intFrom(1024 * 1024, 1024 * 1024 * 1024 * 1024), default: '1073741824', doc: 'Size bound of the on-disk fallback queue (DATA_DIR/fallback-queue). When full, billable requests get 503 ERR_METERING_UNAVAILABLE.' },
  USAGE_DUPLICATE_WINDOW_S: { schema: intFrom(60, 7 * 86400), default: '7200', doc: "JetStream duplicate window of the USAGE stream: the longest outage the fallback queue bridges without risk of a double count. JetStream keeps every message id of the window in memory." },
  USAGE_RETENTION_DAYS: { schema: intFrom(1, 3650), default: '35', doc: 'How long usage events stay in the USAGE stream.' },
  OPENMETER_URL: { schema: optionalUrl('OPENMETER_URL', ['http:', 'https:']), default: '', doc: 'OpenMeter base URL (events go to /api/v1/events). Empty: the exporter is off and events stay in the stream.' },
  OPENMETER_API_KEY: { schema: z.string(), default: '', doc: 'Bearer token for OpenMeter. Secret: never logged.' },
  EXPORTER_ENABLED: { schema: z.enum(['auto', 'off']), default: 'auto', doc: '`auto`: run the OpenMeter exporter inside `kgents serve` when OPENMETER_URL is set. `off`: leave it to a separate `kgents exporter`.' },
  EXPORTER_BATCH_SIZE: { schema: intFrom(1, 1000), default: '100', doc: 'Usage events per OpenMeter batch request.' },
  STRIPE_WEBHOOK_SECRET: { schema: z.string(), default: '', doc: 'Signing secret of the Stripe webhook endpoint (whsec_…). Empty: /webhooks/stripe answers 503. Secret: never logged.' },
  STRIPE_PRICE_TIERS: { schema: z.string(), default: '', doc: 'Maps Stripe price ids to tiers, e.g. `price_123=pro,price_456=enterprise`; a subscription without a mapped price uses its `metadata.tier`.' },
  KEY_STORE: { schema: z.enum(['auto', 'nats', 'file']), default: 'auto', doc: '`nats`: keys and tenants in JetStream KV; `file`: a JSON file under DATA_DIR (single instance, no NATS); `auto`: nats when NATS is available.' },
  INSTANCE_ID: { schema: z.string().regex(/^[A-Za-z0-9._-]{0,64}$/), default: '', doc: 'Name of this instance in logs and metrics. Empty: hostname and pid.' },
  TICK_SHAPE_KEEP: { schema: z.enum(['on', 'off']), default: 'on', doc: '`on`: `kgents serve` and `kgents exporter run` keep one `process.nextTick` queue entry alive for the life of the process, so that full GCs while the queue is empty do not leave nextTick on V8\'s slow path (about 6x slower per call on Node 20-24; see docs/benchmarks.md). `off`: Node\'s default behaviour.' },
  FAST_INVOKE: { schema: z.enum(['on', 'off']), default: 'on', doc: '`on`: the common `POST /v1/agentese/invoke` (JSON body with Content-Length, no Idempotency-Key, a valid key) is answered ahead of Fastify\'s router with the route\'s own validation, admission, billing and errors, for throughput; every other request still goes through Fastify. Off (as /health\'s fast path) while tracing is on, with LOG_REQUESTS=all, or while shedding load. `off`: every invoke goes through Fastify.' },
  LOAD_SHEDDING: { schema: z.enum(['on', 'off']), default: 'on', doc: '`on`: while event-loop delay or memory is over the SHED_* thresholds, new requests get 503 ERR_OVERLOADED with Retry-After and /ready reports `overloaded` (/health, /ready, /health/saas and /metrics are still served). `off`: never shed.' },
  SHED_EVENT_LOOP_DELAY_MS: { schema: intFrom(0, 60_000), default: '1000', doc: 'p99 event-loop delay over a sample window that counts as overload, when three windows in a row exceed it. 0: not a signal.' },
  SHED_HEAP_RATIO: { schema: z.coerce.number().min(0).max(1), default: '0.85', doc: 'Heap still live after a full GC, as a fraction of the V8 old-generation limit (`--max-old-space-size`), that counts as overload, as does heap in use (garbage included) half way from it to the limit; shedding stops 0.05 below. 0: not a signal.' },
  SHED_RSS_RATIO: { schema: z.coerce.number().min(0).max(1), default: '0.9', doc: 'Resident memory as a fraction of the memory limit (MEMORY_LIMIT_BYTES) that counts as overload; shedding stops 0.05 below it. 0: not a signal.' },
  MEMORY_LIMIT_BYTES: { schema: intFrom(0, 2 ** 50), default: '0', doc: 'Memory limit for SHED_RSS_RATIO. 0: the container (cgroup) limit when there is one, else RSS is not a signal.' },
  SHED_RETRY_AFTER_S: { schema: intFrom(1, 3600), default: '2', doc: 'Retry-After (seconds) of a request refused by load shedding.' },
  SHED_SAMPLE_MS: { schema: intFrom(50, 60_000), default: '250', doc: 'How often load is sampled (the event-loop delay window); requests only read the last verdict.' },
  TEST_RETAIN_BYTES_PER_REQUEST: { schema: intFrom(0, 64 * 1024 * 1024), default: '0', doc: 'TEST ONLY, never set in production: each admitted request keeps about this many bytes of heap for TEST_RETAIN_MS, so tests and `kgents chaos memory-pressure` can drive an instance toward its heap limit with ordinary requests. 0: off.' },
  TEST_RETAIN_MS: { schema: intFrom(1, 3_600_000), default: '60000', doc: 'TEST ONLY: how long TEST_RETAIN_BYTES_PER_REQUEST memory is kept.' },
  OTEL_EXPORTER_OTLP_ENDPOINT: { schema: optionalUrl('OTEL_EXPORTER_OTLP_ENDPOINT', ['http:', 'https:']), default: '', doc: 'OpenTelemetry collector base URL for OTLP/HTTP (e.g. `http://otel-collector:4318`); spans go to `<url>/v1/traces` as JSON. Empty: tracing off (no spans, no trace ids in logs).' },
  OTEL_SERVICE_NAME: { schema: z.string().min(1).max(128), default: 'kgents-api', doc: 'The `service.name` resource attribute of the spans.' },
  OTEL_TRACES_SAMPLER: { schema: z.enum(TRACE_SAMPLERS), default: 'parentbased_always_on', doc: 'Which traces are recorded: `parentbased_*` follow the sampled flag of an incoming `traceparent` and use the named rule for new traces; `traceidratio` records the fraction OTEL_TRACES_SAMPLER_ARG.' },
  OTEL_TRACES_SAMPLER_ARG: { schema: z.coerce.number().min(0).max(1), default: '1', doc: 'Fraction of new traces recorded by the `traceidratio` samplers (0 to 1).' },
  OTEL_BSP_MAX_QUEUE_SIZE: { schema: intFrom(1, 100_000), default: '2048', doc: 'Ended spans waiting for export, at most; more are dropped and counted in `kgents_tracing_spans_dropped_total` (bounds tracing\'s memory when the collector is slow or down).' },
  OTEL_BSP_MAX_EXPORT_BATCH_SIZE: { schema: intFrom(1, 100_000), default: '512', doc: 'Spans per export request (at most OTEL_BSP_MAX_QUEUE_SIZE).' },
  OTEL_BSP_SCHEDULE_DELAY: { schema: intFrom(10, 600_000), default: '5000', doc: 'Longest wait in ms before a partial batch is exported; also the pause between attempts while the collector fails.' },
  OTEL_EXPORTER_OTLP_TIMEOUT: { schema: intFrom(100, 600_000), default: '10000', doc: 'An export request not answered within this many ms is abandoned and its spans dropped (counted); requests never wait for exports.' },
} as const;

export type ConfigVarName = keyof typeof CONFIG_VARS;
