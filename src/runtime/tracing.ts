import type { FastifyBaseLogger } from 'fastify';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { DropReason } from '../adapters/otlp/batch-queue.js';
import { OtlpTracer, tracesUrl } from '../adapters/otlp/tracer.js';
import type { Config } from '../config/load.js';
import type { RequestTracer } from '../observability/tracing.js';

/** Shutdown waits this long for queued spans to reach the collector; it fits in the 5 s of slack the pod's grace period keeps. */
export const TRACING_FLUSH_DEADLINE_MS = 2000;
/** While exports keep failing, one warning per this interval, not one per batch. */
const FAILURE_LOG_INTERVAL_MS = 60_000;
const DROP_REASONS: readonly DropReason[] = ['queue_full', 'export_failed', 'rejected', 'shutdown'];

export interface Tracing {
  readonly tracer: RequestTracer;
  /** Exports queued spans within the deadline, then drops (and counts) the rest. */
  shutdown(deadlineMs?: number): Promise<void>;
}

/**
 * Tracing when OTEL_EXPORTER_OTLP_ENDPOINT is set, else undefined (and the app installs no tracing
 * hooks at all). Its metrics go to the app's registry.
 */
export function startTracing(config: Config, registry: Registry, log: FastifyBaseLogger, version: string): Tracing | undefined {
  const endpoint = config.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (endpoint === undefined) return undefined;

  const exported = new Counter({ name: 'kgents_tracing_spans_exported_total', help: 'Spans the OpenTelemetry collector accepted.', registers: [registry] });
  const dropped = new Counter({
    name: 'kgents_tracing_spans_dropped_total',
    help: 'Spans lost instead of exported, by reason: queue_full (OTEL_BSP_MAX_QUEUE_SIZE reached), export_failed (collector refused, failed or timed out), rejected (collector partial success), shutdown (not flushed in time).',
    labelNames: ['reason'] as const, registers: [registry],
  });
  const failures = new Counter({
    name: 'kgents_tracing_export_failures_total',
    help: 'Failed span export requests to the OpenTelemetry collector, by reason: timeout, network, http_status, aborted.',
    labelNames: ['reason'] as const, registers: [registry],
  });
  for (const reason of DROP_REASONS) dropped.inc({ reason }, 0);

  let failingSince: number | undefined;
  let lastWarning = 0;
  const tracer = new OtlpTracer({
    endpoint,
    timeoutMs: config.OTEL_EXPORTER_OTLP_TIMEOUT,
    resource: {
      attributes: { 'service.name': config.OTEL_SERVICE_NAME, 'service.version': version, 'service.instance.id': config.INSTANCE_ID, 'telemetry.sdk.language': 'nodejs', 'telemetry.sdk.name': 'kgents-otlp' },
      scopeName: 'kgents-api', scopeVersion: version,
    },
    sampler: config.OTEL_TRACES_SAMPLER,
    ratio: config.OTEL_TRACES_SAMPLER_ARG,
    batch: {
      maxQueueSize: config.OTEL_BSP_MAX_QUEUE_SIZE,
      maxBatchSize: Math.min(config.OTEL_BSP_MAX_EXPORT_BATCH_SIZE, config.OTEL_BSP_MAX_QUEUE_SIZE),
      scheduleDelayMs: config.OTEL_BSP_SCHEDULE_DELAY,
    },
    events: {
      onExported: (n) => exported.inc(n),
      onDropped: (reason, n) => dropped.inc({ reason }, n),
      onExportFailed: (reason, detail) => {
        failures.inc({ reason });
        const now = Date.now();
        failingSince ??= now;
        if (reason === 'aborted' || now - lastWarning < FAILURE_LOG_INTERVAL_MS) return;
        lastWarning = now;
        log.warn({ component: 'tracing', reason, detail, failing_for_s: Math.round((now - failingSince) / 1000) },
          'span export to the OpenTelemetry collector failed; spans are dropped (kgents_tracing_spans_dropped_total), requests are not affected');
      },
      onRecovered: () => {
        failingSince = undefined;
        lastWarning = 0;
        log.info({ component: 'tracing' }, 'span export to the OpenTelemetry collector works again');
      },
    },
  });
  new Gauge({ name: 'kgents_tracing_queue_spans', help: 'Ended spans waiting for export (at most OTEL_BSP_MAX_QUEUE_SIZE).', registers: [registry], collect() {
    this.set(tracer.queue.depth);
  } });
  const shown = new URL(tracesUrl(endpoint));
  shown.username = '';
  shown.password = '';
  new Gauge({ name: 'kgents_tracing_queue_capacity_spans', help: 'OTEL_BSP_MAX_QUEUE_SIZE: the most ended spans that wait for export; more are dropped.', registers: [registry] })
    .set(config.OTEL_BSP_MAX_QUEUE_SIZE);
  log.info({ component: 'tracing', url: shown.href, sampler: config.OTEL_TRACES_SAMPLER }, 'tracing on: spans go to the OpenTelemetry collector over OTLP/HTTP');

  return {
    tracer,
    shutdown: async (deadlineMs = TRACING_FLUSH_DEADLINE_MS) => {
      const complete = await tracer.shutdown(deadlineMs);
      if (!complete) log.warn({ component: 'tracing', deadline_ms: deadlineMs }, 'shutdown: not every span reached the collector');
    },
  };
}
