/**
 * Where a server's CPU time goes, kernel and native code included: `node dist/bench/perf.js
 * [options]` (after `npm run build`; needs Linux `perf`). Starts the bench stack with the servers
 * under `--perf-basic-prof` (V8's generated code named in /tmp/perf-<pid>.map), and for each
 * target warms up, then samples the server with `perf record` (cpu-clock, call graphs) while a
 * fixed load runs, and prints CPU µs per request of its main thread by area (kernel, V8's
 * JSON.stringify, garbage collector, builtins, our code by directory, packages, ...), the top
 * symbols, and what native entry points cost with what they call (socket writes, JSON, GC).
 *
 * Why: V8's CPU profiler (`npm run bench -- --profile`) sees JavaScript and attributes native time
 * only to the function that called it; it does not see the kernel, nor what a builtin like
 * JSON.stringify costs inside. perf samples everything the thread runs.
 *
 * Limits: self time of V8's builtins and runtime is counted in those areas, not in the JavaScript
 * that called them. Names of generated code come from Node's perf map, which only appends: where
 * V8 moved or freed code and reused its address, a sample can carry a stale name (seen: a module
 * parser's name on a few samples of a warm server), so read the JavaScript rows as approximate.
 *
 * Options:
 *   --targets LIST     comma-separated (default bare,invoke)
 *   --warmup S         seconds of load before sampling (default 5)
 *   --seconds S        seconds of load sampled (default 8)
 *   --connections N    concurrent connections (default 64)
 *   --top N            symbols listed per target (default 25)
 *   --keep             keep the temporary directory (perf data, perf maps, server logs)
 */
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import { gitRevision } from './lib/machine.js';
import { byArea, eventCount, inclusiveSymbols, selfSymbols, threadShares, type PerfSymbol } from './lib/perf-report.js';
import { loadOnce, serverPid } from './lib/load-once.js';
import { ROOT, SERVER_NAMES, startStack, type Stack } from './lib/stack.js';
import { checkTarget, positiveOption, selectTargets, type Target } from './lib/targets.js';

const execFileP = promisify(execFile);

const { values } = parseArgs({ options: {
  targets: { type: 'string', default: 'bare,invoke' },
  warmup: { type: 'string', default: '5' },
  seconds: { type: 'string', default: '8' },
  connections: { type: 'string', default: '64' },
  top: { type: 'string', default: '25' },
  keep: { type: 'boolean', default: false },
} });

const warmupS = positiveOption('perf', 'warmup', values.warmup);
const seconds = positiveOption('perf', 'seconds', values.seconds);
const connections = positiveOption('perf', 'connections', values.connections);
const topN = positiveOption('perf', 'top', values.top);
const selected = selectTargets('perf', values.targets);

/** Native entry points whose cost with everything they call is worth a line of its own. */
const ENTRIES: readonly (readonly [string, string])[] = [
  ['node::StreamBase::Writev', 'socket writev (HTTP responses)'],
  ['node::StreamBase::WriteString<(node::encoding)1>', 'socket write of a string (ioredis commands)'],
  ['node::StreamBase::WriteBuffer', 'socket write of a buffer (NATS)'],
  ['v8::internal::JsonStringify', 'JSON.stringify'],
  ['v8::internal::Builtin_JsonParse', 'JSON.parse'],
  ['v8::internal::Heap::CollectGarbage', 'garbage collection on the main thread'],
  ['epoll_pwait', 'waiting for I/O (epoll_pwait)'],
  ['[k] do_syscall_64', 'all system calls'],
];



