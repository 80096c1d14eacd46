import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { BackupResult } from './backup.js';

/**
 * Prometheus text for a successful backup, in the names the alerts in deploy/ read
 * (KgentsBackupMissing: kgents_backup_last_success_timestamp_seconds). Failures are reported by
 * deploy/base/agents/backup/run-backup.sh, which knows the exit code; this file is written only
 * after a success, so its presence means success.
 */
export const BACKUP_METRICS = [
  'kgents_backup_last_success_timestamp_seconds', 'kgents_backup_last_size_bytes', 'kgents_backup_last_duration_seconds',
  'kgents_backup_last_messages', 'kgents_backup_last_streams',
] as const;

type BackupMetric = (typeof BACKUP_METRICS)[number];

export function backupMetricsText(result: BackupResult, finishedAt: Date): string {
  const gauge = (name: BackupMetric, help: string, value: number): string => `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name} ${value}\n`;
  return [
    gauge('kgents_backup_last_success_timestamp_seconds', 'Unix time the last successful JetStream backup finished.', Math.floor(finishedAt.getTime() / 1000)),
    gauge('kgents_backup_last_size_bytes', 'Size on disk of the last successful backup archive.', result.sizeBytes),
    gauge('kgents_backup_last_duration_seconds', 'Duration of the last successful backup.', Number((result.durationMs / 1000).toFixed(3))),
    gauge('kgents_backup_last_messages', 'Messages in the last successful backup (all streams and KV buckets).', result.messages),
    gauge('kgents_backup_last_streams', 'Streams (KV buckets included) in the last successful backup.', result.manifest.totals.streams),
  ].join('');
}

/** Writes the file atomically (temp file, then rename) so a scraper never reads half of it. */
export async function writeMetricsFile(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}
