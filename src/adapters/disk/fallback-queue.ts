import { mkdir, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { CursorStore } from './cursor-store.js';
import {
  messageOf, QueueClosedError, QueueFullError, QueuePositionError, RecordSizeError,
} from './errors.js';
import { MAX_PAYLOAD_BYTES, recordBytes, SEGMENT_HEADER_BYTES, segmentFileName } from './format.js';
import { syncDirectory } from './fs-util.js';
import { DirectoryLock } from './lock.js';
import { recoverSegments } from './recovery.js';
import { SegmentCatalog } from './segment-catalog.js';
import { SegmentReader } from './segment-reader.js';
import { defaultSegmentIo, SegmentWriter } from './segment-writer.js';
import type {
  CorruptRegion, FallbackQueueOptions, FallbackQueueStats, QueueLogger, QueuePosition, ReadBatch,
} from './types.js';

const MiB = 1024 * 1024;

export const FALLBACK_QUEUE_DEFAULTS = {
  maxBytes: 1024 * MiB,
  segmentBytes: 64 * MiB,
  maxRecordBytes: MiB,
  lingerMs: 0,
  maxBatchBytes: 4 * MiB,
  readChunkBytes: MiB,
} as const;

/** Default logger: one line on stderr per message. */
export const stderrQueueLogger: QueueLogger = {
  warn(fields, message) {
    process.stderr.write(`warn: ${message} ${JSON.stringify(fields)}\n`);
  },
  error(fields, message) {
    process.stderr.write(`error: ${message} ${JSON.stringify(fields)}\n`);
  },
};

export interface ReadBatchOptions {
  /** Read from here instead of the committed cursor (to read ahead while a batch is published). */
  readonly after?: QueuePosition;
  /** Stop once this many payload bytes are in the batch. Default 16 MiB. */
  readonly maxBytes?: number;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

/**
 * Durable on-disk queue for usage events while JetStream is unreachable. Format, guarantees and
 * failure policy: `src/adapters/disk/README.md`.
 *
 * - `append` resolves only once the record is fsynced (group commit: concurrent appends share one
 *   write and one fdatasync); it rejects with QueueFullError, RecordSizeError, QueueWriteError or
 *   QueueClosedError and then the record is not queued.
 * - One drainer: `readBatch` from the committed cursor, publish, `commit(batch.end)`. A crash
 *   before commit re-delivers at most the uncommitted batch (JetStream dedupes by Nats-Msg-Id).
 * - `depth`, `bytes` and `oldestTimestamp` are in memory and O(1) to read.
 */
export class FallbackQueue {
  private readonly stat: FallbackQueueStats = {
    appends: 0, writeErrors: 0, fullRejections: 0, fsyncs: 0, bytesWritten: 0, segmentsCreated: 0,
    segmentsDeleted: 0, corruptRegions: 0, corruptBytes: 0, lostRecords: 0, truncatedBytes: 0,
  };
  /** Corrupt regions already reported, by segment: each is counted and logged once. */
  private readonly reported = new Map<number, Set<number>>();
  private readonly writer: SegmentWriter;
  private readonly reader: SegmentReader;
  private cursor: QueuePosition;
  private undrainedBytes = 0;
  private oldest: number | undefined;
  /** readBatch and commit run one at a time, in call order. */
  private drainTail: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | undefined;

  private constructor(
    readonly dir: string,
    private readonly options: Required<Omit<FallbackQueueOptions, 'io'>>,
    private readonly catalog: SegmentCatalog,
    private readonly cursorStore: CursorStore,
    private readonly lock: DirectoryLock,
    activeHandle: FileHandle,
    io: FallbackQueueOptions['io'],
    cursor: QueuePosition,
  ) {
    this.cursor = cursor;
    this.reader = new SegmentReader(dir, catalog);
    this.writer = new SegmentWriter(activeHandle, catalog, {
      dir,
      segmentBytes: options.segmentBytes,
      maxBatchBytes: options.maxBatchBytes,
      lingerMs: options.lingerMs,
      io: { ...defaultSegmentIo, ...io },
      onDurable: (write) => {
        this.stat.appends += write.records;
        this.undrainedBytes += write.bytes;
        this.oldest ??= write.firstTimestamp;
      },
      onError: (err, rejected) => {
        this.stat.writeErrors += rejected;
        this.options.logger.error({ dir, rejected, error: messageOf(err) }, 'fallback queue: write failed; appends rejected');
      },
    });
  }

  /**
   * Opens (creating if needed) the queue in `dir`, taking its lock, recovering from a crash
   * (torn tail truncated) and restoring the cursor, depth, bytes and oldest timestamp.
   */
  static async open(dir: string, options: FallbackQueueOptions = {}): Promise<FallbackQueue> {
    const resolved = {
      maxBytes: positiveInteger('maxBytes', options.maxBytes ?? FALLBACK_QUEUE_DEFAULTS.maxBytes),
      segmentBytes: positiveInteger('segmentBytes', options.segmentBytes ?? FALLBACK_QUEUE_DEFAULTS.segmentBytes),
      maxRecordBytes: Math.min(MAX_PAYLOAD_BYTES, positiveInteger('maxRecordBytes', options.maxRecordBytes ?? FALLBACK_QUEUE_DEFAULTS.maxRecordBytes)),
      lingerMs: Math.max(0, options.lingerMs ?? FALLBACK_QUEUE_DEFAULTS.lingerMs),
      maxBatchBytes: positiveInteger('maxBatchBytes', options.maxBatchBytes ?? FALLBACK_QUEUE_DEFAULTS.maxBatchBytes),
      readChunkBytes: positiveInteger('readChunkBytes', options.readChunkBytes ?? FALLBACK_QUEUE_DEFAULTS.readChunkBytes),
      logger: options.logger ?? stderrQueueLogger,
    };
    await mkdir(dir, { recursive: true });
    const lock = await DirectoryLock.acquire(dir);
    try {
      const cursorStore = new CursorStore(dir);
      await cursorStore.cleanup();
      const loaded = await cursorStore.load();
      if (loaded.kind === 'invalid') {
        resolved.logger.error({ dir, reason: loaded.reason }, 'fallback queue: cursor file is unreadable; re-delivering from the oldest segment');
      }
      const saved = loaded.kind === 'ok' ? loaded.position : undefined;
      const recovered = await recoverSegments(dir, saved?.sequence ?? 0, resolved.logger);
      const catalog = new SegmentCatalog(recovered.segments, recovered.nextSequence);
      const cursor = FallbackQueue.placeCursor(catalog, saved, resolved.logger, dir);
      const queue = new FallbackQueue(dir, resolved, catalog, cursorStore, lock, recovered.activeHandle, options.io, cursor);
      try {
        queue.stat.truncatedBytes = recovered.truncatedBytes;
        queue.undrainedBytes = catalog.bytesFrom(cursor);
        for (const region of recovered.regions) {
          if (region.segment !== cursor.segment || region.offset >= cursor.offset) queue.report(region);
        }
        await queue.deleteConsumedSegments();
        await queue.refreshOldest();
        return queue;
      } catch (err) {
        await queue.close().catch(() => undefined);
        throw err;
      }
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  /** Where draining resumes: the saved cursor when it is inside the queue, else the oldest data. */
  private static placeCursor(catalog: SegmentCatalog, saved: QueuePosition | undefined, logger: QueueLogger, dir: string): QueuePosition {
    const first = catalog.all[0]!;
    const start = (s: { id: number }): QueuePosition => ({ segment: s.id, offset: SEGMENT_HEADER_BYTES, sequence: s.id });
    if (!saved) return start(first);
    const segment = catalog.find(saved.segment);
    if (!segment) {
      const later = catalog.after(saved.segment);
      logger.error({ dir, cursor: saved, resumeAt: (later ?? first).id }, 'fallback queue: cursor names a segment that is gone');
      return start(later ?? first);
    }
    let position = saved;
    if (saved.offset < SEGMENT_HEADER_BYTES || saved.offset > segment.size || saved.sequence > catalog.nextSequence) {
      logger.error({ dir, cursor: saved, segmentSize: segment.size }, 'fallback queue: cursor is outside the data; re-delivering its segment');
      position = start(segment);
    }
    return FallbackQueue.normalize(catalog, position);
  }

  /** A position at the very end of a sealed segment is the start of the next one. */
  private static normalize(catalog: SegmentCatalog, position: QueuePosition): QueuePosition {
    const end = catalog.endOf(position.segment);
    const next = catalog.after(position.segment);
    if (end?.sealed && next && position.offset >= end.end) {
      return { segment: next.id, offset: SEGMENT_HEADER_BYTES, sequence: Math.max(position.sequence, next.id) };
    }
    return position;
  }

  /** Records acknowledged and not yet committed by the drainer. */
  get depth(): number {
    return Math.max(0, this.catalog.nextSequence - this.cursor.sequence);
  }

  /** Bytes of undrained records (headers included), plus appends accepted but not yet durable. */
  get bytes(): number {
    return this.undrainedBytes + this.writer.pendingBytes;
  }

  /**
   * Timestamp (ms) of the first undrained record, undefined when the queue is empty. Compare with
   * the JetStream stream's duplicate window: a record older than it may be published twice.
   */
  get oldestTimestamp(): number | undefined {
    return this.depth === 0 ? undefined : this.oldest;
  }

  /** The committed cursor: where the next `readBatch` starts. */
  get committed(): QueuePosition {
    return this.cursor;
  }

  stats(): FallbackQueueStats {
    const w = this.writer.stats;
    return { ...this.stat, fsyncs: w.fsyncs, bytesWritten: w.bytesWritten, segmentsCreated: w.segmentsCreated };
  }

  /**
   * Queues `payload` durably: resolves after it is written and fsynced. `timestampMs` (default
   * now) is stored with it for `oldestTimestamp`. Do not modify `payload` until this settles.
   */
  append(payload: Uint8Array, timestampMs: number = Date.now()): Promise<void> {
    if (this.closing) return Promise.reject(new QueueClosedError());
    if (payload.length === 0 || payload.length > this.options.maxRecordBytes) {
      return Promise.reject(new RecordSizeError(payload.length, this.options.maxRecordBytes));
    }
    if (!Number.isFinite(timestampMs) || timestampMs < 0) return Promise.reject(new RangeError(`invalid timestamp ${timestampMs}`));
    const size = recordBytes(payload.length);
    const queued = this.bytes;
    if (queued + size > this.options.maxBytes) {
      this.stat.fullRejections++;
      return Promise.reject(new QueueFullError(this.options.maxBytes, queued, size));
    }
    return this.writer.append(payload, Math.trunc(timestampMs));
  }

  /**
   * Up to `maxRecords` records from the committed cursor (or `options.after`), in append order,
   * never including an append that has not resolved. Does not move the cursor: calling it again
   * without a commit returns the same records.
   */
  readBatch(maxRecords: number, options: ReadBatchOptions = {}): Promise<ReadBatch> {
    return this.serial(async () => {
      positiveInteger('maxRecords', maxRecords);
      const from = options.after ?? this.cursor;
      if (SegmentCatalog.compare(from, this.cursor) < 0) throw new QueuePositionError('readBatch: position is before the committed cursor');
      const batch = await this.reader.read(from, {
        maxRecords, maxBytes: options.maxBytes ?? 16 * MiB, chunkBytes: this.options.readChunkBytes,
      });
      for (const region of batch.skipped) this.report(region);
      return batch;
    });
  }

  /**
   * Durably records that everything up to `position` (a record's `position` or a batch's `end`)
   * has been delivered, then deletes segments that are wholly consumed. Committing a position at
   * or before the current cursor does nothing.
   */
  commit(position: QueuePosition): Promise<void> {
    return this.serial(async () => {
      if (SegmentCatalog.compare(position, this.cursor) <= 0) return;
      const end = this.catalog.endOf(position.segment);
      if (!end || position.offset > end.end || position.offset < SEGMENT_HEADER_BYTES
        || position.sequence < this.cursor.sequence || position.sequence > this.catalog.nextSequence) {
        throw new QueuePositionError(`commit: position ${JSON.stringify(position)} is not inside the queue`);
      }
      const next = FallbackQueue.normalize(this.catalog, position);
      await this.cursorStore.save(next);
      this.undrainedBytes -= this.catalog.bytesBetween(this.cursor, next);
      this.cursor = next;
      await this.refreshOldest();
      await this.deleteConsumedSegments();
    });
  }

  /** Writes pending appends, waits for a read or commit in progress, closes files, drops the lock. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.writer.close();
        await this.drainTail.catch(() => undefined);
        await this.reader.close();
      } finally {
        await this.lock.release();
      }
    })();
    return this.closing;
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(new QueueClosedError());
    const result = this.drainTail.then(op);
    this.drainTail = result.catch(() => undefined);
    return result;
  }

  private async refreshOldest(): Promise<void> {
    if (this.depth === 0) {
      this.oldest = undefined;
      return;
    }
    const peek = await this.reader.read(this.cursor, { maxRecords: 1, maxBytes: 1, chunkBytes: 4096 });
    for (const region of peek.skipped) this.report(region);
    const first = peek.records[0];
    if (first) this.oldest = first.timestamp;
  }

  private async deleteConsumedSegments(): Promise<void> {
    const doomed = this.catalog.all.filter((s) => s.id < this.cursor.segment);
    let deleted = 0;
    for (const segment of doomed) {
      try {
        await this.reader.forget(segment.id);
        await rm(join(this.dir, segmentFileName(segment.id)), { force: true });
        deleted++;
        this.reported.delete(segment.id);
      } catch (err) {
        this.options.logger.warn({ dir: this.dir, segment: segment.id, error: messageOf(err) }, 'fallback queue: could not delete a consumed segment; will retry');
        break;
      }
    }
    if (deleted === 0) return;
    this.catalog.removeBefore(doomed[deleted - 1]!.id + 1);
    this.stat.segmentsDeleted += deleted;
    await syncDirectory(this.dir).catch(() => undefined);
  }

  private report(region: CorruptRegion): void {
    let offsets = this.reported.get(region.segment);
    if (!offsets) this.reported.set(region.segment, (offsets = new Set()));
    if (offsets.has(region.offset)) return;
    offsets.add(region.offset);
    this.stat.corruptRegions++;
    this.stat.corruptBytes += region.end - region.offset;
    this.stat.lostRecords += region.lostRecords;
    this.options.logger.error(
      { dir: this.dir, ...region, bytes: region.end - region.offset },
      `fallback queue: corrupt data skipped; ${region.lostRecords} acknowledged usage event(s) lost`,
    );
  }
}
