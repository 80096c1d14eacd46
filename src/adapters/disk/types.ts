import type { FileHandle } from 'node:fs/promises';

/**
 * A point in the queue: just after a record. `sequence` is the sequence number of the next record
 * (records are numbered 0, 1, 2, ... in append order, across segments). Plain data: it can be
 * logged or compared, but only positions returned by the queue are valid to pass back.
 */
export interface QueuePosition {
  /** Segment id (= sequence number of the segment's first record = its file name). */
  readonly segment: number;
  /** Byte offset in the segment file. */
  readonly offset: number;
  /** Sequence number of the next record after this position. */
  readonly sequence: number;
}

export interface QueueRecord {
  /** Position just after this record: `commit(record.position)` acknowledges it and everything before. */
  readonly position: QueuePosition;
  readonly sequence: number;
  /** Milliseconds since the epoch, as given to `append` (default: time of the append call). */
  readonly timestamp: number;
  /** The bytes given to `append`. */
  readonly payload: Buffer;
}

/** Bytes that failed their checksum (bit rot, a bad sector, an outside write) and were skipped. */
export interface CorruptRegion {
  readonly segment: number;
  readonly offset: number;
  readonly end: number;
  /** Records whose sequence numbers fall in the gap: they are unrecoverable. */
  readonly lostRecords: number;
  readonly reason: string;
}

export interface ReadBatch {
  /** In append order; at most the requested number. Empty when the drainer has caught up. */
  readonly records: QueueRecord[];
  /**
   * Where the next read continues: after the last record, or after a corrupt region that ends
   * the batch. Commit it once every record of the batch is published.
   */
  readonly end: QueuePosition;
  /** Corrupt regions passed over by this read (each is also reported once to the logger and stats). */
  readonly skipped: CorruptRegion[];
}

/** The file operations on the append path; injectable to count fsyncs or simulate ENOSPC/EIO. */
export interface SegmentIo {
  /** Writes all of `data` at `position`. */
  write(handle: FileHandle, data: Buffer, position: number): Promise<void>;
  /** Makes written data durable (fdatasync). */
  sync(handle: FileHandle): Promise<void>;
  truncate(handle: FileHandle, length: number): Promise<void>;
}

/** pino-compatible. */
export interface QueueLogger {
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export interface FallbackQueueOptions {
  /** Bound on undrained bytes (record headers included). Default 1 GiB. */
  readonly maxBytes?: number;
  /** A segment is rolled when the next write would take it past this. Default 64 MiB. */
  readonly segmentBytes?: number;
  /** Largest accepted payload. Default 1 MiB. */
  readonly maxRecordBytes?: number;
  /**
   * How long the first append of an idle queue waits for company before the write starts.
   * Default 0: appends made in the same event-loop turn share a write, and appends made while a
   * write + fsync is in flight share the next one (that is where batching comes from under load).
   */
  readonly lingerMs?: number;
  /** Largest single write of a group commit. Default 4 MiB. */
  readonly maxBatchBytes?: number;
  /** Read size of the drainer. Default 1 MiB. */
  readonly readChunkBytes?: number;
  readonly io?: Partial<SegmentIo>;
  readonly logger?: QueueLogger;
}

export interface FallbackQueueStats {
  /** Appends acknowledged (durable) since open. */
  appends: number;
  /** Appends rejected with QueueWriteError since open. */
  writeErrors: number;
  /** Appends rejected with QueueFullError since open. */
  fullRejections: number;
  /** write + fsync rounds since open (one per group commit and segment). */
  fsyncs: number;
  bytesWritten: number;
  segmentsCreated: number;
  segmentsDeleted: number;
  /** Corrupt regions found (at open or while reading), each counted once. Alert on > 0. */
  corruptRegions: number;
  corruptBytes: number;
  /** Acknowledged records that were destroyed by corruption. Alert on > 0. */
  lostRecords: number;
  /** Bytes of torn tail cut off at open (never acknowledged; expected after a crash). */
  truncatedBytes: number;
}
