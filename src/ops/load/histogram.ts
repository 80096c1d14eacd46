/**
 * A log-linear (HDR-style) latency histogram with three significant digits.
 *
 * Values are recorded in whole microseconds. Below 2048 µs every value has its own bucket; above,
 * each power of two is split into 1024 equal sub-buckets, so a bucket's width is at most 1/1024 of
 * its lower bound (relative error < 0.1 %) up to 2^42 µs (about 50 days). Counts are kept sparse
 * (a Map), so a histogram costs memory for the values it saw, not for its range: per-window
 * histograms of a 24-hour soak stay small. Histograms merge exactly, and serialise to a compact
 * array for worker threads and reports.
 */

const SUB_BITS = 11;
const FULL = 1 << SUB_BITS; // 2048: values below are exact
const HALF = FULL >> 1; // 1024 sub-buckets per power of two above
const MAX_US = 2 ** 42;

/** The bucket of a non-negative integer value (µs). */
export function bucketIndex(value: number): number {
  if (value < FULL) return value;
  let e = Math.floor(Math.log2(value));
  if (2 ** e > value) e -= 1;
  else if (2 ** (e + 1) <= value) e += 1;
  const k = e - SUB_BITS + 1;
  const m = Math.floor(value / 2 ** k);
  return FULL + (k - 1) * HALF + (m - HALF);
}

/** The lowest and highest value (µs) a bucket stands for. */
export function bucketBounds(index: number): [number, number] {
  if (index < FULL) return [index, index];
  const j = index - FULL;
  const k = Math.floor(j / HALF) + 1;
  const m = (j % HALF) + HALF;
  return [m * 2 ** k, (m + 1) * 2 ** k - 1];
}

/** The serialised form: `b` is flattened [bucket, count] pairs. Values in µs. */
export interface HistogramData {
  readonly n: number;
  readonly min: number;
  readonly max: number;
  readonly sum: number;
  readonly b: readonly number[];
}

export class Histogram {
  private readonly counts = new Map<number, number>();
  private sorted: number[] | undefined;
  private total = 0;
  private minUs = Number.POSITIVE_INFINITY;
  private maxUs = 0;
  private sumUs = 0;

  static from(data: HistogramData): Histogram {
    const h = new Histogram();
    h.add(data);
    return h;
  }

  /** Records one value in milliseconds (negative values count as 0). */
  record(ms: number): void {
    this.recordUs(Math.min(MAX_US, Math.max(0, Math.round(ms * 1000))));
  }

  recordUs(us: number, count = 1): void {
    const index = bucketIndex(us);
    const before = this.counts.get(index);
    if (before === undefined) this.sorted = undefined;
    this.counts.set(index, (before ?? 0) + count);
    this.total += count;
    this.sumUs += us * count;
    if (us < this.minUs) this.minUs = us;
    if (us > this.maxUs) this.maxUs = us;
  }

  /** Adds another histogram (or its serialised form) into this one. */
  add(other: Histogram | HistogramData): void {
    const data = other instanceof Histogram ? other.toJSON() : other;
    if (data.n === 0) return;
    for (let i = 0; i + 1 < data.b.length; i += 2) {
      const index = data.b[i] ?? 0;
      const before = this.counts.get(index);
      if (before === undefined) this.sorted = undefined;
      this.counts.set(index, (before ?? 0) + (data.b[i + 1] ?? 0));
    }
    this.total += data.n;
    this.sumUs += data.sum;
    if (data.min < this.minUs) this.minUs = data.min;
    if (data.max > this.maxUs) this.maxUs = data.max;
  }

  get count(): number {
    return this.total;
  }

  /** Smallest recorded value, ms (0 when empty). */
  get min(): number {
    return this.total === 0 ? 0 : this.minUs / 1000;
  }

  /** Largest recorded value, ms (exact). */
  get max(): number {
    return this.maxUs / 1000;
  }

  /** Arithmetic mean, ms (exact). */
  get mean(): number {
    return this.total === 0 ? 0 : this.sumUs / this.total / 1000;
  }

  /**
   * The value (ms) at or below which `p` percent of the recorded values lie: the highest value of the
   * bucket holding that rank (HDR's convention), never above the exact maximum. NaN when empty.
   */
  percentile(p: number): number {
    if (this.total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil((Math.min(100, Math.max(0, p)) / 100) * this.total));
    const keys = this.sorted ??= [...this.counts.keys()].sort((a, b) => a - b);
    let seen = 0;
    for (const index of keys) {
      seen += this.counts.get(index) ?? 0;
      if (seen >= rank) {
        const high = bucketBounds(index)[1];
        return Math.max(this.minUs, Math.min(high, this.maxUs)) / 1000;
      }
    }
    return this.maxUs / 1000;
  }

  /** How many recorded values are at least `ms` (bucket resolution). */
  countAtOrAbove(ms: number): number {
    const threshold = bucketIndex(Math.max(0, Math.round(ms * 1000)));
    let n = 0;
    for (const [index, count] of this.counts) if (index >= threshold) n += count;
    return n;
  }

  toJSON(): HistogramData {
    const b: number[] = [];
    for (const [index, count] of this.counts) b.push(index, count);
    return { n: this.total, min: this.total === 0 ? 0 : this.minUs, max: this.maxUs, sum: this.sumUs, b };
  }
}

/** The percentiles every report shows, in ms. */
export interface LatencySummary {
  readonly min: number;
  readonly avg: number;
  readonly p50: number;
  readonly p90: number;
  readonly p95: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

export function summarise(h: Histogram): LatencySummary {
  const r = (v: number): number => (Number.isNaN(v) ? v : Math.round(v * 1000) / 1000);
  return {
    min: r(h.min), avg: r(h.mean), p50: r(h.percentile(50)), p90: r(h.percentile(90)), p95: r(h.percentile(95)),
    p99: r(h.percentile(99)), p999: r(h.percentile(99.9)), max: r(h.max),
  };
}
