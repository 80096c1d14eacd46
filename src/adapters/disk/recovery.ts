import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { checkSegmentHeader, encodeSegmentHeader, parseSegmentFileName, SEGMENT_HEADER_BYTES, segmentFileName } from './format.js';
import { syncDirectory } from './fs-util.js';
import type { SegmentInfo } from './segment-catalog.js';
import { SegmentScanner } from './segment-scanner.js';
import type { CorruptRegion, QueueLogger } from './types.js';

export interface RecoveredSegments {
  /** Oldest first; the last is the active segment, open read-write in `activeHandle`. */
  readonly segments: SegmentInfo[];
  readonly activeHandle: FileHandle;
  /** Sequence number of the next record to append. */
  readonly nextSequence: number;
  /** Torn tail bytes cut off the active segment. */
  readonly truncatedBytes: number;
  /** Corrupt regions inside the active segment that have valid records after them. */
  readonly regions: CorruptRegion[];
}

const SCAN_CHUNK_BYTES = 1024 * 1024;

async function createSegment(dir: string, id: number): Promise<FileHandle> {
  const handle = await open(join(dir, segmentFileName(id)), 'w+');
  await handle.write(encodeSegmentHeader(id), 0, SEGMENT_HEADER_BYTES, 0);
  await handle.datasync();
  await syncDirectory(dir);
  return handle;
}

async function readHeader(handle: FileHandle): Promise<Buffer> {
  const buf = Buffer.alloc(SEGMENT_HEADER_BYTES);
  const { bytesRead } = await handle.read(buf, 0, SEGMENT_HEADER_BYTES, 0);
  return buf.subarray(0, bytesRead);
}

/**
 * Finds the segments of `dir` and makes the last one appendable again after a crash.
 *
 * Sealed segments were fsynced completely before the next one was created, so only their size
 * is read here; their records are verified when the drainer reads them. The active segment is
 * scanned in full: everything after its last valid record is a torn write that was never
 * acknowledged (append resolves only after fsync) and is truncated (then fsynced). A corrupt
 * region followed by valid records is not a torn tail; it is kept in place, returned for
 * reporting, and skipped by readers.
 */
export async function recoverSegments(dir: string, firstSequence: number, logger: QueueLogger): Promise<RecoveredSegments> {
  const ids = (await readdir(dir)).map(parseSegmentFileName).filter((id): id is number => id !== undefined).sort((a, b) => a - b);
  if (ids.length === 0) {
    const handle = await createSegment(dir, firstSequence);
    return { segments: [{ id: firstSequence, size: SEGMENT_HEADER_BYTES }], activeHandle: handle, nextSequence: firstSequence, truncatedBytes: 0, regions: [] };
  }
  const segments: SegmentInfo[] = [];
  for (const id of ids.slice(0, -1)) {
    const path = join(dir, segmentFileName(id));
    const { size } = await stat(path);
    const handle = await open(path, 'r');
    try {
      const problem = checkSegmentHeader(await readHeader(handle), id);
      if (problem) logger.error({ segment: id, problem }, 'fallback queue: sealed segment has a damaged header; reading its records anyway');
    } finally {
      await handle.close();
    }
    segments.push({ id, size: Math.max(size, SEGMENT_HEADER_BYTES) });
  }

  const id = ids.at(-1)!;
  const handle = await open(join(dir, segmentFileName(id)), 'r+');
  try {
    const { size } = await handle.stat();
    const headerProblem = checkSegmentHeader(await readHeader(handle), id);
    const scanner = new SegmentScanner(handle, SEGMENT_HEADER_BYTES, size, id, SCAN_CHUNK_BYTES);
    let validEnd = SEGMENT_HEADER_BYTES;
    let nextSequence = id;
    let records = 0;
    const regions: CorruptRegion[] = [];
    for (let item = await scanner.next(); item; item = await scanner.next()) {
      if (item.kind === 'record') {
        validEnd = item.end;
        nextSequence = item.sequence + 1;
        records++;
      } else if (item.nextSequence !== undefined) {
        regions.push({ segment: id, offset: item.offset, end: item.end, lostRecords: Math.max(0, item.nextSequence - nextSequence), reason: item.reason });
      }
    }
    if (headerProblem && records === 0) {
      // Torn while the segment was being created: nothing in it was ever acknowledged.
      await handle.truncate(0);
      await handle.write(encodeSegmentHeader(id), 0, SEGMENT_HEADER_BYTES, 0);
      await handle.datasync();
      if (size > 0) logger.warn({ segment: id, problem: headerProblem, bytes: size }, 'fallback queue: re-initialised a segment torn during creation');
      return { segments: [...segments, { id, size: SEGMENT_HEADER_BYTES }], activeHandle: handle, nextSequence: id, truncatedBytes: Math.max(0, size - SEGMENT_HEADER_BYTES), regions: [] };
    }
    if (headerProblem) logger.error({ segment: id, problem: headerProblem }, 'fallback queue: active segment has a damaged header; keeping its records');
    const truncatedBytes = size - validEnd;
    if (truncatedBytes > 0) {
      await handle.truncate(validEnd);
      await handle.datasync();
      logger.warn({ segment: id, offset: validEnd, bytes: truncatedBytes }, 'fallback queue: truncated a torn tail left by a crash (never acknowledged)');
    }
    return { segments: [...segments, { id, size: validEnd }], activeHandle: handle, nextSequence, truncatedBytes, regions };
  } catch (err) {
    await handle.close();
    throw err;
  }
}
