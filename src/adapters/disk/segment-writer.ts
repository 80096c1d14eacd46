import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { messageOf, QueueClosedError, QueueWriteError } from './errors.js';
import { encodeRecord, encodeSegmentHeader, recordBytes, SEGMENT_HEADER_BYTES, segmentFileName } from './format.js';
import { syncDirectory } from './fs-util.js';
import type { SegmentCatalog } from './segment-catalog.js';
import type { SegmentIo } from './types.js';

export const defaultSegmentIo: SegmentIo = {
  async write(handle, data, position) {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
      done += bytesWritten;
    }
  },
  sync: (handle) => handle.datasync(),
  truncate: (handle, length) => handle.truncate(length),
};

/** What one durable write did, for the queue's accounting. */
export interface DurableWrite {
  readonly records: number;
  readonly bytes: number;
  readonly firstTimestamp: number;
}

export interface SegmentWriterOptions {
  readonly dir: string;
  readonly segmentBytes: number;
  readonly maxBatchBytes: number;
  readonly lingerMs: number;
  readonly io: SegmentIo;
  /** Called synchronously after each durable write, before its appends resolve. */
  readonly onDurable: (write: DurableWrite) => void;
  readonly onError: (err: unknown, rejected: number) => void;
}

interface Pending {
  readonly payload: Uint8Array;
  readonly timestamp: number;
  readonly size: number;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
  settled: boolean;
}

export interface WriterStats {
  fsyncs: number;
  bytesWritten: number;
  segmentsCreated: number;
}

/**
 * Appends records to the active segment with group commit: appends that arrive while a write +
 * fsync is in flight wait and then go out together in one write followed by one fdatasync; every
 * append of the batch resolves after that fdatasync. One batch is in flight at a time, so records
 * land in the order `append` was called, and sequence numbers are given out only when a batch is
 * written (a failed batch leaves no gap).
 *
 * Failure: when a write or fsync fails, every append of the batch is rejected with
 * QueueWriteError, the segment is truncated back to its last durable size (and that truncation
 * fsynced), and the next batch proceeds normally. If even the truncation fails, the writer
 * retries it before each later batch and rejects batches until it succeeds: nothing is ever
 * acknowledged after bytes whose fate is unknown.
 */
export class SegmentWriter {
  readonly stats: WriterStats = { fsyncs: 0, bytesWritten: 0, segmentsCreated: 0 };
  private pending: Pending[] = [];
  private pendingBytesTotal = 0;
  private scheduled = false;
  private running: Promise<void> | undefined;
  private damaged: unknown;
  /** A roll failed: the next write must go to a new segment (never back into the old one). */
  private mustRoll = false;
  private closed = false;

  constructor(
    private handle: FileHandle,
    private readonly catalog: SegmentCatalog,
    private readonly options: SegmentWriterOptions,
  ) {}

  /** Bytes accepted and not yet durable or rejected (queued and in flight). */
  get pendingBytes(): number {
    return this.pendingBytesTotal;
  }

  append(payload: Uint8Array, timestamp: number): Promise<void> {
    if (this.closed) return Promise.reject(new QueueClosedError());
    return new Promise<void>((resolve, reject) => {
      const size = recordBytes(payload.length);
      this.pending.push({ payload, timestamp, size, resolve, reject, settled: false });
      this.pendingBytesTotal += size;
      this.schedule();
    });
  }

