/**
 * Summarises V8 CPU profiles (node --cpu-prof): top self-time functions, time by area (package,
 * our source directory, GC) and inclusive time of our own functions.
 * Usage: node dist/bench/profile-summary.js FILE.cpuprofile [--top N] [--requests N] [--callers NAME [--depth D]]
 *   --requests N    requests served while profiling: adds CPU µs per request
 *   --callers NAME  instead: the call stacks leading to functions whose name contains NAME
 *   --baseline FILE --baseline-requests N   also: CPU µs/request by area against a baseline profile
 *                   (e.g. bare Fastify's); needs --requests too
 */
import { parseArgs } from 'node:util';
import { callersOf, formatAreaComparison, formatProfileSummary, summariseCpuProfile } from './lib/cpuprofile.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: {
  top: { type: 'string', default: '25' },
  callers: { type: 'string' },
  requests: { type: 'string' },
  depth: { type: 'string', default: '8' },
  baseline: { type: 'string' },
  'baseline-requests': { type: 'string' },
} });
if (positionals.length === 0) {
  process.stderr.write('Usage: node dist/bench/profile-summary.js FILE.cpuprofile [--top N] [--requests N] [--callers NAME [--depth D]]\n');
  process.exit(2);
}
for (const file of positionals) {
  if (values.callers !== undefined) {
    const list = callersOf(file, values.callers, Number(values.depth) || 8, Number(values.top) || 25);
    process.stdout.write(`Stacks ending in "${values.callers}" (% of busy time):\n${list.map((r) => `  ${r.pct.toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(6)} ms  ${r.name}`).join('\n')}\n\n`);
    continue;
  }
  const summary = summariseCpuProfile(file, { limit: Number(values.top) || 25, label: file, ...(values.requests !== undefined && { requests: Number(values.requests) }) });
  process.stdout.write(`${formatProfileSummary(summary)}\n\n`);
  if (values.baseline !== undefined) {
    const baseline = summariseCpuProfile(values.baseline, { label: values.baseline, ...(values['baseline-requests'] !== undefined && { requests: Number(values['baseline-requests']) }) });
    process.stdout.write(`${formatAreaComparison(summary, baseline)}\n\n`);
  }
}
