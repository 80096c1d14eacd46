import { parseArgs } from 'node:util';
import { jetstreamManager, type ConsumerInfo, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';
import { pino, type Logger } from 'pino';
import { connectNats, redactUrl, type NatsConnection } from '../../adapters/nats/connection.js';
import { ensureStreams, USAGE_DLQ_STREAM, USAGE_STREAM } from '../../adapters/nats/streams.js';
import { JETSTREAM_NOT_READY } from '../../adapters/nats/transient.js';
import { ingestUrl } from '../../adapters/openmeter/client.js';
import { DEFAULT_DURABLE, UsageExporter, type ExporterLogger, type UsageExporterOptions } from '../../adapters/openmeter/exporter.js';
import { loadConfig, type Config } from '../../config/load.js';
import { loggerOptions } from '../../observability/logger.js';
import { readEmbeddedState } from '../../runtime/embedded.js';
import { keepTickObjectShape } from '../../runtime/tick-shape.js';
import { type Command, UsageError } from '../command.js';

const USAGE = `Usage:
  kgents exporter [run]
      Exports usage events from the JetStream stream USAGE to OpenMeter until SIGTERM or SIGINT.
      Creates the streams if needed. Safe next to 'kgents serve' and other exporters: they share
      the durable consumer "${DEFAULT_DURABLE}", so each event is sent by one of them.
      Needs OPENMETER_URL (and OPENMETER_API_KEY); uses NATS_URLS and EXPORTER_BATCH_SIZE.
  kgents exporter status [--json]
      Shows how far the export is: events not yet exported (lag), in flight, redelivered,
      and how many went to the dead-letter stream USAGE_DLQ.

NATS: NATS_URLS, or with NATS_URLS empty the nats-server of a running 'kgents serve' on the same DATA_DIR.`;

function noticeLine(line: string): void {
  process.stderr.write(`kgents exporter: ${line}\n`);
}

/** NATS_URLS, else the embedded nats-server of a running `kgents serve` on this DATA_DIR. */
function natsUrls(config: Config): string[] {
  if (config.NATS_URLS.length > 0) return [...config.NATS_URLS];
  const embedded = readEmbeddedState(config.DATA_DIR)?.nats_url;
  if (embedded) {
    noticeLine(`NATS_URLS is empty: using the nats-server of the running kgents serve at ${embedded}`);
    return [embedded];
  }
  throw new UsageError(`NATS_URLS is empty and no running 'kgents serve' on DATA_DIR ${config.DATA_DIR} started a nats-server: set NATS_URLS`);
}

function toLogger(log: Logger): ExporterLogger {
  return {
    info: (fields, msg) => log.info(fields, msg),
    warn: (fields, msg) => log.warn(fields, msg),
    error: (fields, msg) => log.error(fields, msg),
  };
}

export interface ExporterServiceOptions {
  /** Aborting it stops the exporter gracefully. */
  readonly until: AbortSignal;
  readonly log: ExporterLogger;
  /** Extra exporter settings (tests: faster backoff). */
  readonly exporter?: Partial<Omit<UsageExporterOptions, 'nats' | 'url' | 'apiKey'>>;
  /** Called once the exporter runs. */
  readonly onStarted?: (exporter: UsageExporter) => void;
}

/**
 * What `kgents exporter` does, without the signal handling: connect, ensure the streams, run the
 * exporter until `until` aborts, stop it, close. Resolves with the exit code.
 */
export async function runExporterService(config: Config, options: ExporterServiceOptions): Promise<number> {
  if (config.OPENMETER_URL === undefined) {
    noticeLine('OPENMETER_URL is not set: there is nowhere to export to. Set OPENMETER_URL (e.g. https://openmeter.cloud) and OPENMETER_API_KEY; until then usage events simply stay in the USAGE stream.');
    return 2;
  }
  const urls = natsUrls(config);
  const nats = await connectNats(urls, { name: `kgents-exporter ${config.INSTANCE_ID}`, timeoutMs: config.NATS_CONNECT_TIMEOUT_MS });
  const log = options.log;
  try {
    const notReady = {
      deadlineMs: config.NATS_CONNECT_TIMEOUT_MS,
      onRetry: (err: unknown, attempt: number) => {
        if (attempt === 1) log.warn({ component: 'exporter', err, wait_ms: config.NATS_CONNECT_TIMEOUT_MS }, JETSTREAM_NOT_READY);
      },
    };
    const jsm = await jetstreamManager(nats.nc);
    const streams = await ensureStreams(jsm, {
      replicas: config.NATS_REPLICAS,
      usageDuplicateWindowS: config.USAGE_DUPLICATE_WINDOW_S,
      usageRetentionDays: config.USAGE_RETENTION_DAYS,
    }, notReady);
    log.info({ component: 'exporter', servers: urls.map(redactUrl), streams: streams.map((s) => `${s.name}:${s.action}`) }, 'connected to NATS; streams ready');
    if (config.OPENMETER_API_KEY === '') log.warn({ component: 'exporter' }, 'OPENMETER_API_KEY is empty: OpenMeter will likely answer 401 (events stay in USAGE until it accepts them)');
    const exporter = new UsageExporter({
      ...options.exporter,
      nats,
      url: config.OPENMETER_URL,
      apiKey: config.OPENMETER_API_KEY,
      batchSize: config.EXPORTER_BATCH_SIZE,
      logger: log,
    });
    exporter.start();
    options.onStarted?.(exporter);
    await new Promise<void>((resolve) => {
      if (options.until.aborted) resolve();
      else options.until.addEventListener('abort', () => resolve(), { once: true });
    });
    await exporter.stop();
    return 0;
  } finally {
    await nats.close();
  }
}

async function run(args: readonly string[]): Promise<number> {
  if (args.length > 0) throw new UsageError(`unexpected argument "${args[0]?.slice(0, 40)}"`);
  const config = loadConfig();
  // A long-lived process like serve, idle between batches: the same nextTick slow path applies.
  if (config.TICK_SHAPE_KEEP === 'on') keepTickObjectShape();
  const logger = pino(loggerOptions(config.LOG_LEVEL, config.INSTANCE_ID));
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    logger.info({ signal }, 'shutdown requested: finishing the batch in flight');
    controller.abort();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    return await runExporterService(config, { until: controller.signal, log: toLogger(logger) });
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}

export interface ExporterReport {
  readonly consumer: string;
  readonly consumer_exists: boolean;
  /** Messages not yet exported: consumer pending + unacknowledged (without a consumer: every message in USAGE). */
  readonly lag: number;
  readonly pending: number;
  readonly in_flight: number;
  readonly redelivered: number;
  readonly acked_through_seq: number;
  /** Messages in USAGE (each one usage event or a batch of them). */
  readonly usage_messages: number;
  readonly usage_last_seq: number;
  readonly dead_lettered: number;
  readonly openmeter_url: string | null;
}

async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (/stream not found/i.test(String(err))) return undefined;
    throw err;
  }
}

