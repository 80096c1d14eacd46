/** Median of a non-empty list (mean of the two middle values for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (sorted.length % 2 === 1) return sorted[mid] ?? Number.NaN;
  return ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** Nearest-rank percentile (p in 0..100) of values that are already sorted ascending. */
export function percentileOfSorted(sorted: Float64Array | readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  const index = Math.min(sorted.length - 1, Math.max(0, rank - 1));
  return sorted[index] ?? Number.NaN;
}

/**
 * Every latency sample of a run, in ms, kept exactly: autocannon's own histogram stores whole
 * milliseconds, which is too coarse for 1-3 ms latencies. 8 bytes a sample, in 64 Ki chunks.
 */
export class SampleRecorder {
  private readonly chunks: Float64Array[] = [];
  private current = new Float64Array(65536);
  private used = 0;

  record(value: number): void {
    if (this.used === this.current.length) {
      this.chunks.push(this.current);
      this.current = new Float64Array(65536);
      this.used = 0;
    }
    this.current[this.used++] = value;
  }

  get count(): number {
    return this.chunks.length * 65536 + this.used;
  }

  sorted(): Float64Array {
    const all = new Float64Array(this.count);
    let offset = 0;
    for (const chunk of this.chunks) {
      all.set(chunk, offset);
      offset += chunk.length;
    }
    all.set(this.current.subarray(0, this.used), offset);
    return all.sort();
  }
}

export function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
