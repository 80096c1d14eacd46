import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { connectNats, type NatsConnection } from '../../adapters/nats/connection.js';
import { runBackup } from '../../ops/backup/backup.js';
import { backupMetricsText, writeMetricsFile } from '../../ops/backup/metrics-file.js';
import { parseRetain } from '../../ops/backup/retain.js';
import { verifyArchive, type VerifyReport } from '../../ops/backup/verify.js';
import { cliConfig } from '../cli-config.js';
import { type Command, UsageError } from '../command.js';
import { out, parseCliArgs, printJson } from './keys.js';

/** Exit codes of `kgents backup`, `kgents backup verify` and `kgents restore` (documented in the usage texts). */
export const BACKUP_EXIT = {
  ok: 0,
  /** Backup or restore failed (NATS unreachable, server error, disk full). */
  failed: 1,
  usage: 2,
  /** restore: a stream exists and --force was not given; nothing was changed. */
  refused: 3,
  /** verify found a damaged archive; restore found the restored data differ from the manifest, or a damaged archive. */
  mismatch: 4,
} as const;

const USAGE = `Usage:
  kgents backup --to DIR [--retain 7d] [--metrics-file FILE] [--json]
      Backs up every JetStream stream and KV bucket (KV_<bucket>) of the account into a new archive
      DIR/kgents-backup-<UTC time> (a directory): stream configuration, durable consumers with their
      positions, and every message with subject, headers, sequence and timestamp. File-storage
      streams are copied with JetStream's snapshot API (the format of 'nats stream backup') and
      their messages also to a message log; memory streams by message log alone. manifest.json
      holds counts, first/last sequences and checksums.
      --retain D        afterwards delete this tool's archives in DIR older than D (s, m, h, d, w:
                        "7d", "36h"); other files are never touched
      --metrics-file F  after a success, write Prometheus text there:
                        kgents_backup_last_success_timestamp_seconds, kgents_backup_last_size_bytes,
                        kgents_backup_last_duration_seconds (read by the KgentsBackup* alerts)
  kgents backup verify ARCHIVE [--streams A,B] [--json]
      Checks an archive without restoring it: manifest checksum and schema, every file's size and
      sha256, snapshot framing, and each message log record by record against the manifest.

Exit codes: 0 success; 1 failed (nothing usable written); 2 bad usage; 4 verify found damage.
Uses NATS_URLS (or the nats-server of a 'kgents serve' running on this DATA_DIR).`;

export async function withCliNats<T>(client: string, fn: (conn: NatsConnection) => Promise<T>): Promise<T> {
  const config = cliConfig();
  if (config.NATS_URLS.length === 0) throw new UsageError('NATS_URLS is empty and no kgents serve with its own nats-server runs on this DATA_DIR');
  const conn = await connectNats(config.NATS_URLS, { name: `kgents-cli ${client}`, timeoutMs: config.NATS_CONNECT_TIMEOUT_MS });
  try {
    return await fn(conn);
  } finally {
    await conn.close();
  }
}

export function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

export function rate(n: number, ms: number): string {
  return ms > 0 ? (n / (ms / 1000)).toFixed(0) : '-';
}

async function backup(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCliArgs(() => parseArgs({
    args: [...args],
    options: { to: { type: 'string' }, retain: { type: 'string' }, 'metrics-file': { type: 'string' }, json: { type: 'boolean', default: false } },
    allowPositionals: true, strict: true,
  }));
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]?.slice(0, 40)}"`);
  if (!values.to) throw new UsageError('--to DIR is required');
  let retainMs: number | undefined;
  if (values.retain !== undefined) {
    retainMs = parseRetain(values.retain);
    if (retainMs === undefined) throw new UsageError(`--retain "${values.retain.slice(0, 20)}" is not a duration like 7d, 36h, 90m`);
  }
  const dir = resolve(values.to);
  const metricsFile = values['metrics-file'];
  return withCliNats('backup', async (conn) => {
    const result = await runBackup({
      conn, dir, ...(retainMs !== undefined ? { retainMs } : {}),
      log: (line) => process.stderr.write(`kgents backup: ${line}\n`),
    });
    if (metricsFile) await writeMetricsFile(resolve(metricsFile), backupMetricsText(result, new Date()));
    const summary = {
      archive: result.path,
      streams: result.manifest.totals.streams,
      messages: result.messages,
      size_bytes: result.sizeBytes,
      stream_bytes: result.streamBytes,
      duration_s: Number((result.durationMs / 1000).toFixed(3)),
      messages_per_s: Number(rate(result.messages, result.durationMs)) || 0,
      mb_per_s: result.durationMs > 0 ? Number((result.streamBytes / 1e6 / (result.durationMs / 1000)).toFixed(2)) : 0,
      deleted: result.pruned?.deleted ?? [],
    };
    if (values.json) printJson(summary);
    else {
      out(`Backup ${result.path}`);
      out(`  ${summary.streams} streams, ${summary.messages} messages, ${mb(result.streamBytes)} MB of stream data, archive ${mb(result.sizeBytes)} MB`);
      out(`  ${summary.duration_s} s: ${summary.messages_per_s} messages/s, ${summary.mb_per_s} MB/s`);
      if (result.pruned) out(`  --retain: deleted ${result.pruned.deleted.length} old archive(s)${result.pruned.deleted.length ? `: ${result.pruned.deleted.join(', ')}` : ''}; ${result.pruned.kept.length} kept`);
    }
    return BACKUP_EXIT.ok;
  });
}

function printVerify(report: VerifyReport): void {
  out(`Archive ${report.archive}: ${report.ok ? 'OK' : 'DAMAGED'}`);
  for (const p of report.problems) out(`  ${p}`);
  for (const s of report.streams) {
    out(`  ${s.name}: ${s.messages} messages ${s.problems.length === 0 ? 'ok' : 'DAMAGED'}`);
    for (const p of s.problems) out(`    - ${p}`);
  }
  out(`  read ${mb(report.bytesRead)} MB in ${(report.durationMs / 1000).toFixed(2)} s`);
}

async function verify(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCliArgs(() => parseArgs({
    args: [...args], options: { streams: { type: 'string', multiple: true }, json: { type: 'boolean', default: false } }, allowPositionals: true, strict: true,
  }));
  if (positionals.length !== 1 || !positionals[0]) throw new UsageError('give exactly one ARCHIVE (the archive directory)');
  const streams = splitList(values.streams);
  const report = await verifyArchive(resolve(positionals[0]), streams ? { streams } : {});
  if (values.json) printJson({ ok: report.ok, archive: report.archive, problems: report.problems, streams: report.streams, bytes_read: report.bytesRead, duration_s: report.durationMs / 1000 });
  else printVerify(report);
  return report.ok ? BACKUP_EXIT.ok : BACKUP_EXIT.mismatch;
}

/** --streams A,B --streams C -> [A, B, C]; undefined when not given. */
export function splitList(values: readonly string[] | undefined): string[] | undefined {
  if (!values) return undefined;
  const list = values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v.length > 0);
  if (list.length === 0) throw new UsageError('--streams needs at least one name');
  return list;
}

export const backupCommand: Command = {
  name: 'backup',
  summary: 'Back up JetStream (streams, KV buckets, consumers, messages) into an archive; verify one.',
  usage: USAGE,
  async run(args) {
    if (args[0] === 'verify') return verify(args.slice(1));
    return backup(args);
  },
};
