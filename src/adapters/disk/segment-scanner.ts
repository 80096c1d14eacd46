import type { FileHandle } from 'node:fs/promises';
import { decodeRecordHeader, RECORD_HEADER_BYTES, RECORD_MARKER, recordChecksumValid } from './format.js';

export interface ScannedRecord {
  readonly kind: 'record';
  readonly offset: number;
  readonly end: number;
  readonly sequence: number;
  readonly timestamp: number;
  /** A view into the scanner's read buffer; the scanner never writes into a buffer it handed out. */
  readonly payload: Buffer;
}

export interface ScannedCorruption {
  readonly kind: 'corrupt';
  readonly offset: number;
  /** Offset of the next valid record, or the scan limit when none follows. */
  readonly end: number;
  readonly reason: string;
  /** Sequence of the valid record at `end`, when there is one. */
  readonly nextSequence: number | undefined;
}

export type ScanItem = ScannedRecord | ScannedCorruption;

type Attempt = { ok: true; record: ScannedRecord } | { ok: false; reason: string };

/**
 * Reads records of one segment file from `start` up to `limit` (exclusive), in chunks.
 *
 * Anything that is not a valid record (bad marker, version, length, checksum, or a record running
 * past `limit`) is reported as one corrupt region reaching to the next valid record: the scanner
 * searches forward for the record marker and accepts a candidate only if its checksum is valid
 * and its sequence is not lower than expected. So one bad record never hides the records after it.
 */
export class SegmentScanner {
  private buf: Buffer = Buffer.alloc(0);
  private bufStart = 0;
  private pos: number;
  private expected: number;

  constructor(
    private readonly handle: FileHandle,
    start: number,
    private limit: number,
    /** Sequence the first record should have; candidates below it are rejected during resync. */
    expectedSequence: number,
    private readonly chunkBytes: number,
  ) {
    this.pos = start;
    this.expected = expectedSequence;
  }

  /** Offset of the next item. */
  get position(): number {
    return this.pos;
  }

  /** The next record or corrupt region, or undefined at the limit. */
  async next(): Promise<ScanItem | undefined> {
    if (this.pos >= this.limit) return undefined;
    const attempt = await this.decodeAt(this.pos);
    if (attempt.ok) {
      this.pos = attempt.record.end;
      this.expected = attempt.record.sequence + 1;
      return attempt.record;
    }
    const offset = this.pos;
    const found = await this.resync(offset + 1);
    this.pos = found?.offset ?? this.limit;
    if (found) this.expected = found.sequence;
    return { kind: 'corrupt', offset, end: this.pos, reason: attempt.reason, nextSequence: found?.sequence };
  }

  private async resync(from: number): Promise<ScannedRecord | undefined> {
    let at = from;
    while (at + RECORD_HEADER_BYTES <= this.limit) {
      await this.ensure(at, Math.min(this.limit - at, Math.max(RECORD_HEADER_BYTES, this.chunkBytes)));
      const index = this.buf.indexOf(RECORD_MARKER, at - this.bufStart);
      if (index === -1) {
        const searched = this.bufStart + this.buf.length;
        if (searched >= this.limit) return undefined;
        // The marker may straddle the chunk boundary.
        at = Math.max(at + 1, searched - (RECORD_MARKER.length - 1));
        continue;
      }
      const candidate = this.bufStart + index;
      const attempt = await this.decodeAt(candidate);
      if (attempt.ok && attempt.record.sequence >= this.expected) return attempt.record;
      at = candidate + 1;
    }
    return undefined;
  }

  private async decodeAt(offset: number): Promise<Attempt> {
    if (offset + RECORD_HEADER_BYTES > this.limit) return { ok: false, reason: 'partial record header' };
    await this.ensure(offset, RECORD_HEADER_BYTES);
    if (!this.has(offset, RECORD_HEADER_BYTES)) return { ok: false, reason: 'partial record header' };
    const header = decodeRecordHeader(this.buf, offset - this.bufStart);
    if (typeof header === 'string') return { ok: false, reason: header };
    const end = offset + RECORD_HEADER_BYTES + header.payloadLength;
    if (end > this.limit) return { ok: false, reason: 'partial record payload' };
    await this.ensure(offset, end - offset);
    if (!this.has(offset, end - offset)) return { ok: false, reason: 'partial record payload' };
    const at = offset - this.bufStart;
    if (!recordChecksumValid(this.buf, at, header.payloadLength)) return { ok: false, reason: 'checksum mismatch' };
    return {
      ok: true,
      record: {
        kind: 'record', offset, end, sequence: header.sequence, timestamp: header.timestamp,
        payload: this.buf.subarray(at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + header.payloadLength),
      },
    };
  }

  private has(offset: number, length: number): boolean {
    return offset >= this.bufStart && offset + length <= this.bufStart + this.buf.length;
  }

  /** Makes [offset, offset + length) available in the buffer, reading ahead a chunk if it is not. */
  private async ensure(offset: number, length: number): Promise<void> {
    if (this.has(offset, length)) return;
    const size = Math.min(this.limit - offset, Math.max(length, this.chunkBytes));
    // A fresh buffer each time: payload views handed out earlier stay valid.
    const buf = Buffer.allocUnsafe(size);
    let filled = 0;
    while (filled < size) {
      const { bytesRead } = await this.handle.read(buf, filled, size - filled, offset + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    // A file shorter than the limit (cut by something else): the data ends where the file does.
    if (filled < size) this.limit = offset + filled;
    this.buf = filled < size ? buf.subarray(0, filled) : buf;
    this.bufStart = offset;
  }
}
