import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

/**
 * An archive is one directory per run, named by its UTC start time:
 *
 *   kgents-backup-20261130T020000Z/
 *     manifest.json           what is inside: streams, consumers, counts, sequences, checksums
 *     manifest.json.sha256    the manifest's own checksum
 *     streams/<STREAM>/snapshot.tar.s2   JetStream's own snapshot (file storage only)
 *     streams/<STREAM>/messages.kgml     every message (message-log.ts), for verify and for
 *                                        streams the snapshot API cannot copy (memory storage)
 *
 * It is written under a `.partial` name and renamed when complete, so a directory with the final
 * name is a finished backup. A directory keeps each file readable with ordinary tools (`tar -C DIR
 * -cf - NAME` ships it elsewhere as one file).
 */
export const ARCHIVE_PREFIX = 'kgents-backup-';
export const PARTIAL_SUFFIX = '.partial';
export const MANIFEST = 'manifest.json';
export const MANIFEST_SUM = 'manifest.json.sha256';
export const FORMAT = 'kgents-backup/1';
export const SNAPSHOT_FILE = 'snapshot.tar.s2';
export const LOG_FILE = 'messages.kgml';

const NAME_RE = /^kgents-backup-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z(?:-(\d+))?$/;

/** kgents-backup-YYYYMMDDTHHMMSSZ for the given time. */
export function archiveName(at: Date, suffix?: number): string {
  const iso = at.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
  return `${ARCHIVE_PREFIX}${iso}${suffix ? `-${suffix}` : ''}`;
}

/** The time in an archive's name, or undefined when the name is not one this tool gives. */
export function archiveTime(name: string): Date | undefined {
  const m = NAME_RE.exec(name);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m;
  const t = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s}Z`);
  return Number.isNaN(t) ? undefined : new Date(t);
}

export function streamDir(archive: string, stream: string): string {
  return join(archive, 'streams', stream);
}

const fileEntry = z.object({ bytes: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) });

const sequencePair = z.object({ consumer_seq: z.number().int().nonnegative(), stream_seq: z.number().int().nonnegative() }).passthrough();

const consumerEntry = z.object({
  name: z.string().min(1),
  config: z.record(z.string(), z.unknown()),
  delivered: sequencePair,
  ack_floor: sequencePair,
  num_pending: z.number().int().nonnegative(),
  num_ack_pending: z.number().int().nonnegative(),
  /** False when the consumer moved while the stream was copied: the snapshot holds a position between the two readings. */
  position_exact: z.boolean(),
  /** The reading after the snapshot when it differs. */
  delivered_after: sequencePair.optional(),
  ack_floor_after: sequencePair.optional(),
});

const streamEntry = z.object({
  name: z.string().min(1),
  /** The KV bucket name when the stream is one (KV_<bucket>). */
  kv_bucket: z.string().optional(),
  method: z.enum(['snapshot', 'messages']),
  config: z.record(z.string(), z.unknown()),
  /** The stream's state when it was copied (the snapshot's own state for method snapshot). */
  state: z.object({
    messages: z.number().int().nonnegative(),
    bytes: z.number().int().nonnegative(),
    first_seq: z.number().int().nonnegative(),
    last_seq: z.number().int().nonnegative(),
  }).passthrough(),
  consumers: z.array(consumerEntry),
  messages: z.number().int().nonnegative(),
  first_seq: z.number().int().nonnegative(),
  last_seq: z.number().int().nonnegative(),
  /** sha256 over every message (sequence, timestamp, subject, headers, data). */
  digest: z.string().regex(/^[0-9a-f]{64}$/),
  /** The same without timestamps. */
  content_digest: z.string().regex(/^[0-9a-f]{64}$/),
  files: z.record(z.string(), fileEntry),
});

export const manifestSchema = z.object({
  format: z.literal(FORMAT),
  tool: z.literal('kgents backup'),
  tool_version: z.string(),
  name: z.string().regex(NAME_RE),
  started_at: z.string(),
  finished_at: z.string(),
  source: z.object({ servers: z.array(z.string()), server_version: z.string().optional(), cluster: z.string().optional() }),
  streams: z.array(streamEntry),
  totals: z.object({ streams: z.number().int(), messages: z.number().int(), bytes: z.number().int() }),
});

export type Manifest = z.infer<typeof manifestSchema>;
export type StreamEntry = z.infer<typeof streamEntry>;
export type ConsumerEntry = z.infer<typeof consumerEntry>;
export type FileEntry = z.infer<typeof fileEntry>;

export class ArchiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArchiveError';
  }
}

export function sha256Text(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export async function sha256File(path: string): Promise<FileEntry> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { bytes, sha256: hash.digest('hex') };
}

/** Reads and checks the manifest (its checksum file, then its schema). */
export async function readManifest(archive: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(join(archive, MANIFEST), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ArchiveError(code === 'ENOENT' ? `${archive} is not a kgents backup archive (no ${MANIFEST})` : `cannot read ${MANIFEST}: ${String(err)}`);
  }
  let sum: string;
  try {
    sum = (await readFile(join(archive, MANIFEST_SUM), 'utf8')).trim().split(/\s+/)[0] ?? '';
  } catch {
    throw new ArchiveError(`${MANIFEST_SUM} is missing`);
  }
  if (sum !== sha256Text(text)) throw new ArchiveError(`${MANIFEST} does not match its checksum in ${MANIFEST_SUM}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ArchiveError(`${MANIFEST} is not JSON: ${String(err)}`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) throw new ArchiveError(`${MANIFEST} is not a ${FORMAT} manifest: ${parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

export interface ArchiveListing {
  readonly name: string;
  readonly path: string;
  readonly time: Date;
  readonly partial: boolean;
}

/** This tool's archives (finished and partial) directly under `dir`, oldest first; anything else is ignored. */
export async function listArchives(dir: string): Promise<ArchiveListing[]> {
  const out: ArchiveListing[] = [];
  for (const entry of await readdir(dir)) {
    const partial = entry.endsWith(PARTIAL_SUFFIX);
    const base = partial ? entry.slice(0, -PARTIAL_SUFFIX.length).replace(/^\./, '') : entry;
    const time = archiveTime(base);
    if (!time) continue;
    const path = join(dir, entry);
    if (!(await stat(path)).isDirectory()) continue;
    out.push({ name: entry, path, time, partial });
  }
  return out.sort((a, b) => a.time.getTime() - b.time.getTime());
}
