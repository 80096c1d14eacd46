import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * The exporter's Prometheus metrics on a given registry. Several exporters (or a restarted one) on
 * the same registry share the series instead of failing on a duplicate registration.
 */
export class ExporterMetrics {
  readonly exported: Counter;
  readonly failures: Counter<'reason'>;
  readonly deadLettered: Counter<'reason'>;
  readonly lag: Gauge;
  readonly lastSuccess: Gauge;

  constructor(readonly registry: Registry) {
    this.exported = counter(registry, 'kgents_exporter_exported_total', 'Usage events OpenMeter accepted (2xx) and the exporter acknowledged in USAGE.', []);
    this.failures = counter(registry, 'kgents_exporter_failures_total', 'Failed export attempts, by reason (rate_limited, server_error, timeout, network, unauthorized, endpoint, bad_request, too_large, rejected, nats).', ['reason']);
    this.deadLettered = counter(registry, 'kgents_exporter_dead_lettered_total', 'Usage events moved to the USAGE_DLQ stream, by reason (invalid: OpenMeter refused it; malformed: not a CloudEvent).', ['reason']);
    this.lag = gauge(registry, 'kgents_exporter_lag_events', 'USAGE messages (each one usage event or a batch) not yet exported: the durable consumer\'s pending plus unacknowledged messages.');
    this.lastSuccess = gauge(registry, 'kgents_exporter_last_success_timestamp_seconds', 'Unix time of the last batch OpenMeter accepted; 0 before the first.');
  }
}

function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[]): Counter<L> {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Counter) return existing;
  return new Counter<L>({ name, help, labelNames, registers: [registry] });
}

function gauge(registry: Registry, name: string, help: string): Gauge {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Gauge) return existing;
  return new Gauge({ name, help, registers: [registry] });
}
