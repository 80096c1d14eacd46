export { FallbackQueue, FALLBACK_QUEUE_DEFAULTS, stderrQueueLogger, type ReadBatchOptions } from './fallback-queue.js';
export {
  FallbackQueueError, QueueClosedError, QueueFullError, QueueLockedError, QueuePositionError, QueueWriteError, RecordSizeError,
} from './errors.js';
export { crc32c } from './crc32c.js';
export { defaultSegmentIo } from './segment-writer.js';
export type {
  CorruptRegion, FallbackQueueOptions, FallbackQueueStats, QueueLogger, QueuePosition, QueueRecord, ReadBatch, SegmentIo,
} from './types.js';
