/** Base class of every error the fallback queue throws; `code` is stable for callers to map. */
export class FallbackQueueError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'FallbackQueueError';
  }
}

/**
 * The record would take the queue over `maxBytes`. Nothing was written. The caller answers 503
 * (ERR_METERING_UNAVAILABLE) with Retry-After; appends succeed again once the drainer commits.
 */
export class QueueFullError extends FallbackQueueError {
  constructor(
    readonly maxBytes: number,
    readonly queuedBytes: number,
    readonly recordBytes: number,
  ) {
    super('QUEUE_FULL', `fallback queue full: ${queuedBytes} + ${recordBytes} bytes would exceed maxBytes ${maxBytes}`);
    this.name = 'QueueFullError';
  }
}

/** The record is larger than `maxRecordBytes` (or empty): it can never be queued. */
export class RecordSizeError extends FallbackQueueError {
  constructor(readonly recordBytes: number, readonly maxRecordBytes: number) {
    super('RECORD_SIZE', `record of ${recordBytes} bytes is outside 1..${maxRecordBytes}`);
    this.name = 'RecordSizeError';
  }
}

/**
 * Writing or fsyncing the record failed (ENOSPC, EIO, ...). The record is NOT durable and must be
 * treated as not queued. `errno` is the system error code when there is one; the cause is attached.
 */
export class QueueWriteError extends FallbackQueueError {
  readonly errno: string | undefined;
  constructor(message: string, cause: unknown) {
    super('QUEUE_WRITE_FAILED', message, { cause });
    this.name = 'QueueWriteError';
    this.errno = errnoOf(cause);
  }
}

/** The queue was closed (or is closing) before the call. */
export class QueueClosedError extends FallbackQueueError {
  constructor() {
    super('QUEUE_CLOSED', 'fallback queue is closed');
    this.name = 'QueueClosedError';
  }
}

/** Another live process (or another open in this process) holds the queue directory. */
export class QueueLockedError extends FallbackQueueError {
  constructor(readonly lockPath: string, readonly holderPid: number | undefined) {
    super('QUEUE_LOCKED', `fallback queue directory is locked by ${holderPid === undefined ? 'another process' : `pid ${holderPid}`} (${lockPath})`);
    this.name = 'QueueLockedError';
  }
}

/** A position passed to `commit` or `readBatch` is not inside the queue. */
export class QueuePositionError extends FallbackQueueError {
  constructor(message: string) {
    super('QUEUE_POSITION', message);
    this.name = 'QueuePositionError';
  }
}

export function errnoOf(err: unknown): string | undefined {
  if (err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string') return (err as NodeJS.ErrnoException).code;
  return undefined;
}

export function isErrno(err: unknown, ...codes: string[]): boolean {
  const code = errnoOf(err);
  return code !== undefined && codes.includes(code);
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
