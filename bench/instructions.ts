/**
 * Instructions per request, counted by valgrind's callgrind: `node dist/bench/instructions.js
 * [options]` (after `npm run build`). Starts the same stack as `npm run bench` with the three servers
 * (API, unmetered API, bare Fastify) under callgrind, instrumentation off; for each target it warms
 * up uncounted, waits for the warm-up's pending collections and compilations, counts 10 s without
 * load (the server's own timers), then the instructions of a fixed number of requests, and subtracts
 * the idle rate over the load's duration.
 *
 * Why: on these shared 2-vCPU machines req/s and CPU µs per request move by up to 2x between runs,
 * so a change of a few percent cannot be seen in them. An instruction count repeats to within a few
 * tenths of a percent, whatever else the machine does. It counts user space only (no kernel time,
 * no waiting), so it follows user CPU per request, not throughput; compare targets by it, and
 * before/after a change.
 *
 * Options:
 *   --targets LIST     comma-separated (default bare,health,invoke,invoke-nometer)
 *   --warmup N         uncounted requests per target first (default 20000: the code is optimised by then)
 *   --requests N       counted requests per target (default 40000)
 *   --connections N    concurrent connections (default 8)
 *   --top N            functions listed per target (default 25)
 *   --keep             keep the temporary directory (callgrind files, perf maps, server logs)
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import { callgrindTotal, functionCosts, parsePerfMap, subtractCosts } from './lib/callgrind.js';
import { gitRevision } from './lib/machine.js';
import { loadOnce, serverPid } from './lib/load-once.js';
import { ROOT, SERVER_NAMES, startStack, type Stack } from './lib/stack.js';
import { checkTarget, positiveOption, selectTargets, type Target } from './lib/targets.js';

const execFileP = promisify(execFile);

const { values } = parseArgs({ options: {
  targets: { type: 'string', default: 'bare,health,invoke,invoke-nometer' },
  warmup: { type: 'string', default: '20000' },
  requests: { type: 'string', default: '40000' },
  connections: { type: 'string', default: '8' },
  top: { type: 'string', default: '25' },
  keep: { type: 'boolean', default: false },
} });

const warmup = positiveOption('instructions', 'warmup', values.warmup);
const requests = positiveOption('instructions', 'requests', values.requests);
const connections = positiveOption('instructions', 'connections', values.connections);
const topN = positiveOption('instructions', 'top', values.top);
const selected = selectTargets('instructions', values.targets);

type Server = Target['server'];
const SETTLE_MS = 10_000;
const IDLE_MS = 10_000;
/** The servers' own HOST: valgrind names the files callgrind_control talks through after USER and HOST. */
const SERVER_HOST = '127.0.0.1';


async function control(pid: number, ...args: string[]): Promise<void> {
  await execFileP('callgrind_control', [...args, String(pid)], { env: { ...process.env, HOST: SERVER_HOST }, timeout: 120_000 });
}

async function waitForFile(file: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`callgrind wrote no ${file} within 120 s`);
    await sleep(100);
  }
}


