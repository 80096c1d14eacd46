import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/** One stored JetStream message as the backup keeps it. */
export interface LogRecord {
  readonly seq: number;
  /** Server receive time in nanoseconds since the epoch. */
  readonly tsNanos: bigint;
  readonly subject: string;
  /** Header names and values in the order the message carries them; empty when it has none. */
  readonly headers: readonly (readonly [string, readonly string[]])[];
  readonly data: Uint8Array;
}

/**
 * File layout: the magic line, then one record after another:
 *   u32 body length | u64 seq | u64 ts nanos | u16 subject length | subject | u32 headers length |
 *   headers (JSON of [name, values[]] pairs) | u32 data length | data
 * Binary rather than JSON lines: data is opaque bytes, and 100k base64 lines cost twice the space.
 */
export const LOG_MAGIC = Buffer.from('KGENTS-MSGLOG/1\n');

const enc = new TextEncoder();

function encodeHeaders(headers: LogRecord['headers']): Uint8Array {
  return headers.length === 0 ? new Uint8Array(0) : enc.encode(JSON.stringify(headers));
}

export function encodeRecord(r: LogRecord): Buffer {
  const subject = enc.encode(r.subject);
  const headers = encodeHeaders(r.headers);
  const bodyLen = 8 + 8 + 2 + subject.length + 4 + headers.length + 4 + r.data.length;
  const buf = Buffer.allocUnsafe(4 + bodyLen);
  let o = buf.writeUInt32BE(bodyLen, 0);
  o = buf.writeBigUInt64BE(BigInt(r.seq), o);
  o = buf.writeBigUInt64BE(r.tsNanos, o);
  o = buf.writeUInt16BE(subject.length, o);
  buf.set(subject, o); o += subject.length;
  o = buf.writeUInt32BE(headers.length, o);
  buf.set(headers, o); o += headers.length;
  o = buf.writeUInt32BE(r.data.length, o);
  buf.set(r.data, o);
  return buf;
}

/**
 * Digests over the messages themselves, independent of how they are stored: `digest` covers
 * sequence, timestamp, subject, headers and data; `content` leaves the timestamp out, for streams
 * restored message by message, where the server stamps its own receive time.
 */
const ZERO_TS = Buffer.alloc(8);

export class MessageDigest {
  private readonly full: Hash = createHash('sha256');
  private readonly content: Hash = createHash('sha256');
  count = 0;
  firstSeq = 0;
  lastSeq = 0;

  /** `encoded` is encodeRecord(r) when the caller has it already. */
  add(r: LogRecord, encoded: Buffer = encodeRecord(r)): void {
    this.full.update(encoded);
    // the same record with its timestamp (bytes 12..20) zeroed
    this.content.update(encoded.subarray(0, 12));
    this.content.update(ZERO_TS);
    this.content.update(encoded.subarray(20));
    if (this.count === 0) this.firstSeq = r.seq;
    this.lastSeq = r.seq;
    this.count++;
  }

  result(): { messages: number; first_seq: number; last_seq: number; digest: string; content_digest: string } {
    return { messages: this.count, first_seq: this.firstSeq, last_seq: this.lastSeq, digest: this.full.digest('hex'), content_digest: this.content.digest('hex') };
  }
}

/** Appends records to a log file, hashing the file as it goes. */
export class MessageLogWriter {
  private readonly fileHash = createHash('sha256');
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  bytes = 0;
  readonly digest = new MessageDigest();

  private constructor(private readonly fh: FileHandle) {}

  static async create(path: string): Promise<MessageLogWriter> {
    const w = new MessageLogWriter(await open(path, 'wx'));
    await w.write(LOG_MAGIC);
    return w;
  }

  async append(r: LogRecord): Promise<void> {
    const buf = encodeRecord(r);
    this.digest.add(r, buf);
    this.pending.push(buf);
    this.pendingBytes += buf.length;
    if (this.pendingBytes >= 1 << 20) await this.flush();
  }

  async close(): Promise<{ bytes: number; sha256: string }> {
    await this.flush();
    await this.fh.sync();
    await this.fh.close();
    return { bytes: this.bytes, sha256: this.fileHash.digest('hex') };
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const buf = Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    await this.write(buf);
  }

  private async write(buf: Buffer): Promise<void> {
    this.fileHash.update(buf);
    this.bytes += buf.length;
    await this.fh.write(buf);
  }
}

export class CorruptLogError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CorruptLogError';
  }
}

/** Reads a log file record by record; throws CorruptLogError on a bad magic, a torn record or bad JSON. */
export async function* readMessageLog(path: string): AsyncGenerator<LogRecord> {
  for await (const batch of readMessageLogBatches(path)) for (const { record } of batch) yield record;
}

/**
 * The records of a log file a read-buffer at a time, each with its bytes as stored (for digests
 * without encoding again). Batches, because one await per record costs more than the parsing.
 */
export async function* readMessageLogBatches(path: string): AsyncGenerator<{ record: LogRecord; raw: Buffer }[]> {
  let buf: Buffer = Buffer.alloc(0);
  let magicChecked = false;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    if (!magicChecked) {
      if (buf.length < LOG_MAGIC.length) continue;
      if (!buf.subarray(0, LOG_MAGIC.length).equals(LOG_MAGIC)) throw new CorruptLogError('not a kgents message log (bad magic)');
      buf = buf.subarray(LOG_MAGIC.length);
      magicChecked = true;
    }
    let o = 0;
    const batch: { record: LogRecord; raw: Buffer }[] = [];
    while (buf.length - o >= 4) {
      const bodyLen = buf.readUInt32BE(o);
      if (bodyLen < 26) throw new CorruptLogError(`record at byte ${o} has an impossible length ${bodyLen}`);
      if (buf.length - o - 4 < bodyLen) break;
      const body = buf.subarray(o + 4, o + 4 + bodyLen);
      batch.push({ record: parseBody(body), raw: buf.subarray(o, o + 4 + bodyLen) });
      o += 4 + bodyLen;
    }
    if (batch.length > 0) yield batch;
    buf = buf.subarray(o);
  }
  if (!magicChecked) throw new CorruptLogError('not a kgents message log (too short)');
  if (buf.length > 0) throw new CorruptLogError(`the log ends inside a record (${buf.length} stray bytes)`);
}

function parseBody(body: Buffer): LogRecord {
  try {
    let o = 0;
    const seq = Number(body.readBigUInt64BE(o)); o += 8;
    const tsNanos = body.readBigUInt64BE(o); o += 8;
    const subjLen = body.readUInt16BE(o); o += 2;
    const subject = body.toString('utf8', o, o + subjLen); o += subjLen;
    const hdrLen = body.readUInt32BE(o); o += 4;
    const headers = hdrLen === 0 ? [] : parseHeaders(body.toString('utf8', o, o + hdrLen)); o += hdrLen;
    const dataLen = body.readUInt32BE(o); o += 4;
    if (o + dataLen !== body.length) throw new CorruptLogError(`record seq ${seq}: lengths do not add up`);
    return { seq, tsNanos, subject, headers, data: body.subarray(o, o + dataLen) };
  } catch (err) {
    if (err instanceof CorruptLogError) throw err;
    throw new CorruptLogError(`unreadable record: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function parseHeaders(text: string): LogRecord['headers'] {
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed) || !parsed.every((p) => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && Array.isArray(p[1]) && (p[1] as unknown[]).every((v) => typeof v === 'string'))) {
    throw new CorruptLogError('headers are not [name, values[]] pairs');
  }
  return parsed as [string, string[]][];
}
