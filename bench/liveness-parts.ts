/**
 * `node dist/bench/liveness-parts.js [--calls N] [--rounds R]`: what the /health fast path
 * (src/http/fast-health.ts) does per probe besides Node's own HTTP work, in process: the request id,
 * the two clock reads, the metrics observation, the body text and its byte length. Printed: ns per
 * call of each part, median of the rounds, and their sum.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { uniqueId } from '../src/domain/unique-id.js';
import { livenessText } from '../src/http/routes/health.js';
import { ApiMetrics } from '../src/observability/metrics.js';
import { median } from './lib/stats.js';

const { values } = parseArgs({ options: { calls: { type: 'string' }, rounds: { type: 'string' } } });
const calls = Number(values.calls ?? 2_000_000);
const rounds = Number(values.rounds ?? 5);

const metrics = new ApiMetrics('bench', 'bench');
const body = livenessText('0.1.0');
const sample = body();
// Results go here so that the compiler cannot drop the calls.
let sink: unknown;

const parts: readonly [string, (i: number) => void][] = [
  ['uniqueId (request id)', () => { sink = uniqueId(); }],
  ['performance.now', () => { sink = performance.now(); }],
  ['observeRequest', (i) => { metrics.observeRequest('/health', 'GET', 200, 0.00002 + (i & 7) * 1e-6); }],
  ['livenessText', () => { sink = body(); }],
  ['Buffer.byteLength', () => { sink = Buffer.byteLength(sample); }],
];

function nsPerCall(fn: (i: number) => void): number {
  const started = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) fn(i);
  return Number(process.hrtime.bigint() - started) / calls;
}

process.stdout.write(`liveness parts: ${calls} calls per round, ${rounds} rounds, Node ${process.version}\n`);
let total = 0;
for (const [name, fn] of parts) {
  nsPerCall(fn); // warm-up: optimised before it counts
  const ns = median(Array.from({ length: rounds }, () => nsPerCall(fn)));
  // performance.now runs twice per probe.
  total += name === 'performance.now' ? 2 * ns : ns;
  process.stdout.write(`${name.padEnd(24)} ${ns.toFixed(1).padStart(7)} ns\n`);
}
process.stdout.write(`${'per probe (now twice)'.padEnd(24)} ${total.toFixed(1).padStart(7)} ns\n`);
if (sink === Symbol.for('never')) process.stdout.write('\n');
