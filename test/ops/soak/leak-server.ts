/**
 * A tiny API stand-in for the soak tests, run as its own process so its memory is its own. Every request
 * allocates about LEAK_KB kilobytes on the JS heap; with LEAK=1 it keeps them (a planted leak), otherwise
 * they become garbage. BASELINE_MB is a working set held from the start, as the API holds about 24 MB
 * (its catalogue, compiled schemas, key store view): growth is judged in percent of the retained heap,
 * and a bare 4 MB process would turn the first few hundred KB V8 promotes into "10 %". /metrics reports
 * the real process memory (process.memoryUsage, v8 heap spaces, full collections) under the API's metric names.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';

const leak = process.env.LEAK === '1';
const kb = Number(process.env.LEAK_KB ?? '64');
const instance = process.env.INSTANCE ?? (leak ? 'leaky' : 'clean');
const retained: number[][][] = [];
const baseline: number[][] = [];
for (let mb = 0; mb < Number(process.env.BASELINE_MB ?? '0'); mb++) baseline.push(Array.from({ length: 131_072 }, (_, i) => i + 0.5));
let majorGcs = 0;
let requests = 0;

const observer = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if ((entry as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majorGcs += 1;
  }
});
observer.observe({ entryTypes: ['gc'] });

function metrics(): string {
  const mem = process.memoryUsage();
  const label = `instance="${instance}"`;
  const lines = [
    '# HELP kgents_process_resident_memory_bytes Resident memory size in bytes.',
    '# TYPE kgents_process_resident_memory_bytes gauge',
    `kgents_process_resident_memory_bytes{${label}} ${mem.rss}`,
    `kgents_nodejs_heap_size_used_bytes{${label}} ${mem.heapUsed}`,
    ...getHeapSpaceStatistics().map((s) => `kgents_nodejs_heap_space_size_used_bytes{space="${s.space_name.replace(/_space$/, '')}",${label}} ${s.space_used_size}`),
    `kgents_nodejs_gc_duration_seconds_count{${label},kind="major"} ${majorGcs}`,
    `kgents_circuit_state{${label}} 0`,
    `kgents_circuit_transitions_total{to="open",${label}} 0`,
    `kgents_fallback_queue_depth{${label}} 0`,
    `kgents_http_requests_total{route="/work",method="GET",status="200",${label}} ${requests}`,
  ];
  return `${lines.join('\n')}\n`;
}

const server = createServer((req, res) => {
  if (req.url === '/metrics') {
    res.setHeader('content-type', 'text/plain; version=0.0.4');
    res.end(metrics());
    return;
  }
  requests += 1;
  // About `kb` KiB on the JS heap, as many small objects (as request handling makes; one big array would
  // go to the large-object space, which survives scavenges and waits for a full collection).
  const block = Array.from({ length: Math.round((kb * 1024) / 160) }, (_, i) => [i, i + 0.5, i + 1.5, i + 2.5, i + 3.5, i + 4.5, i + 5.5, i + 6.5, i + 7.5, i + 8.5, i + 9.5, i + 10.5, i + 11.5, i + 12.5, i + 13.5, requests + 0.5]);
  if (leak) retained.push(block);
  res.setHeader('content-type', 'application/json');
  res.end(`{"ok":true,"n":${block.length},"held":${baseline.length}}`);
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT ?? '0'), '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
