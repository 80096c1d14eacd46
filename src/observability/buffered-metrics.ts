import { Counter, Histogram, type CounterConfiguration, type HistogramConfiguration, type LabelValues } from 'prom-client';

/**
 * Hot-path metrics. A prom-client `inc`/`observe` validates and hashes its label object on every
 * call, and so do the children from `labels()`, which only bind the labels: that was a few µs of
 * every request in the profile. Here a caller takes a *cell* for a fixed label set once (and keeps
 * it), each increment is a plain number addition, and the figures reach Prometheus when scraped.
 * The exposition is exactly prom-client's (same names, labels, default labels and types).
 */

export interface CounterCell {
  inc(value?: number): void;
}

export interface HistogramCell {
  observe(value: number): void;
}

function checkIncrement(value: number): void {
  if (!(value >= 0) || !Number.isFinite(value)) throw new RangeError(`a counter can only grow by a finite number >= 0, got ${value}`);
}

/** A Counter whose cells hold increments until a scrape adds them to the counter. */
export class BufferedCounter<T extends string> extends Counter<T> {
  private readonly cells: { readonly labels: LabelValues<T>; pending: number }[] = [];

  constructor(configuration: CounterConfiguration<T>) {
    super(configuration);
  }

  /** One cell per label set: take it once and keep it (each call makes a new cell). */
  cell(labels: LabelValues<T>): CounterCell {
    const cell = { labels, pending: 0 };
    this.cells.push(cell);
    return {
      inc(value = 1) {
        checkIncrement(value);
        cell.pending += value;
      },
    };
  }

  override async get(): ReturnType<Counter<T>['get']> {
    for (const cell of this.cells) {
      if (cell.pending === 0) continue;
      const n = cell.pending;
      cell.pending = 0;
      this.inc(cell.labels, n);
    }
    return super.get();
  }

  override reset(): void {
    // prom-client's constructor calls reset() before this class's fields exist.
    for (const cell of (this.cells as typeof this.cells | undefined) ?? []) cell.pending = 0;
    super.reset();
  }
}

interface HistogramSeries<T extends string> {
  readonly labels: LabelValues<T>;
  /** Count per bucket (not cumulative); the last one is +Inf. */
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

type HistogramValue = { labels: Record<string, string | number>; value: number; metricName: string };
type HistogramSnapshot = { name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: HistogramValue[] };

/** A Histogram kept in plain arrays by its cells; the exposition is built at scrape time. */
export class BufferedHistogram<T extends string> extends Histogram<T> {
  private readonly series: HistogramSeries<T>[] = [];
  private readonly bounds: readonly number[];
  private readonly metricName: string;
  private readonly metricHelp: string;

  constructor(configuration: HistogramConfiguration<T> & { buckets: number[] }) {
    super(configuration);
    this.bounds = [...configuration.buckets].sort((a, b) => a - b);
    this.metricName = configuration.name;
    this.metricHelp = configuration.help;
  }

  /** One cell per label set: take it once and keep it. Only cells are exported, not observe(). */
  cell(labels: LabelValues<T>): HistogramCell {
    const series: HistogramSeries<T> = { labels, buckets: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 };
    this.series.push(series);
    const bounds = this.bounds;
    return {
      observe(value: number) {
        if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
        let i = 0;
        while (i < bounds.length && value > (bounds[i] ?? Number.POSITIVE_INFINITY)) i++;
        series.buckets[i] = (series.buckets[i] ?? 0) + 1;
        series.sum += value;
        series.count += 1;
      },
    };
  }

  private snapshot(): HistogramSnapshot {
    const values: HistogramValue[] = [];
    for (const s of this.series) {
      if (s.count === 0) continue;
      let cumulative = 0;
      const labels = s.labels as Record<string, string | number>;
      this.bounds.forEach((le, i) => {
        cumulative += s.buckets[i] ?? 0;
        values.push({ labels: { ...labels, le }, value: cumulative, metricName: `${this.metricName}_bucket` });
      });
      values.push({ labels: { ...labels, le: '+Inf' }, value: s.count, metricName: `${this.metricName}_bucket` });
      values.push({ labels, value: s.sum, metricName: `${this.metricName}_sum` });
      values.push({ labels, value: s.count, metricName: `${this.metricName}_count` });
    }
    return { name: this.metricName, help: this.metricHelp, type: 'histogram', aggregator: 'sum', values };
  }

  override get(): ReturnType<Histogram<T>['get']> {
    return Promise.resolve(this.snapshot() as unknown as Awaited<ReturnType<Histogram<T>['get']>>);
  }

  /** What the registry reads for the text exposition (prom-client prefers it over get()). */
  getForPromString(): Promise<HistogramSnapshot> {
    return Promise.resolve(this.snapshot());
  }

  override reset(): void {
    // prom-client's constructor calls reset() before this class's fields exist.
    for (const s of (this.series as typeof this.series | undefined) ?? []) {
      s.buckets.fill(0);
      s.sum = 0;
      s.count = 0;
    }
    super.reset();
  }
}
