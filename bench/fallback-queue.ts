/**
 * Micro-benchmark of the on-disk fallback queue (src/adapters/disk): group-commit append
 * throughput at several concurrencies, fsyncs per second, and drain throughput.
 *
 *   npx tsc -p . && node dist/bench/fallback-queue.js [--dir PATH] [--duration MS] [--runs N] [--quick]
 *
 * Each figure is the median of `runs` runs, each on a fresh queue directory under `dir` (default
 * the OS temp dir; point it at the disk DATA_DIR lives on to measure that disk).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { FallbackQueue } from '../src/adapters/disk/fallback-queue.js';

export interface FallbackQueueBenchOptions {
  /** Parent directory of the temporary queue directories. Default: os.tmpdir(). */
  readonly dir?: string;
  /** Concurrent appenders per append run. Default [1, 64, 512]. */
  readonly concurrencies?: readonly number[];
  /** Length of one append run. Default 2000 ms. */
  readonly durationMs?: number;
  /** Runs per figure (the median is reported). Default 3. */
  readonly runs?: number;
  /** Payload size. Default 400 bytes (a usage CloudEvent). */
  readonly recordBytes?: number;
  /** Records queued before each drain run. Default 100 000. */
  readonly drainRecords?: number;
  /** readBatch size of the drain run (one commit per batch). Default 1000. */
  readonly drainBatch?: number;
  /** Queue lingerMs. Default the queue's default (0). */
  readonly lingerMs?: number;
  /** Progress lines; default none. */
  readonly log?: (line: string) => void;
}

export interface AppendFigures {
  readonly concurrency: number;
  readonly appendsPerSec: number;
  readonly fsyncsPerSec: number;
  readonly recordsPerFsync: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  /** appends/s of each run. */
  readonly runs: number[];
}

export interface DrainFigures {
  readonly records: number;
  readonly batch: number;
  /** readBatch only (no commit): the read path alone. */
  readonly readEventsPerSec: number;
  /** readBatch + publish-nothing + commit (cursor fsync) per batch. */
  readonly eventsPerSec: number;
  readonly mibPerSec: number;
  readonly runs: number[];
}

export interface FallbackQueueBenchResults {
  readonly node: string;
  readonly dir: string;
  readonly recordBytes: number;
  readonly durationMs: number;
  readonly runsPerFigure: number;
  readonly append: AppendFigures[];
  readonly drain: DrainFigures;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

const round = (n: number, digits = 0): number => Number(n.toFixed(digits));

function payload(bytes: number): Buffer {
  const head = '{"specversion":"1.0","type":"kgents.usage.v1","source":"bench","id":"';
  return Buffer.from(`${head}${'0'.repeat(Math.max(0, bytes - head.length - 2))}"}`);
}

async function withQueue<T>(parent: string, lingerMs: number | undefined, fn: (q: FallbackQueue) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(parent, 'kgents-fq-bench-'));
  try {
    const queue = await FallbackQueue.open(join(dir, 'q'), lingerMs === undefined ? {} : { lingerMs });
    try {
      return await fn(queue);
    } finally {
      await queue.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface AppendRun { appendsPerSec: number; fsyncsPerSec: number; latencies: number[] }

async function appendRun(q: FallbackQueue, concurrency: number, durationMs: number, record: Buffer): Promise<AppendRun> {
  const latencies: number[] = [];
  const fsyncs0 = q.stats().fsyncs;
  const start = performance.now();
  const deadline = start + durationMs;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) {
      const t = performance.now();
      await q.append(record);
      latencies.push(performance.now() - t);
    }
  }));
  const seconds = (performance.now() - start) / 1000;
  return { appendsPerSec: latencies.length / seconds, fsyncsPerSec: (q.stats().fsyncs - fsyncs0) / seconds, latencies };
}

async function drainRun(q: FallbackQueue, records: number, batch: number, record: Buffer): Promise<{ read: number; drain: number }> {
  let queued = 0;
  await Promise.all(Array.from({ length: 512 }, async () => {
    while (queued < records) {
      queued++;
      await q.append(record);
    }
  }));
  const readStart = performance.now();
  let seen = 0;
  for (let after = q.committed; ;) {
    const { records: got, end } = await q.readBatch(batch, { after });
    if (got.length === 0) break;
    seen += got.length;
    after = end;
  }
  const readPerSec = seen / ((performance.now() - readStart) / 1000);
  const start = performance.now();
  let read = 0;
  for (;;) {
    const { records: got, end } = await q.readBatch(batch);
    if (got.length === 0) break;
    read += got.length;
    await q.commit(end);
  }
  if (read !== q.stats().appends) throw new Error(`drained ${read} of ${q.stats().appends}`);
  return { read: readPerSec, drain: read / ((performance.now() - start) / 1000) };
}

