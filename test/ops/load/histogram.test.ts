import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { bucketBounds, bucketIndex, Histogram } from '../../../src/ops/load/histogram.js';

/** A deterministic pseudo-random sequence (mulberry32). */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function exactPercentile(sorted: readonly number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] ?? Number.NaN;
}

describe('latency histogram', () => {
  test('every value falls inside its bucket, and buckets are at most 1/1024 of their value wide', () => {
    const rnd = random(1);
    for (let i = 0; i < 20_000; i++) {
      const v = Math.floor(2 ** (rnd() * 40));
      const [lo, hi] = bucketBounds(bucketIndex(v));
      assert.ok(lo <= v && v <= hi, `${v} not in [${lo}, ${hi}]`);
      assert.ok(hi - lo <= Math.max(0, lo / 1024), `bucket [${lo}, ${hi}] too wide`);
    }
    for (const v of [0, 1, 2047, 2048, 2049, 4095, 4096, 2 ** 31, 2 ** 32 + 5]) {
      const [lo, hi] = bucketBounds(bucketIndex(v));
      assert.ok(lo <= v && v <= hi, `${v}`);
    }
  });

  test('percentiles agree with the exact ones within 0.1 % on a long-tailed sample', () => {
    const rnd = random(7);
    const h = new Histogram();
    const values: number[] = [];
    for (let i = 0; i < 100_000; i++) {
      // log-normal-ish latencies from 0.1 ms to a few seconds, in whole microseconds
      const ms = Math.round(Math.exp(rnd() * 3 + rnd() * 3 + rnd() * 3 - 2) * 1000) / 1000;
      values.push(ms);
      h.record(ms);
    }
    values.sort((a, b) => a - b);
    for (const p of [50, 90, 95, 99, 99.9]) {
      const exact = exactPercentile(values, p);
      const got = h.percentile(p);
      assert.ok(Math.abs(got - exact) <= exact * 0.001 + 0.001, `p${p}: ${got} vs exact ${exact}`);
    }
    assert.equal(h.max, values[values.length - 1]);
    assert.equal(h.min, values[0]);
    assert.equal(h.count, 100_000);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    assert.ok(Math.abs(h.mean - mean) < 1e-6 * mean + 1e-6);
  });

  test('merging histograms (or their serialised form) equals recording everything in one', () => {
    const rnd = random(3);
    const a = new Histogram();
    const b = new Histogram();
    const all = new Histogram();
    for (let i = 0; i < 5000; i++) {
      const v = rnd() * 500;
      (i % 3 === 0 ? a : b).record(v);
      all.record(v);
    }
    const merged = Histogram.from(JSON.parse(JSON.stringify(a.toJSON())) as ReturnType<Histogram['toJSON']>);
    merged.add(b);
    assert.deepEqual([merged.count, merged.min, merged.max, merged.mean], [all.count, all.min, all.max, all.mean]);
    for (const p of [1, 50, 99, 100]) assert.equal(merged.percentile(p), all.percentile(p));
  });

  test('an empty histogram has no percentiles', () => {
    const h = new Histogram();
    assert.ok(Number.isNaN(h.percentile(95)));
    assert.equal(h.count, 0);
  });
});