/** Samples `pid` (all its threads, with call graphs) until stopped; resolves when perf has written its file. */
async function record(pid: number, file: string): Promise<() => Promise<void>> {
  const child = spawn('perf', ['record', '-e', 'cpu-clock', '-F', '1999', '-g', '-p', String(pid), '-o', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  // perf attaches within a few ms; wait a little so the load's first requests are sampled too.
  await sleep(300);
  if (child.exitCode !== null) throw new Error(`perf record exited at once: ${stderr.trim()}`);
  return async () => {
    child.kill('SIGINT');
    const code = await exited;
    if (code !== 0 && !existsSync(file)) throw new Error(`perf record failed (${code}): ${stderr.trim()}`);
  };
}

async function report(file: string, args: readonly string[]): Promise<string> {
  const { stdout } = await execFileP('perf', ['report', '-i', file, '--stdio', ...args], { maxBuffer: 256 * 1024 * 1024, timeout: 300_000 });
  return stdout;
}

interface Measured {
  readonly target: string;
  readonly requests: number;
  /** CPU µs per request: the main thread, and the process' other threads (V8's GC helpers, libuv's pool). */
  readonly mainUs: number;
  readonly otherUs: number;
  readonly areas: Map<string, number>;
  readonly symbols: readonly PerfSymbol[];
  readonly entries: Map<string, number>;
}

function us(n: number): string {
  return n.toFixed(2);
}

async function measure(target: Target, stack: Stack, dir: string): Promise<Measured> {
  await checkTarget(stack, target);
  const pid = serverPid(stack, target.server);
  await loadOnce(target, stack, connections, { durationS: warmupS });
  const file = join(dir, `${target.name}.perf.data`);
  const stop = await record(pid, file);
  let requests: number;
  try {
    requests = await loadOnce(target, stack, connections, { durationS: seconds });
  } finally {
    await stop();
  }
  const main = ['--tid', String(pid)];
  const [threads, self, children] = await Promise.all([
    report(file, ['--no-children', '--sort', 'pid', '-g', 'none']),
    report(file, [...main, '--no-children', '--sort', 'dso,sym', '-g', 'none', '--percent-limit', '0']),
    report(file, [...main, '--children', '--sort', 'sym', '-g', 'none', '--percent-limit', '0.05']),
  ]);
  // Percentages are of every sample of the process, filtered to the main thread or not.
  const totalNs = eventCount(threads);
  const mainNs = ((threadShares(threads).get(pid) ?? 0) / 100) * totalNs;
  const toUs = (percent: number): number => (percent / 100) * totalNs / 1000 / requests;
  const symbols = selfSymbols(self).map((s) => ({ ...s, percent: toUs(s.percent) }));
  const areas = new Map([...byArea(selfSymbols(self))].map(([area, percent]) => [area, toUs(percent)]));
  const inclusive = inclusiveSymbols(children);
  const entries = new Map(ENTRIES.map(([symbol]) => [symbol, toUs(inclusive.get(symbol) ?? 0)]));
  return { target: target.name, requests, mainUs: mainNs / 1000 / requests, otherUs: (totalNs - mainNs) / 1000 / requests, areas, symbols, entries };
}

function printTarget(m: Measured, base: Measured | undefined): void {
  const head = base ? `\n${m.target} against ${base.target}: CPU µs per request of the main thread by area` : `\n${m.target}: CPU µs per request of the main thread by area`;
  process.stdout.write(`${head}\n`);
  const names = new Set([...m.areas.keys(), ...(base ? base.areas.keys() : [])]);
  const rows = [...names].map((area) => ({ area, own: m.areas.get(area) ?? 0, theirs: base?.areas.get(area) ?? 0 }));
  rows.sort((a, b) => (b.own - b.theirs) - (a.own - a.theirs));
  process.stdout.write(base ? `${'µs/req'.padStart(8)} ${base.target.padStart(8)} ${'extra'.padStart(8)}  area\n` : `${'µs/req'.padStart(8)}  area\n`);
  for (const r of rows) {
    if (r.own < 0.05 && r.theirs < 0.05) continue;
    process.stdout.write(base ? `${us(r.own).padStart(8)} ${us(r.theirs).padStart(8)} ${us(r.own - r.theirs).padStart(8)}  ${r.area}\n` : `${us(r.own).padStart(8)}  ${r.area}\n`);
  }
  process.stdout.write(`\n${m.target}: native entry points with everything they call (µs per request, main thread)\n`);
  for (const [symbol, label] of ENTRIES) {
    const own = m.entries.get(symbol) ?? 0;
    process.stdout.write(`${us(own).padStart(8)}${base ? ` ${us(base.entries.get(symbol) ?? 0).padStart(8)}` : ''}  ${label}\n`);
  }
  process.stdout.write(`\n${m.target}: top symbols by self time (µs per request, main thread)\n`);
  for (const s of [...m.symbols].sort((a, b) => b.percent - a.percent).slice(0, topN)) {
    process.stdout.write(`${us(s.percent).padStart(8)}  ${s.symbol.slice(0, 120)}\n`);
  }
}

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'kgents-bench-perf-'));
  let stack: Stack | undefined;
  const onSignal = (): void => {
    void (stack?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const perfMaps: string[] = [];
  let failed = false;
  try {
    await execFileP('perf', ['--version']).catch(() => {
      throw new Error('Linux perf is not installed (Debian package linux-perf)');
    });
    process.stdout.write(`kgents perf  ${new Date().toISOString()}  Node ${process.version}, code ${gitRevision(ROOT)}\n`);
    process.stdout.write(`${connections} connections, ${warmupS} s warm-up, ${seconds} s sampled per target (perf record -e cpu-clock -F 1999 -g); starting the stack in ${dir} ...\n`);
    // --perf-basic-prof also turns on V8's log: sent to /dev/null, not to isolate-*.log files in the working directory.
    stack = await startStack({ dir, serverNodeFlags: ['--perf-basic-prof', '--no-logfile-per-isolate', '--logfile=/dev/null'] });
    for (const server of SERVER_NAMES) {
      const pid = stack.pids[server];
      if (pid !== undefined) perfMaps.push(`/tmp/perf-${pid}.map`);
    }
    const results: Measured[] = [];
    for (const target of selected) {
      const m = await measure(target, stack, dir);
      results.push(m);
      process.stdout.write(`${target.name.padEnd(15)} ${m.requests} requests sampled: main thread ${us(m.mainUs)} µs/req, other threads ${us(m.otherUs)} µs/req\n`);
    }
    const bare = results.find((r) => r.target === 'bare');
    for (const m of results) printTarget(m, m === bare ? undefined : bare);
    process.stdout.write('\nSampling adds its own cost (perf and the perf map); compare targets within one run.\n');
  } catch (err) {
    failed = true;
    process.stderr.write(`perf: ${err instanceof Error ? err.message : String(err)}\n`);
  } finally {
    await stack?.stop();
    for (const map of perfMaps) {
      if ((values.keep || failed) && existsSync(map)) copyFileSync(map, join(dir, basename(map)));
      rmSync(map, { force: true });
    }
    if (values.keep || failed) process.stdout.write(`kept ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  }
  return failed ? 1 : 0;
}

process.exitCode = await main();
