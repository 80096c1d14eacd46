/**
 * What full GCs with an empty nextTick queue do to process.nextTick, with and without
 * TICK_SHAPE_KEEP's kept entry (src/runtime/tick-shape.ts): `node dist/bench/tick-shape.js
 * [--gcs N] [--runs N]`. Each case runs in a fresh process (started with --expose-gc): nextTick's
 * cost per call over 15 rounds of 300 x 1000 calls (the queue drained between batches), then N full
 * GCs, each after a 2 ms pause with the queue empty, then the same rounds again. Prints the medians.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { keepTickObjectShape } from '../src/runtime/tick-shape.js';

const ROUNDS = 15;
const BATCHES = 300;
const PER_BATCH = 1000;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1] ?? Number.NaN;
}

async function rounds(): Promise<number[]> {
  let calls = 0;
  const cb = (): void => {
    calls++;
  };
  const out: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const started = process.hrtime.bigint();
    for (let b = 0; b < BATCHES; b++) {
      for (let i = 0; i < PER_BATCH; i++) process.nextTick(cb, i);
      await new Promise((resolve) => setImmediate(resolve));
    }
    out.push(Number(process.hrtime.bigint() - started) / (BATCHES * PER_BATCH));
  }
  if (calls !== ROUNDS * BATCHES * PER_BATCH) throw new Error(`ran ${calls} callbacks`);
  return out;
}

/** The measuring child: prints one JSON line. */
async function child(keep: boolean, gcs: number): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  if (keep && !keepTickObjectShape()) throw new Error('no nextTick entry kept');
  const before = median(await rounds());
  for (let i = 0; i < gcs; i++) {
    await new Promise((resolve) => setTimeout(resolve, 2));
    gc();
  }
  const after = median(await rounds());
  process.stdout.write(`${JSON.stringify({ before, after })}\n`);
}

const { values } = parseArgs({ options: {
  gcs: { type: 'string', default: '10' },
  runs: { type: 'string', default: '3' },
  child: { type: 'string' },
} });
const gcs = Number(values.gcs);
const runs = Number(values.runs);
if (!Number.isInteger(gcs) || gcs < 0 || !Number.isInteger(runs) || runs <= 0) {
  process.stderr.write('usage: node dist/bench/tick-shape.js [--gcs N] [--runs N]\n');
  process.exit(2);
}

if (values.child !== undefined) {
  await child(values.child === 'keep', gcs);
} else {
  process.stdout.write(`process.nextTick, ns per call (median of ${ROUNDS} rounds of ${BATCHES} x ${PER_BATCH}), before and after ${gcs} full GCs with the queue empty; ${runs} fresh process(es) per case, Node ${process.version}\n\n`);
  process.stdout.write(`${'case'.padEnd(28)} ${'before'.padStart(7)} ${'after'.padStart(7)} ${'after/before'.padStart(12)}\n`);
  for (const mode of ['none', 'keep'] as const) {
    for (let run = 0; run < runs; run++) {
      const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--child', mode, '--gcs', String(gcs)], { encoding: 'utf8', timeout: 300_000 });
      if (r.status !== 0) {
        process.stderr.write(`tick-shape: the ${mode} child failed: ${r.stderr}\n`);
        process.exit(1);
      }
      const { before, after } = JSON.parse(r.stdout.trim()) as { before: number; after: number };
      const label = mode === 'keep' ? 'TICK_SHAPE_KEEP=on (kept)' : 'TICK_SHAPE_KEEP=off (Node)';
      process.stdout.write(`${label.padEnd(28)} ${before.toFixed(0).padStart(7)} ${after.toFixed(0).padStart(7)} ${(after / before).toFixed(2).padStart(12)}\n`);
    }
  }
}