/** The exporter's progress from consumer and stream info. */
export async function exporterReport(nats: NatsConnection, openmeterUrl: string | undefined, durable = DEFAULT_DURABLE): Promise<ExporterReport | undefined> {
  const jsm = await jetstreamManager(nats.nc);
  const usage = await streamInfo(jsm, USAGE_STREAM);
  if (!usage) return undefined;
  const dlq = await streamInfo(jsm, USAGE_DLQ_STREAM);
  let info: ConsumerInfo | undefined;
  try {
    info = await jsm.consumers.info(USAGE_STREAM, durable);
  } catch (err) {
    if (!/consumer not found/i.test(String(err))) throw err;
  }
  return {
    consumer: durable,
    consumer_exists: info !== undefined,
    lag: info ? info.num_pending + info.num_ack_pending : usage.state.messages,
    pending: info ? info.num_pending : usage.state.messages,
    in_flight: info?.num_ack_pending ?? 0,
    redelivered: info?.num_redelivered ?? 0,
    acked_through_seq: info?.ack_floor.stream_seq ?? 0,
    usage_messages: usage.state.messages,
    usage_last_seq: usage.state.last_seq,
    dead_lettered: dlq?.state.messages ?? 0,
    // a URL could carry credentials: show it without them
    openmeter_url: openmeterUrl === undefined ? null : redactUrl(ingestUrl(openmeterUrl)),
  };
}

async function status(args: readonly string[]): Promise<number> {
  let parsed: { values: { json?: boolean }; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...args], options: { json: { type: 'boolean', default: false } }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]?.slice(0, 40)}"`);
  const config = loadConfig();
  const nats = await connectNats(natsUrls(config), { name: 'kgents-cli', timeoutMs: config.NATS_CONNECT_TIMEOUT_MS });
  try {
    const report = await exporterReport(nats, config.OPENMETER_URL);
    if (!report) {
      noticeLine(`the ${USAGE_STREAM} stream does not exist yet: 'kgents serve' or 'kgents exporter' creates it`);
      return 1;
    }
    if (parsed.values.json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return 0;
    }
    const lines = [
      `OpenMeter exporter (durable consumer "${report.consumer}" on ${USAGE_STREAM})`,
      `  OPENMETER_URL       ${report.openmeter_url ?? 'not set: no exporter runs; events stay in the stream'}`,
      report.consumer_exists
        ? `  lag                 ${report.lag} message(s) not yet exported (${report.pending} waiting, ${report.in_flight} in flight)`
        : `  lag                 ${report.lag} message(s): no exporter has run yet (no consumer)`,
      `  acked through       stream sequence ${report.acked_through_seq} of ${report.usage_last_seq}`,
      `  redelivered         ${report.redelivered}`,
      `  ${USAGE_STREAM} messages      ${report.usage_messages}`,
      `  dead-lettered       ${report.dead_lettered} in ${USAGE_DLQ_STREAM}${report.dead_lettered > 0 ? ` (inspect: nats stream view ${USAGE_DLQ_STREAM}; headers carry the reason)` : ''}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } finally {
    await nats.close();
  }
}

export const exporterCommand: Command = {
  name: 'exporter',
  summary: 'Export usage events from JetStream to OpenMeter (or show its lag)',
  usage: USAGE,
  run(args) {
    const [sub, ...rest] = args;
    switch (sub) {
      case undefined:
        return run([]);
      case 'run':
        return run(rest);
      case 'status':
        return status(rest);
      default:
        return Promise.reject(new UsageError(`unknown subcommand "${sub.slice(0, 40)}": use run (the default) or status`));
    }
  },
};
