/**
 * Metrics of prometheus-nats-exporter 0.17.3 (the sidecar in deploy/base/agents/nats), as its
 * source documents them: collector/healthz.go (`gnatsd_healthz_status`, 0 = ok), collector/jsz.go
 * (`jetstream_server_*`, `jetstream_stream_*`, `jetstream_consumer_*`), and for -varz one gauge per
 * numeric field of the server's /varz JSON, named `gnatsd_varz_<field>` (collector/collector.go);
 * the /varz fields listed are those of nats-server 2.11. Alerts and dashboards may use only these.
 */
export const NATS_EXPORTER_METRICS: ReadonlySet<string> = new Set([
  'gnatsd_healthz_status',
  'gnatsd_varz_connections', 'gnatsd_varz_total_connections', 'gnatsd_varz_routes', 'gnatsd_varz_remotes',
  'gnatsd_varz_subscriptions', 'gnatsd_varz_slow_consumers', 'gnatsd_varz_in_msgs', 'gnatsd_varz_out_msgs',
  'gnatsd_varz_in_bytes', 'gnatsd_varz_out_bytes', 'gnatsd_varz_mem', 'gnatsd_varz_cpu', 'gnatsd_varz_cores',
  'gnatsd_varz_max_payload', 'gnatsd_varz_max_connections',
  'jetstream_server_jetstream_disabled', 'jetstream_server_total_streams', 'jetstream_server_total_consumers',
  'jetstream_server_total_messages', 'jetstream_server_total_message_bytes', 'jetstream_server_max_memory', 'jetstream_server_max_storage',
  'jetstream_stream_total_messages', 'jetstream_stream_total_bytes', 'jetstream_stream_first_seq', 'jetstream_stream_last_seq',
  'jetstream_stream_consumer_count',
  'jetstream_consumer_num_pending', 'jetstream_consumer_num_ack_pending', 'jetstream_consumer_num_redelivered', 'jetstream_consumer_num_waiting',
  'jetstream_consumer_delivered_consumer_seq', 'jetstream_consumer_delivered_stream_seq',
]);
