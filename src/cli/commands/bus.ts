import { parseArgs } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { requestBusProbe } from '../../adapters/nats/admin-bus.js';
import { connectNats, type NatsConnection } from '../../adapters/nats/connection.js';
import { ensureStreams, streamConfigs } from '../../adapters/nats/streams.js';
import type { Config } from '../../config/load.js';
import { cliConfig } from '../cli-config.js';
import { type Command, UsageError } from '../command.js';
import { out, parseCliArgs, printJson, table } from './keys.js';

const USAGE = `Usage:
  kgents bus init [--json]
      Creates or updates the JetStream streams (USAGE, EVENTS, USAGE_DLQ) with the configured
      replicas (NATS_REPLICAS), duplicate window and retention. Safe to run repeatedly.
  kgents bus status [--json]
      Shows each stream's messages, bytes, replicas, leader and consumers.
  kgents bus reset-circuit [--wait-ms N] [--json]
      Asks every running API instance to probe JetStream now instead of waiting for its breaker's
      timer; prints each instance's circuit state and fallback-queue depth.

Uses NATS_URLS (or the nats-server of a 'kgents serve' running on this DATA_DIR).`;

async function withNats<T>(fn: (conn: NatsConnection, config: Config) => Promise<T>): Promise<T> {
  const config = cliConfig();
  if (config.NATS_URLS.length === 0) throw new UsageError('NATS_URLS is empty and no kgents serve with its own nats-server runs on this DATA_DIR');
  const conn = await connectNats(config.NATS_URLS, { name: 'kgents-cli bus' });
  try {
    return await fn(conn, config);
  } finally {
    await conn.close();
  }
}

function jsonFlag(args: readonly string[], extra: Record<string, { type: 'string' }> = {}): { json: boolean; values: Record<string, string | boolean | undefined> } {
  const { values, positionals } = parseCliArgs(() => parseArgs({ args: [...args], options: { json: { type: 'boolean', default: false }, ...extra }, allowPositionals: true, strict: true }));
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]?.slice(0, 40)}"`);
  return { json: values.json === true, values };
}

async function init(args: readonly string[]): Promise<number> {
  const { json } = jsonFlag(args);
  return withNats(async (conn, config) => {
    const results = await ensureStreams(await jetstreamManager(conn.nc), {
      replicas: config.NATS_REPLICAS, usageDuplicateWindowS: config.USAGE_DUPLICATE_WINDOW_S, usageRetentionDays: config.USAGE_RETENTION_DAYS,
    });
    if (json) printJson(results);
    else out(table(['STREAM', 'ACTION'], results.map((r) => [r.name, r.action])));
    return 0;
  });
}

async function status(args: readonly string[]): Promise<number> {
  const { json } = jsonFlag(args);
  return withNats(async (conn, config) => {
    const jsm = await jetstreamManager(conn.nc);
    const rows = [];
    for (const { name } of streamConfigs({ replicas: config.NATS_REPLICAS, usageDuplicateWindowS: config.USAGE_DUPLICATE_WINDOW_S, usageRetentionDays: config.USAGE_RETENTION_DAYS })) {
      try {
        const info = await jsm.streams.info(name);
        rows.push({
          stream: name, messages: info.state.messages, bytes: info.state.bytes, first_seq: info.state.first_seq, last_seq: info.state.last_seq,
          replicas: info.config.num_replicas, leader: info.cluster?.leader ?? '-', consumers: info.state.consumer_count,
        });
      } catch (err) {
        rows.push({ stream: name, error: err instanceof Error ? err.message : String(err) });
      }
    }
    if (json) printJson(rows);
    else {
      out(table(['STREAM', 'MESSAGES', 'BYTES', 'SEQ', 'REPLICAS', 'LEADER', 'CONSUMERS'], rows.map((r) => 'error' in r
        ? [r.stream, `missing: ${r.error ?? ''}`, '', '', '', '', '']
        : [r.stream, String(r.messages), String(r.bytes), `${r.first_seq}..${r.last_seq}`, String(r.replicas), r.leader, String(r.consumers)])));
    }
    return rows.some((r) => 'error' in r) ? 1 : 0;
  });
}

async function resetCircuit(args: readonly string[]): Promise<number> {
  const { json, values } = jsonFlag(args, { 'wait-ms': { type: 'string' } });
  const waitMs = Number(values['wait-ms'] ?? 1000);
  if (!Number.isInteger(waitMs) || waitMs < 100 || waitMs > 60_000) throw new UsageError('--wait-ms must be an integer from 100 to 60000');
  return withNats(async (conn) => {
    const replies = await requestBusProbe(conn, waitMs);
    if (json) printJson(replies);
    else if (replies.length === 0) out('No API instance answered (none running, or they are not connected to this NATS).');
    else out(table(['INSTANCE', 'CIRCUIT', 'FALLBACK QUEUE'], replies.map((r) => [r.instance, r.circuit, String(r.fallback_queue_depth)])));
    return replies.length > 0 ? 0 : 1;
  });
}

export const busCommand: Command = {
  name: 'bus',
  summary: 'Event bus: create streams, show their state, force the breakers to probe.',
  usage: USAGE,
  async run(args) {
    const [sub, ...rest] = args;
    switch (sub) {
      case 'init': return init(rest);
      case 'status': return status(rest);
      case 'reset-circuit': return resetCircuit(rest);
      default: throw new UsageError(sub ? `unknown subcommand "${sub.slice(0, 40)}"` : 'missing subcommand');
    }
  },
};