/** Runs the benchmark; prints nothing unless `log` is given. */
export async function benchFallbackQueue(opts: FallbackQueueBenchOptions = {}): Promise<FallbackQueueBenchResults> {
  const dir = opts.dir ?? tmpdir();
  const concurrencies = opts.concurrencies ?? [1, 64, 512];
  const durationMs = opts.durationMs ?? 2000;
  const runs = opts.runs ?? 3;
  const recordBytes = opts.recordBytes ?? 400;
  const drainRecords = opts.drainRecords ?? 100_000;
  const drainBatch = opts.drainBatch ?? 1000;
  const log = opts.log ?? ((): void => undefined);
  const record = payload(recordBytes);

  const append: AppendFigures[] = [];
  for (const concurrency of concurrencies) {
    const results: AppendRun[] = [];
    for (let r = 0; r < runs; r++) {
      const result = await withQueue(dir, opts.lingerMs, (q) => appendRun(q, concurrency, durationMs, record));
      log(`append c=${concurrency} run ${r + 1}/${runs}: ${round(result.appendsPerSec)} appends/s, ${round(result.fsyncsPerSec)} fsyncs/s`);
      results.push(result);
    }
    const lat = Float64Array.from(results.flatMap((x) => x.latencies)).sort();
    const appendsPerSec = median(results.map((x) => x.appendsPerSec));
    const fsyncsPerSec = median(results.map((x) => x.fsyncsPerSec));
    append.push({
      concurrency,
      appendsPerSec: round(appendsPerSec),
      fsyncsPerSec: round(fsyncsPerSec),
      recordsPerFsync: round(median(results.map((x) => x.appendsPerSec / Math.max(1e-9, x.fsyncsPerSec))), 1),
      latencyP50Ms: round(percentile(lat, 0.5), 2),
      latencyP99Ms: round(percentile(lat, 0.99), 2),
      runs: results.map((x) => round(x.appendsPerSec)),
    });
  }

  const drainRuns: number[] = [];
  const readRuns: number[] = [];
  for (let r = 0; r < runs; r++) {
    const result = await withQueue(dir, opts.lingerMs, (q) => drainRun(q, drainRecords, drainBatch, record));
    log(`drain run ${r + 1}/${runs}: ${round(result.drain)} events/s (read only ${round(result.read)}/s)`);
    drainRuns.push(round(result.drain));
    readRuns.push(round(result.read));
  }
  const drainPerSec = median(drainRuns);
  return {
    node: process.version, dir, recordBytes: record.length, durationMs, runsPerFigure: runs, append,
    drain: {
      records: drainRecords, batch: drainBatch, readEventsPerSec: round(median(readRuns)), eventsPerSec: round(drainPerSec),
      mibPerSec: round((drainPerSec * (record.length + 32)) / 2 ** 20, 1), runs: drainRuns,
    },
  };
}

export function formatFallbackQueueResults(r: FallbackQueueBenchResults): string {
  const lines = [
    `fallback queue (${r.recordBytes}-byte records, node ${r.node}, dir ${r.dir}; median of ${r.runsPerFigure} runs of ${r.durationMs} ms)`,
    'appenders   appends/s   fsyncs/s   records/fsync   p50 ms   p99 ms',
    ...r.append.map((a) => `${String(a.concurrency).padStart(9)}${String(a.appendsPerSec).padStart(12)}${String(a.fsyncsPerSec).padStart(11)}`
      + `${String(a.recordsPerFsync).padStart(16)}${String(a.latencyP50Ms).padStart(9)}${String(a.latencyP99Ms).padStart(9)}`),
    `drain: ${r.drain.eventsPerSec} events/s (${r.drain.mibPerSec} MiB/s; ${r.drain.records} records, readBatch(${r.drain.batch}) + commit per batch); `
      + `read only: ${r.drain.readEventsPerSec} events/s`,
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dir: { type: 'string' }, duration: { type: 'string' }, runs: { type: 'string' }, quick: { type: 'boolean' },
      linger: { type: 'string' }, json: { type: 'boolean' },
    },
  });
  const quick = values.quick === true;
  const results = await benchFallbackQueue({
    ...(values.dir !== undefined && { dir: values.dir }),
    durationMs: Number(values.duration ?? (quick ? 500 : 2000)),
    runs: Number(values.runs ?? (quick ? 1 : 3)),
    ...(quick && { drainRecords: 20_000 }),
    ...(values.linger !== undefined && { lingerMs: Number(values.linger) }),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(values.json === true ? `${JSON.stringify(results, null, 2)}\n` : `${formatFallbackQueueResults(results)}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
