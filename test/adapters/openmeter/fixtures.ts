import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import { jetstream, jetstreamManager, type ConsumerInfo, type JetStreamClient, type JetStreamManager, type StoredMsg } from '@nats-io/jetstream';
import { DEFAULT_DURABLE, UsageExporter, type ExporterLogger, type UsageExporterOptions } from '../../../src/adapters/openmeter/exporter.js';
import { ensureStreams, USAGE_DLQ_STREAM, USAGE_STREAM, usageSubject } from '../../../src/adapters/nats/streams.js';
import { connectNats, type NatsConnection } from '../../../src/adapters/nats/connection.js';
import { startOpenMeterStandIn, type OpenMeterStandIn } from '../../harness/openmeter-standin.js';
import { startNats } from '../../harness/servers.js';
import { usageEvent, type UsageEvent } from '../../../src/domain/metering/usage-event.js';

export const API_KEY = 'om_test_secret_key_0123456789';

export function makeEvent(tenant = 'acme', type = 'agentese.invoke', id: string = randomUUID()): UsageEvent {
  return usageEvent({
    id,
    type,
    tenant,
    time: new Date(),
    data: { path: 'self.test', aspect: 'manifest', tokens: 7, status: 200, latency_ms: 3, key_prefix: 'abcd1234', request_id: randomUUID() },
  });
}

export async function setupStreams(nats: NatsConnection): Promise<{ js: JetStreamClient; jsm: JetStreamManager }> {
  const jsm = await jetstreamManager(nats.nc);
  await ensureStreams(jsm, { replicas: 1, usageDuplicateWindowS: 120, usageRetentionDays: 1 });
  return { js: jetstream(nats.nc), jsm };
}

/** Publishes `n` usage events the way the API does (Nats-Msg-Id = event id), in parallel chunks; returns them. */
export async function publishEvents(js: JetStreamClient, n: number, tenant = 'acme'): Promise<UsageEvent[]> {
  const events = Array.from({ length: n }, () => makeEvent(tenant));
  for (let i = 0; i < events.length; i += 250) {
    await Promise.all(events.slice(i, i + 250).map((ev) => js.publish(usageSubject(ev.subject, ev.type), JSON.stringify(ev), { msgID: ev.id })));
  }
  return events;
}

/** Polls `check`; resolves with the time it took, rejects with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000, everyMs = 20): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await check()) return performance.now() - started;
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export function captureLogger(): ExporterLogger & { lines: { level: string; fields: Record<string, unknown>; msg: string }[] } {
  const lines: { level: string; fields: Record<string, unknown>; msg: string }[] = [];
  return {
    lines,
    info: (fields, msg) => lines.push({ level: 'info', fields, msg }),
    warn: (fields, msg) => lines.push({ level: 'warn', fields, msg }),
    error: (fields, msg) => lines.push({ level: 'error', fields, msg }),
  };
}

/** Test settings: short backoff so the suite stays fast; everything else as in production. */
export const FAST = { backoff: { baseMs: 50, capMs: 1000 }, lagRefreshMs: 200, requestTimeoutMs: 2000 } as const;

export interface Env {
  readonly server: Awaited<ReturnType<typeof startNats>>;
  readonly nats: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly standIn: OpenMeterStandIn;
  readonly log: ReturnType<typeof captureLogger>;
  /** A new exporter on this env's NATS and stand-in (stopped by cleanup). */
  exporter(overrides?: Partial<UsageExporterOptions>): UsageExporter;
  /** Consumer info of the exporter's durable consumer. */
  consumerInfo(durable?: string): Promise<ConsumerInfo>;
  /** Messages in USAGE_DLQ, oldest first. */
  deadLetters(): Promise<StoredMsg[]>;
  cleanup(): Promise<void>;
}

/** A fresh nats-server with the streams, a connection, and an OpenMeter stand-in. */
export async function startEnv(): Promise<Env> {
  const server = await startNats();
  const nats = await connectNats([server.url], { name: 'exporter-test', reconnectTimeWaitMs: 100 });
  const { js, jsm } = await setupStreams(nats);
  const standIn = await startOpenMeterStandIn({ apiKey: API_KEY });
  const log = captureLogger();
  const exporters: UsageExporter[] = [];
  const extraConnections: NatsConnection[] = [];
  return {
    server, nats, js, jsm, standIn, log,
    exporter(overrides = {}) {
      const exporter = new UsageExporter({ nats, url: standIn.url, apiKey: API_KEY, logger: log, ...FAST, ...overrides });
      exporters.push(exporter);
      if (overrides.nats && overrides.nats !== nats) extraConnections.push(overrides.nats);
      return exporter;
    },
    consumerInfo: (durable = DEFAULT_DURABLE) => jsm.consumers.info(USAGE_STREAM, durable),
    async deadLetters() {
      const info = await jsm.streams.info(USAGE_DLQ_STREAM);
      const out: StoredMsg[] = [];
      for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
        const m = await jsm.streams.getMessage(USAGE_DLQ_STREAM, { seq });
        if (m) out.push(m);
      }
      return out;
    },
    async cleanup() {
      await Promise.all(exporters.map((e) => e.stop(0)));
      for (const c of extraConnections) await c.close(500);
      await nats.close(500);
      await standIn.close();
      await server.cleanup();
    },
  };
}

/** Value of a gauge or counter (optionally one label set) on the exporter's registry. */
export async function metricValue(metric: { get(): Promise<MetricObjectWithValues<MetricValue<string>>> }, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await metric.get();
  const match = values.find((v) => Object.entries(labels).every(([k, val]) => (v.labels as Record<string, string | number | undefined>)[k] === val));
  return match?.value ?? 0;
}