interface Measured {
  readonly target: string;
  readonly perRequest: number;
  /** What the idle period (timers) cost, per counted request: subtracted from the total. */
  readonly idlePerRequest: number;
  readonly byFunction: Map<string, number>;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function topRows(costs: ReadonlyMap<string, number>, base: ReadonlyMap<string, number> | undefined): string {
  const rows = [...costs.entries()].map(([name, cost]) => ({ name, cost, extra: base ? cost - (base.get(name) ?? 0) : cost }));
  // Functions of the base that the target does not run at all count as negative extra.
  if (base) for (const [name, cost] of base) if (!costs.has(name)) rows.push({ name, cost: 0, extra: -cost });
  rows.sort((a, b) => b.extra - a.extra);
  const head = base ? `${'extra'.padStart(9)} ${'target'.padStart(9)} ${'bare'.padStart(9)}  function` : `${'instr'.padStart(9)}  function`;
  const lines = rows.slice(0, topN).map((r) => base
    ? `${fmt(r.extra).padStart(9)} ${fmt(r.cost).padStart(9)} ${fmt(base.get(r.name) ?? 0).padStart(9)}  ${r.name.slice(0, 110)}`
    : `${fmt(r.cost).padStart(9)}  ${r.name.slice(0, 110)}`);
  return [head, ...lines].join('\n');
}

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'kgents-bench-instr-'));
  const outDir = join(dir, 'callgrind');
  mkdirSync(outDir);
  let stack: Stack | undefined;
  const onSignal = (): void => {
    void (stack?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const perfMaps: string[] = [];
  const serverPids: number[] = [];
  let failed = false;
  try {
    await execFileP('valgrind', ['--version']).catch(() => {
      throw new Error('valgrind is not installed (Debian package valgrind)');
    });
    process.stdout.write(`kgents instructions  ${new Date().toISOString()}  Node ${process.version}, code ${gitRevision(ROOT)}\n`);
    process.stdout.write(`${warmup} uncounted then ${requests} counted requests per target, ${connections} connections; starting the stack under callgrind in ${dir} (slow: a minute or more) ...\n`);
    stack = await startStack({
      dir,
      serverWrapper: (name) => ['valgrind', '--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${join(outDir, `${name}.out`)}`, '--smc-check=all-non-file'],
      // Names V8's generated code (callgrind sees only addresses); Node writes /tmp/perf-<pid>.map.
      serverNodeFlags: ['--perf-basic-prof', '--no-logfile-per-isolate', '--logfile=/dev/null'],
      startTimeoutMs: 300_000,
      // callgrind runs a server tens of times slower: at the default 250 ms a Redis call timed out
      // and the unmetered API counted the memory fallback's instructions instead (2026-12-02).
      apiEnv: { REDIS_COMMAND_TIMEOUT_MS: '10000', PUBLISH_TIMEOUT_MS: '10000' },
    });
    for (const server of SERVER_NAMES) {
      const pid = stack.pids[server];
      if (pid === undefined) continue;
      serverPids.push(pid);
      perfMaps.push(`/tmp/perf-${pid}.map`);
    }
    const dumps = new Map<Server, number>();
    const results: Measured[] = [];
    for (const target of selected) {
      await checkTarget(stack, target);
      const pid = serverPid(stack, target.server);
      await loadOnce(target, stack, connections, { amount: warmup });
      // What the server does without load (its timers), counted first and subtracted at the same rate:
      // after a pause, so that the collections and compilations the warm-up left pending are done.
      await sleep(SETTLE_MS);
      const first = (dumps.get(target.server) ?? 0) + 1;
      dumps.set(target.server, first + 1);
      const idleFile = join(outDir, `${target.server}.out.${first}`);
      const loadFile = join(outDir, `${target.server}.out.${first + 1}`);
      await control(pid, '-i', 'on');
      let started = performance.now();
      await sleep(IDLE_MS);
      await control(pid, '-d');
      const idleMs = performance.now() - started;
      started = performance.now();
      await loadOnce(target, stack, connections, { amount: requests });
      const loadMs = performance.now() - started;
      await control(pid, '-d');
      await control(pid, '-i', 'off');
      // A fallback during the count would measure the fallback's code, not the service's.
      const problems = await stack.dependencyCheck();
      if (problems.length > 0) throw new Error(`${target.name}: the count is not of the real path: ${problems.join('; ')}`);
      await Promise.all([waitForFile(loadFile), waitForFile(idleFile)]);
      const idleScale = loadMs / idleMs;
      const perfMap = parsePerfMap(readFileSync(`/tmp/perf-${pid}.map`, 'utf8'));
      const [loadCosts, idleCosts] = await Promise.all([functionCosts(loadFile, perfMap), functionCosts(idleFile, perfMap)]);
      const scaledIdle = new Map([...idleCosts].map(([name, cost]) => [name, cost * idleScale]));
      const byFunction = new Map([...subtractCosts(loadCosts, scaledIdle)].map(([name, cost]) => [name, cost / requests]));
      const loadTotal = callgrindTotal(readFileSync(loadFile, 'utf8'));
      const idleTotal = callgrindTotal(readFileSync(idleFile, 'utf8')) * idleScale;
      const measured = { target: target.name, perRequest: (loadTotal - idleTotal) / requests, idlePerRequest: idleTotal / requests, byFunction };
      results.push(measured);
      process.stdout.write(`${target.name.padEnd(15)} ${fmt(measured.perRequest).padStart(9)} instructions per request (idle timers: ${fmt(measured.idlePerRequest)} per request at the idle rate, subtracted; ${(loadMs / 1000).toFixed(1)} s under load)\n`);
    }
    const bare = results.find((r) => r.target === 'bare');
    process.stdout.write('\nInstructions per request (callgrind; user space only):\n\n');
    process.stdout.write(`${'target'.padEnd(15)} ${'instr/req'.padStart(9)} ${'x bare'.padStart(7)}\n`);
    for (const r of results) process.stdout.write(`${r.target.padEnd(15)} ${fmt(r.perRequest).padStart(9)} ${(bare ? (r.perRequest / bare.perRequest).toFixed(3) : '-').padStart(7)}\n`);
    for (const r of results) {
      const base = r.target === 'bare' || !bare ? undefined : bare.byFunction;
      process.stdout.write(`\n${r.target}: ${base ? 'instructions per request by function (self), most over bare first' : 'instructions per request by function (self)'}\n${topRows(r.byFunction, base)}\n`);
    }
  } catch (err) {
    failed = true;
    process.stderr.write(`instructions: ${err instanceof Error ? err.message : String(err)}\n`);
  } finally {
    await stack?.stop();
    // Node leaves its perf maps in /tmp: kept with the rest, or removed. A server killed while
    // stopping also leaves valgrind's vgdb pipes there.
    for (const map of perfMaps) {
      if ((values.keep || failed) && existsSync(map)) copyFileSync(map, join(dir, basename(map)));
      rmSync(map, { force: true });
    }
    for (const pid of serverPids) {
      for (const f of readdirSync('/tmp')) if (f.startsWith('vgdb-pipe-') && f.includes(`-${pid}-by-`)) rmSync(join('/tmp', f), { force: true });
    }
    if (values.keep || failed) process.stdout.write(`kept ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  }
  return failed ? 1 : 0;
}

process.exitCode = await main();
