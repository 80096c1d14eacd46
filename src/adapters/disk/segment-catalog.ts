import { SEGMENT_HEADER_BYTES } from './format.js';
import type { QueuePosition } from './types.js';

export interface SegmentInfo {
  /** Base sequence = file name. */
  readonly id: number;
  /** Durable size: for the active segment the end of the last fsynced write. */
  size: number;
}

/** Where a segment's readable data ends, and the sequence of the record that would follow. */
export interface SegmentEnd {
  readonly end: number;
  readonly endSequence: number;
  readonly sealed: boolean;
}

/**
 * The segments on disk, oldest first, with their durable sizes; the last one is the active
 * (written) segment. In memory only; rebuilt from the directory on open.
 */
export class SegmentCatalog {
  private readonly segments: SegmentInfo[] = [];
  /** Sequence number of the next record to be acknowledged. */
  nextSequence = 0;

  constructor(segments: readonly SegmentInfo[], nextSequence: number) {
    this.segments.push(...segments.map((s) => ({ ...s })));
    this.nextSequence = nextSequence;
  }

  get all(): readonly SegmentInfo[] {
    return this.segments;
  }

  get active(): SegmentInfo {
    const last = this.segments.at(-1);
    if (!last) throw new Error('fallback queue has no active segment');
    return last;
  }

  find(id: number): SegmentInfo | undefined {
    return this.segments.find((s) => s.id === id);
  }

  after(id: number): SegmentInfo | undefined {
    return this.segments.find((s) => s.id > id);
  }

  /** A snapshot of where readable data of `id` ends; undefined when the segment is gone. */
  endOf(id: number): SegmentEnd | undefined {
    const index = this.segments.findIndex((s) => s.id === id);
    if (index === -1) return undefined;
    const next = this.segments[index + 1];
    const segment = this.segments[index]!;
    return next
      ? { end: segment.size, endSequence: next.id, sealed: true }
      : { end: segment.size, endSequence: this.nextSequence, sealed: false };
  }

  /** Records that a write to the active segment is durable. */
  advance(bytes: number, records: number): void {
    this.active.size += bytes;
    this.nextSequence += records;
  }

  /** A new, empty (header only) active segment; the previous one becomes sealed at its size. */
  roll(id: number): void {
    this.segments.push({ id, size: SEGMENT_HEADER_BYTES });
  }

  /** Removes and returns the segments wholly before `id`. */
  removeBefore(id: number): SegmentInfo[] {
    const index = this.segments.findIndex((s) => s.id >= id);
    const count = index === -1 ? this.segments.length - 1 : index;
    return this.segments.splice(0, Math.max(0, count));
  }

  /** Position a >= b. */
  static compare(a: QueuePosition, b: QueuePosition): number {
    return a.segment - b.segment || a.offset - b.offset;
  }

  /** Data bytes between two positions (a <= b), without the headers of segments in between. */
  bytesBetween(a: QueuePosition, b: QueuePosition): number {
    if (a.segment === b.segment) return b.offset - a.offset;
    let total = 0;
    for (const s of this.segments) {
      if (s.id < a.segment || s.id > b.segment) continue;
      if (s.id === a.segment) total += s.size - a.offset;
      else if (s.id === b.segment) total += b.offset - SEGMENT_HEADER_BYTES;
      else total += s.size - SEGMENT_HEADER_BYTES;
    }
    return total;
  }

  /** Data bytes from `from` to the durable end of the active segment. */
  bytesFrom(from: QueuePosition): number {
    const active = this.active;
    return this.bytesBetween(from, { segment: active.id, offset: active.size, sequence: this.nextSequence });
  }
}
