import { join } from 'node:path';
import { ArchiveError, LOG_FILE, readManifest, sha256File, SNAPSHOT_FILE, streamDir, type Manifest } from './archive.js';
import { CorruptLogError, MessageDigest, readMessageLogBatches } from './message-log.js';
import { checkS2Framing } from './s2-framing.js';

export interface StreamCheck {
  readonly name: string;
  readonly messages: number;
  readonly problems: string[];
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly archive: string;
  readonly manifest?: Manifest;
  /** Problems with the archive as a whole (manifest unreadable, checksum wrong). */
  readonly problems: string[];
  readonly streams: StreamCheck[];
  readonly bytesRead: number;
  readonly durationMs: number;
}

/**
 * Checks an archive without restoring it: the manifest against its checksum and schema; every file
 * against its size and sha256; each snapshot's framing; each message log record by record
 * (readable, sequences rising, count, first/last sequence and both digests as in the manifest).
 */
export async function verifyArchive(archive: string, opts: { streams?: readonly string[] } = {}): Promise<VerifyReport> {
  const t0 = performance.now();
  let manifest: Manifest;
  try {
    manifest = await readManifest(archive);
  } catch (err) {
    if (!(err instanceof ArchiveError)) throw err;
    return { ok: false, archive, problems: [err.message], streams: [], bytesRead: 0, durationMs: performance.now() - t0 };
  }
  let bytesRead = 0;
  const streams: StreamCheck[] = [];
  for (const entry of manifest.streams) {
    if (opts.streams && !opts.streams.includes(entry.name)) continue;
    const problems: string[] = [];
    const dir = streamDir(archive, entry.name);
    for (const [file, want] of Object.entries(entry.files)) {
      try {
        const got = await sha256File(join(dir, file));
        bytesRead += got.bytes;
        if (got.bytes !== want.bytes) problems.push(`${file}: ${got.bytes} bytes, manifest says ${want.bytes}`);
        else if (got.sha256 !== want.sha256) problems.push(`${file}: sha256 differs from the manifest (the file is corrupt)`);
      } catch (err) {
        problems.push(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : String(err)}`);
      }
    }
    if (entry.method === 'snapshot') {
      if (!entry.files[SNAPSHOT_FILE]) problems.push(`${SNAPSHOT_FILE}: not listed in the manifest`);
      else if (!problems.some((p) => p.startsWith(SNAPSHOT_FILE))) {
        const framing = await checkS2Framing(join(dir, SNAPSHOT_FILE));
        if (framing) problems.push(`${SNAPSHOT_FILE}: ${framing}`);
      }
    }
    if (!entry.files[LOG_FILE]) problems.push(`${LOG_FILE}: not listed in the manifest`);
    else if (!problems.some((p) => p.startsWith(`${LOG_FILE}: missing`))) problems.push(...await checkLog(join(dir, LOG_FILE), entry));
    if (entry.messages !== entry.state.messages) problems.push(`manifest: ${entry.messages} messages copied but the stream state says ${entry.state.messages}`);
    streams.push({ name: entry.name, messages: entry.messages, problems });
  }
  if (opts.streams) {
    for (const wanted of opts.streams) {
      if (!manifest.streams.some((s) => s.name === wanted)) streams.push({ name: wanted, messages: 0, problems: ['not in this archive'] });
    }
  }
  return { ok: streams.every((s) => s.problems.length === 0), archive, manifest, problems: [], streams, bytesRead, durationMs: performance.now() - t0 };
}

async function checkLog(path: string, entry: Manifest['streams'][number]): Promise<string[]> {
  const digest = new MessageDigest();
  let prev = 0;
  try {
    for await (const batch of readMessageLogBatches(path)) {
      for (const { record: r, raw } of batch) {
        if (r.seq <= prev) return [`${LOG_FILE}: sequence ${r.seq} follows ${prev} (not rising)`];
        prev = r.seq;
        digest.add(r, raw);
      }
    }
  } catch (err) {
    if (err instanceof CorruptLogError) return [`${LOG_FILE}: ${err.message}`];
    throw err;
  }
  const d = digest.result();
  const problems: string[] = [];
  if (d.messages !== entry.messages) problems.push(`${LOG_FILE}: ${d.messages} messages, manifest says ${entry.messages}`);
  if (d.messages > 0 && (d.first_seq !== entry.first_seq || d.last_seq !== entry.last_seq)) {
    problems.push(`${LOG_FILE}: sequences ${d.first_seq}..${d.last_seq}, manifest says ${entry.first_seq}..${entry.last_seq}`);
  }
  if (d.digest !== entry.digest) problems.push(`${LOG_FILE}: message digest differs from the manifest`);
  else if (d.content_digest !== entry.content_digest) problems.push(`${LOG_FILE}: content digest differs from the manifest`);
  return problems;
}
