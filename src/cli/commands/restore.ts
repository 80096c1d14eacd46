import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ArchiveError } from '../../ops/backup/archive.js';
import { ArchiveDamagedError, RestoreRefusedError, runRestore } from '../../ops/backup/restore.js';
import { type Command, UsageError } from '../command.js';
import { BACKUP_EXIT, mb, rate, splitList, withCliNats } from './backup.js';
import { out, parseCliArgs, printJson } from './keys.js';

const USAGE = `Usage:
  kgents restore ARCHIVE [--streams A,B] [--force] [--replicas N] [--json]
      Restores streams and KV buckets from an archive made by 'kgents backup' into the NATS_URLS
      servers (any server or cluster): messages with their sequences and timestamps, stream
      configuration, durable consumers at their positions. Then reads every restored stream back
      and checks counts, first/last sequences, message digests and consumer positions against the
      manifest. Every archive file is checked before anything on the server changes.
      --streams A,B  only these streams (stream names, or KV bucket names); default all
      --force        delete a selected stream that already exists and restore it; without it an
                     existing stream refuses the whole restore (exit 3) and nothing changes
      --replicas N   restore with N replicas instead of the archived count (a single server needs 1)

Exit codes: 0 restored and matching the manifest; 1 failed; 2 bad usage; 3 refused (a stream
exists, no --force); 4 the archive is damaged, or the restored data differ from the manifest.
Uses NATS_URLS (or the nats-server of a 'kgents serve' running on this DATA_DIR).`;

async function restore(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCliArgs(() => parseArgs({
    args: [...args],
    options: {
      streams: { type: 'string', multiple: true }, force: { type: 'boolean', default: false },
      replicas: { type: 'string' }, json: { type: 'boolean', default: false },
    },
    allowPositionals: true, strict: true,
  }));
  if (positionals.length !== 1 || !positionals[0]) throw new UsageError('give exactly one ARCHIVE (the archive directory)');
  let replicas: number | undefined;
  if (values.replicas !== undefined) {
    replicas = Number(values.replicas);
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) throw new UsageError('--replicas must be an integer from 1 to 5');
  }
  const streams = splitList(values.streams);
  const archive = resolve(positionals[0]);
  return withCliNats('restore', async (conn) => {
    try {
      const report = await runRestore({
        conn, archive, force: values.force === true,
        ...(streams ? { streams } : {}), ...(replicas !== undefined ? { replicas } : {}),
        log: (line) => process.stderr.write(`kgents restore: ${line}\n`),
      });
      if (values.json) {
        printJson({
          ...report,
          messages_per_s: Number(rate(report.messages, report.durationMs)) || 0,
          mb_per_s: report.durationMs > 0 ? report.bytes / 1e6 / (report.durationMs / 1000) : 0,
          restore_only_messages_per_s: Number(rate(report.messages, report.restoreMs)) || 0,
          restore_only_mb_per_s: report.restoreMs > 0 ? report.bytes / 1e6 / (report.restoreMs / 1000) : 0,
        });
      }
      else {
        out(`Restore from ${archive}: ${report.ok ? 'OK, matches the manifest' : 'MISMATCH'}`);
        for (const s of report.streams) {
          out(`  ${s.name}: ${s.messages} messages, seq ${s.first_seq}..${s.last_seq}, consumers [${s.consumers.join(', ')}]${s.replaced ? ' (replaced)' : ''}${s.mismatches.length ? ` MISMATCH: ${s.mismatches.join('; ')}` : ''}`);
        }
        const mbps = (ms: number): string => (report.bytes / 1e6 / Math.max(ms / 1000, 1e-3)).toFixed(2);
        out(`  ${mb(report.bytes)} MB of stream data, ${mb(report.uploadedBytes)} MB uploaded`);
        out(`  restore: ${(report.restoreMs / 1000).toFixed(2)} s, ${rate(report.messages, report.restoreMs)} messages/s, ${mbps(report.restoreMs)} MB/s`);
        out(`  with the read-back check: ${(report.durationMs / 1000).toFixed(2)} s, ${rate(report.messages, report.durationMs)} messages/s, ${mbps(report.durationMs)} MB/s`);
      }
      return report.ok ? BACKUP_EXIT.ok : BACKUP_EXIT.mismatch;
    } catch (err) {
      if (err instanceof RestoreRefusedError) {
        process.stderr.write(`kgents restore: ${err.message}\n`);
        return BACKUP_EXIT.refused;
      }
      if (err instanceof ArchiveDamagedError || err instanceof ArchiveError) {
        process.stderr.write(`kgents restore: ${err.message}\n`);
        return BACKUP_EXIT.mismatch;
      }
      if (err instanceof Error && /is not in this archive/.test(err.message)) throw new UsageError(err.message);
      if (err instanceof Error && /replicas > 1 not supported/.test(err.message)) {
        throw new Error(`${err.message}: the target is a single server; add --replicas 1 (streams restored so far stay)`, { cause: err });
      }
      throw err;
    }
  });
}

export const restoreCommand: Command = {
  name: 'restore',
  summary: 'Restore streams and KV buckets from a kgents backup archive into any NATS server or cluster.',
  usage: USAGE,
  run: restore,
};