  /** Writes what is pending, then closes the segment file. Later appends reject. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.running || this.scheduled) {
      if (this.running) await this.running;
      else await new Promise((r) => setImmediate(r));
    }
    await this.handle.close();
  }

  private schedule(): void {
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    const start = (): void => {
      this.scheduled = false;
      this.running = this.drain().finally(() => {
        this.running = undefined;
        if (this.pending.length > 0) this.schedule();
      });
    };
    if (this.options.lingerMs > 0) setTimeout(start, this.options.lingerMs);
    else setImmediate(start);
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      let bytes = 0;
      let count = 0;
      while (count < this.pending.length && (count === 0 || bytes + this.pending[count]!.size <= this.options.maxBatchBytes)) {
        bytes += this.pending[count]!.size;
        count++;
      }
      const batch = this.pending.splice(0, count);
      try {
        await this.writeBatch(batch);
      } catch (err) {
        // Not an I/O error (those are handled inside): still settle every append, and repair
        // before the next batch in case bytes were written.
        this.damaged = err;
        this.fail(batch.filter((p) => !p.settled), err, 'internal error');
      }
    }
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    if (this.damaged !== undefined) {
      try {
        await this.repair();
      } catch (err) {
        this.fail(batch, err, 'the segment could not be restored after an earlier write error');
        return;
      }
    }
    let i = 0;
    while (i < batch.length) {
      const active = this.catalog.active;
      if (this.mustRoll || (active.size + batch[i]!.size > this.options.segmentBytes && active.size > SEGMENT_HEADER_BYTES)) {
        try {
          this.mustRoll = true;
          await this.roll();
          this.mustRoll = false;
        } catch (err) {
          this.fail(batch.slice(i), err, 'creating a new segment failed');
          return;
        }
      }
      // The records that fit in the active segment (at least one, so a huge record gets a segment of its own).
      let size = 0;
      let j = i;
      while (j < batch.length && (j === i || this.catalog.active.size + size + batch[j]!.size <= this.options.segmentBytes)) {
        size += batch[j]!.size;
        j++;
      }
      const chunk = batch.slice(i, j);
      const data = Buffer.allocUnsafe(size);
      let offset = 0;
      let sequence = this.catalog.nextSequence;
      for (const p of chunk) offset = encodeRecord(data, offset, p.payload, sequence++, p.timestamp);
      try {
        await this.options.io.write(this.handle, data, this.catalog.active.size);
        await this.options.io.sync(this.handle);
      } catch (err) {
        // Cut the segment back before anyone hears of the failure; if that fails too, the next
        // batch retries it first.
        this.damaged = err;
        await this.repair().catch(() => undefined);
        this.fail(batch.slice(i), err, 'write or fsync failed');
        return;
      }
      this.stats.fsyncs++;
      this.stats.bytesWritten += size;
      this.pendingBytesTotal -= size;
      this.catalog.advance(size, chunk.length);
      this.options.onDurable({ records: chunk.length, bytes: size, firstTimestamp: chunk[0]!.timestamp });
      for (const p of chunk) {
        p.settled = true;
        p.resolve();
      }
      i = j;
    }
  }

  private fail(rejected: Pending[], err: unknown, what: string): void {
    for (const p of rejected) this.pendingBytesTotal -= p.size;
    this.options.onError(err, rejected.length);
    const error = new QueueWriteError(`fallback queue append failed: ${what}: ${messageOf(err)}`, err);
    for (const p of rejected) {
      p.settled = true;
      p.reject(error);
    }
  }

  /** Cuts the active segment back to its durable size and makes that durable. */
  private async repair(): Promise<void> {
    await this.options.io.truncate(this.handle, this.catalog.active.size);
    await this.options.io.sync(this.handle);
    this.damaged = undefined;
  }

  /** Seals the active segment and starts a new one named after the next sequence number. */
  private async roll(): Promise<void> {
    const id = this.catalog.nextSequence;
    const path = join(this.options.dir, segmentFileName(id));
    // 'w': a file of that name can only be a leftover of an earlier failed roll (no record in it
    // was ever acknowledged, or nextSequence would be past it).
    const handle = await open(path, 'w+');
    try {
      await this.options.io.write(handle, encodeSegmentHeader(id), 0);
      await this.options.io.sync(handle);
      await syncDirectory(this.options.dir);
    } catch (err) {
      await handle.close().catch(() => undefined);
      await rm(path, { force: true }).catch(() => undefined);
      throw err;
    }
    const sealed = this.handle;
    this.handle = handle;
    this.catalog.roll(id);
    this.stats.segmentsCreated++;
    await sealed.close().catch(() => undefined);
  }
}
