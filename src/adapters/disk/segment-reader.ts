import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { QueuePositionError } from './errors.js';
import { SEGMENT_HEADER_BYTES, segmentFileName } from './format.js';
import type { SegmentCatalog } from './segment-catalog.js';
import { SegmentScanner } from './segment-scanner.js';
import type { CorruptRegion, QueuePosition, QueueRecord, ReadBatch } from './types.js';

export interface ReadLimits {
  readonly maxRecords: number;
  readonly maxBytes: number;
  readonly chunkBytes: number;
}

/**
 * Reads records in order from a position, across segments, never past the durable end of the
 * active segment (so nothing that might still be rejected is ever handed to the drainer).
 * Keeps one read-only handle per segment it is reading; `forget` closes one before deletion.
 */
export class SegmentReader {
  private readonly handles = new Map<number, FileHandle>();

  constructor(private readonly dir: string, private readonly catalog: SegmentCatalog) {}

  async read(from: QueuePosition, limits: ReadLimits): Promise<ReadBatch> {
    const records: QueueRecord[] = [];
    const skipped: CorruptRegion[] = [];
    let segment = from.segment;
    let offset = from.offset;
    let expected = from.sequence;
    let bytes = 0;
    for (;;) {
      const end = this.catalog.endOf(segment);
      if (!end) throw new QueuePositionError(`segment ${segment} is not in the queue`);
      if (offset > end.end) throw new QueuePositionError(`offset ${offset} is past the end of segment ${segment} (${end.end})`);
      if (offset < end.end && records.length < limits.maxRecords && bytes < limits.maxBytes) {
        const chunkBytes = Math.max(4096, Math.min(limits.chunkBytes, limits.maxRecords * 1024));
        const scanner = new SegmentScanner(await this.handle(segment), offset, end.end, expected, chunkBytes);
        while (records.length < limits.maxRecords && bytes < limits.maxBytes) {
          const item = await scanner.next();
          if (!item) {
            if (scanner.position < end.end) {
              // The file is shorter than it was when written (cut by something outside the queue).
              skipped.push({ segment, offset: scanner.position, end: end.end, lostRecords: Math.max(0, end.endSequence - expected), reason: 'segment file shorter than written' });
              expected = Math.max(expected, end.endSequence);
              offset = end.end;
            }
            break;
          }
          if (item.kind === 'record') {
            records.push({
              position: { segment, offset: item.end, sequence: item.sequence + 1 },
              sequence: item.sequence, timestamp: item.timestamp, payload: item.payload,
            });
            bytes += item.payload.length;
            expected = item.sequence + 1;
          } else {
            const next = item.nextSequence ?? end.endSequence;
            skipped.push({ segment, offset: item.offset, end: item.end, lostRecords: Math.max(0, next - expected), reason: item.reason });
            expected = Math.max(expected, next);
          }
        }
        offset = Math.max(offset, scanner.position);
      }
      if (offset < end.end || !end.sealed) {
        // A full batch, or caught up with the writer (the end of the active segment).
        if (offset >= end.end) expected = Math.max(expected, end.endSequence);
        break;
      }
      // End of a sealed segment: continue in the next one.
      const next = this.catalog.after(segment);
      if (!next) break;
      expected = Math.max(expected, next.id);
      segment = next.id;
      offset = SEGMENT_HEADER_BYTES;
      if (records.length >= limits.maxRecords || bytes >= limits.maxBytes) break;
    }
    return { records, end: { segment, offset, sequence: expected }, skipped };
  }

  /** Closes the handle of a segment that is about to be deleted. */
  async forget(segment: number): Promise<void> {
    const handle = this.handles.get(segment);
    this.handles.delete(segment);
    await handle?.close();
  }

  async close(): Promise<void> {
    const all = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(all.map((h) => h.close()));
  }

  private async handle(segment: number): Promise<FileHandle> {
    let handle = this.handles.get(segment);
    if (!handle) {
      handle = await open(join(this.dir, segmentFileName(segment)), 'r');
      this.handles.set(segment, handle);
    }
    return handle;
  }
}
