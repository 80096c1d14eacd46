/**
 * `npm run bench`: saturation throughput and latency of the real service (kgents serve with real
 * nats-server and redis-server) against a bare Fastify hello-world measured in the same run.
 * See docs/benchmarks.md for what is measured and how to read it.
 *
 * Options (flags, or BENCH_* environment variables):
 *   --duration S      seconds per measured run (BENCH_DURATION, default 10)
 *   --connections L   concurrent connections, no pipelining; a comma-separated list measures every target
 *                     at each level, in the same interleaved rounds, and judges the goals on each target's
 *                     saturation throughput: its best level against bare Fastify's best level
 *                     (BENCH_CONNECTIONS, default 64,256; --quick, --profile: 64)
 *   --rounds R        rounds, interleaved across targets (BENCH_ROUNDS, default 3)
 *   --warmup S        warm-up seconds per target before round 1 (default 3)
 *   --targets LIST    comma-separated subset of: bare,bare-post,health,health-saas,resolve,invoke,invoke-routed,invoke-nometer,io-floor
 *                     (invoke-routed: the same call through Fastify's router, to show what invoke's fast
 *                     path saves; invoke-nometer: the same API process setup without a usage meter, to
 *                     show what durable metering costs; io-floor: a plain node:http server doing only
 *                     the round trips a metered call waits for, the ceiling of any invoke on the machine)
 *   --drain-events N  fallback queue rows: append N usage events, then drain them into JetStream through
 *                     the meter's drainer (BENCH_DRAIN_EVENTS, default 20000; 0 skips the queue rows)
 *   --quick           smoke run: 2 s runs, 1 round, 1 s warm-up
 *   --generator G     autocannon | wrk (BENCH_GENERATOR; default wrk when installed, else autocannon). The
 *                     generator shares the machine: autocannon fills its core before bare Fastify or
 *                     /health fill theirs, so their req/s were the generator's ceiling; wrk is lighter
 *   --profile         run the servers under --cpu-prof and print where their CPU time goes per request
 *                     (default targets: bare,invoke; profile one API target at a time)
 *   --out FILE        results JSON (default bench/results/latest.json; profile runs: bench/results/profile.json)
 *   --retries N       repeat a run up to N times when other processes took > 15% of a core during it,
 *                     keeping the quietest attempt (BENCH_RETRIES, default 2; --quick, --profile: 0)
 *   --quiet-wait S    before each run, wait up to S s for a second in which the machine is idle
 *                     (BENCH_QUIET_WAIT, default 30; --quick: 0)
 *   --keep            keep the temporary directory (server logs, data, profiles)
 * Environment only: BENCH_NODE_FLAGS (space-separated Node/V8 flags for every server: API, unmetered
 *   API and bare Fastify; default none), for A/B runs of a flag.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { formatAreaComparison, formatProfileSummary, summariseCpuProfile, type ProfileSummary } from './lib/cpuprofile.js';
import { startCounterWatch, startCpuWatch, waitForQuiet, type ProcessCounters } from './lib/cpu.js';
import { benchDrain, type DrainFigures } from './lib/drain.js';
import { killLoadGenerators, runLoad } from './lib/load.js';
import { SERVER_CPU, otherCpus, pin, pinUnavailable } from './lib/pin.js';
import { benchFallbackQueue, formatFallbackQueueResults, type FallbackQueueBenchResults } from './fallback-queue.js';
import { LOAD_GENERATORS, isLoadGenerator, type LoadGenerator, type LoadJob, type LoadSummary } from './lib/load-types.js';
import { wrkInstalled } from './lib/wrk.js';
import { formatMachine, gitRevision, machineInfo } from './lib/machine.js';
import { ROOT, SERVER_NAMES, cpuProfiles, startStack, type ServerName, type Stack } from './lib/stack.js';
import { TARGETS, TARGET_NAMES, checkTarget, type Target, type TargetName } from './lib/targets.js';
import { parseConnectionLevels, saturationFigures } from './lib/saturation.js';
import { median, round as roundTo } from './lib/stats.js';

interface Options {
  durationS: number;
  /** Concurrency levels, ascending; every target is measured at each. */
  connections: number[];
  rounds: number;
  warmupS: number;
  targets: TargetName[];
  generator: LoadGenerator;
  profile: boolean;
  pin: boolean;
  out: string;
  keep: boolean;
  quick: boolean;
  retries: number;
  quietWaitS: number;
  drainEvents: number;
}

function positiveInt(raw: string | undefined, name: string, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return n;
}

function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      duration: { type: 'string' },
      connections: { type: 'string' },
      rounds: { type: 'string' },
      warmup: { type: 'string' },
      targets: { type: 'string' },
      generator: { type: 'string' },
      quick: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      pin: { type: 'boolean', default: false },
      out: { type: 'string' },
      keep: { type: 'boolean', default: false },
      retries: { type: 'string' },
      'quiet-wait': { type: 'string' },
      'drain-events': { type: 'string' },
    },
  });
  const env = process.env;
  const quick = values.quick === true;
  const profile = values.profile === true;
  const targetList = values.targets ?? env.BENCH_TARGETS ?? (profile ? 'bare,invoke' : 'bare,bare-post,health,health-saas,resolve,invoke,invoke-routed,invoke-nometer,io-floor');
  const drainRaw = values['drain-events'] ?? env.BENCH_DRAIN_EVENTS;
  const targets = targetList.split(',').map((t) => t.trim()).filter(Boolean);
  for (const t of targets) {
    if (!(TARGET_NAMES as readonly string[]).includes(t)) throw new Error(`unknown target "${t}"; choose from ${TARGET_NAMES.join(', ')}`);
  }
  const warmup = values.warmup ?? env.BENCH_WARMUP;
  const chosen = values.generator ?? env.BENCH_GENERATOR;
  const generator = chosen ?? (wrkInstalled() ? 'wrk' : 'autocannon');
  if (!isLoadGenerator(generator)) throw new Error(`unknown generator "${generator}"; choose from ${LOAD_GENERATORS.join(', ')}`);
  if (chosen === 'wrk' && !wrkInstalled()) throw new Error('--generator wrk: wrk is not installed (apt-get install -y wrk)');
  return {
    durationS: positiveInt(values.duration ?? env.BENCH_DURATION, 'duration', quick ? 2 : 10),
    connections: parseConnectionLevels(values.connections ?? env.BENCH_CONNECTIONS ?? (quick || profile ? '64' : '64,256')),
    rounds: positiveInt(values.rounds ?? env.BENCH_ROUNDS, 'rounds', quick ? 1 : 3),
    warmupS: warmup === '0' ? 0 : positiveInt(warmup, 'warmup', quick ? 1 : 3),
    targets: TARGET_NAMES.filter((t) => targets.includes(t)),
    generator,
    profile,
    pin: values.pin === true || env.BENCH_PIN === '1',
    out: values.out ?? join(ROOT, 'bench', 'results', profile ? 'profile.json' : 'latest.json'),
    keep: values.keep === true,
    quick,
    quietWaitS: (values['quiet-wait'] ?? env.BENCH_QUIET_WAIT) === '0' ? 0 : positiveInt(values['quiet-wait'] ?? env.BENCH_QUIET_WAIT, 'quiet-wait', quick ? 0 : 30),
    retries: (values.retries ?? env.BENCH_RETRIES) === '0' ? 0 : positiveInt(values.retries ?? env.BENCH_RETRIES, 'retries', quick || profile ? 0 : 2),
    drainEvents: drainRaw === '0' || profile ? 0 : positiveInt(drainRaw, 'drain-events', quick ? 5000 : 20_000),
  };
}

interface RunRecord {
  readonly round: number;
  readonly target: TargetName;
  readonly connections: number;
  readonly summary: LoadSummary;
  /** % of one core used during the run, per process. */
  readonly cpu: Record<string, number>;
  /** 0 for the first try; more when earlier tries were repeated for noise. */
  readonly attempt: number;
  /** The server process's user/kernel CPU and syscalls during the run (Linux). */
  readonly serverCounters?: ProcessCounters;
}

interface TargetResult {
  readonly target: TargetName;
  readonly description: string;
  /** The concurrency of these figures: with several levels, the target's saturation level (its best). */
  readonly connections: number;
  readonly rps: number;
  readonly rpsRounds: number[];
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly ratio: number | undefined;
  /** Median of the per-round ratios (each against the bare run of the same round). */
  readonly ratioPerRoundMedian: number | undefined;
  readonly goal: number | undefined;
  readonly goalMet: boolean | undefined;
  readonly serverCpuPct: number | undefined;
  /** Server CPU per request, µs: robust to other load on the machine, unlike req/s. */
  readonly serverUsPerReq: number | undefined;
  /** ... and that figure over bare Fastify's. */
  readonly serverUsPerReqRatio: number | undefined;
  /** Redis + NATS CPU per request, µs. */
  readonly depsUsPerReq: number | undefined;
  /** The server's CPU per request split into user and kernel time (µs), and its syscalls per request. */
  readonly serverPerReq: { readonly userUs: number; readonly kernelUs: number; readonly reads: number; readonly writes: number; readonly voluntarySwitches: number; readonly involuntarySwitches: number; readonly mainThreadUs: number } | undefined;
  readonly generatorCpuPct: number;
  readonly redisCpuPct: number | undefined;
  readonly natsCpuPct: number | undefined;
  /** CPU used by processes outside the bench during the runs: noise on a shared machine. */
  readonly otherCpuPct: number | undefined;
  readonly requests: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
}

/** Busy time of processes outside the bench (other users' tests, builds) above which a run is called noisy. */
const NOISY_OTHER_CPU_PCT = 15;

const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');
// Values that crossed IPC as JSON turn NaN into null.
const fmtMs = (n: number | null | undefined): string => (typeof n === 'number' && Number.isFinite(n) ? n.toFixed(2) : '?');
const fmtPct = (n: number | undefined): string => (n === undefined ? '-' : `${Math.round(n)}%`);

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

function runProblems(label: string, s: LoadSummary): string[] {
  const out: string[] = [];
  if (s.errors > 0 || s.timeouts > 0) out.push(`${label}: ${s.errors} connection errors, ${s.timeouts} timeouts`);
  if (s.non2xx > 0) out.push(`${label}: ${s.non2xx} non-2xx responses (${JSON.stringify(s.statusCounts)})`);
  if (s.requests === 0) out.push(`${label}: no requests completed`);
  else if (s.samples < s.requests) out.push(`${label}: latency recorded for ${s.samples} of ${s.requests} requests`);
  return out;
}

function table(header: readonly string[], rows: readonly (readonly string[])[], rightAligned: ReadonlySet<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells
    .map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
    .join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}


let cleanup: (() => Promise<void>) | undefined;
let interrupted = false;

function onSignal(signal: NodeJS.Signals): void {
  if (interrupted) process.exit(130);
  interrupted = true;
  process.stderr.write(`\n${signal}: stopping the bench and its servers\n`);
  killLoadGenerators();
  const done = cleanup ? cleanup() : Promise.resolve();
  void done.finally(() => process.exit(130));
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  const machine = machineInfo();
  const selected = TARGETS.filter((t) => opts.targets.includes(t.name));
  const revision = gitRevision(ROOT);
  log(`kgents bench  ${formatMachine(machine)}, code ${revision}`);
  log(`${opts.connections.join(', ')} connections, no pipelining, ${opts.durationS} s per run, ${opts.rounds} round(s) interleaved across targets, ${opts.warmupS} s warm-up per target${opts.quick ? ' (--quick)' : ''}`);
  log(`Load generator (${opts.generator}, own process) and servers share this machine's cores: compare ratios within one run, not absolute figures across machines.`);
  if (opts.pin) log(`--pin: the server under test runs alone on CPU ${SERVER_CPU}; the load generator, nats-server and redis-server share CPU(s) ${otherCpus()}.`);
  if (opts.profile) log('PROFILE RUN: the servers run under --cpu-prof, which slows them; these figures are not comparable to a normal run.');

  const dir = mkdtempSync(join(tmpdir(), 'kgents-bench-'));
  const profileDir = opts.profile ? join(dir, 'cpuprofile') : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  let stack: Stack | undefined;
  let keepDir = opts.keep || opts.profile;
  let stopping: Promise<void> | undefined;
  // Called from the finally below and from the signal handler, possibly both: runs once.
  cleanup = () => {
    stopping ??= (async () => {
      killLoadGenerators();
      await stack?.stop();
      if (!keepDir) rmSync(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  const problems: string[] = [];
  const noise: string[] = [];
  /** Requests per target in the measured window, discarded (noisy) attempts included: for CPU profiles. */
  const servedInWindow = new Map<TargetName, number>();
  const records: RunRecord[] = [];
  let drain: DrainFigures | undefined;
  let queueLocal: FallbackQueueBenchResults | undefined;
  const profileSummaries: ProfileSummary[] = [];
  try {
    log(`\nstarting nats-server, redis-server, the API and the bare server in ${dir} ...`);
    if (opts.pin) {
      const why = await pinUnavailable();
      if (why) throw new Error(`--pin ${why}`);
    }
    stack = await startStack({ dir, ...(profileDir && { cpuProfileDir: profileDir }) });
    const s = stack;
    if (opts.pin) {
      for (const server of SERVER_NAMES) await pin(s.pids[server], String(SERVER_CPU));
      for (const pid of [s.pids.nats, s.pids.redis]) await pin(pid, otherCpus());
    }
    const generatorCpus = opts.pin ? otherCpus() : undefined;
    for (const target of selected) await checkTarget(s, target);

    const jobFor = (target: Target, durationS: number, connections: number): LoadJob => ({
      ...target.job(s), connections, durationS, timeoutS: 10,
    });
    const pidsFor = (target: Target): Record<string, number | undefined> => (target.server === 'bare'
      ? { server: s.pids.bare }
      : { server: s.pids[target.server], redis: s.pids.redis, nats: s.pids.nats });

    if (opts.warmupS > 0) {
      for (const target of selected) {
        if (interrupted) throw new Error('interrupted');
        const warm = await runLoad(jobFor(target, opts.warmupS, opts.connections[0] ?? 64), generatorCpus, opts.generator);
        log(`warm-up  ${target.name.padEnd(11)} ${fmtInt(warm.rps).padStart(7)} req/s`);
        problems.push(...runProblems(`warm-up ${target.name}`, warm));
      }
    }

    const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);
    const measuredFromUs = monotonicUs();
    const runs = opts.connections.flatMap((connections) => selected.map((target) => ({ target, connections })));
    for (let round = 1; round <= opts.rounds; round++) {
      // Rotate the order each round so no target always runs first (or right after another).
      const order = runs.map((_, i) => runs[(i + round - 1) % runs.length]).filter((r): r is { target: Target; connections: number } => r !== undefined);
      for (const { target, connections } of order) {
        const label = opts.connections.length > 1 ? `${target.name} @${connections}` : target.name;
        // A run during which other processes (a shared machine's tests and builds) took a real share
        // of the CPU is repeated, up to opts.retries times; the quietest attempt is kept.
        let best: RunRecord | undefined;
        for (let attempt = 0; attempt <= opts.retries; attempt++) {
          if (interrupted) throw new Error('interrupted');
          // Let the neighbours' burst (a test run, a build) pass before measuring.
          await sleep(500);
          if (opts.quietWaitS > 0) {
            const waited = await waitForQuiet(opts.quietWaitS, NOISY_OTHER_CPU_PCT, sleep);
            if (waited === undefined) log(`  (the machine did not go quiet within ${opts.quietWaitS} s; measuring anyway)`);
          }
          const watch = startCpuWatch(pidsFor(target));
          const counters = startCounterWatch(pidsFor(target).server);
          const summary = await runLoad(jobFor(target, opts.durationS, connections), generatorCpus, opts.generator);
          const serverCounters = counters.stop();
          const cpu: Record<string, number> = { ...watch.stop(), generator: summary.generatorCpuPct };
          if (cpu.machine !== undefined) {
            const ours = (cpu.server ?? 0) + (cpu.generator ?? 0) + (cpu.redis ?? 0) + (cpu.nats ?? 0);
            cpu.other = Math.max(0, roundTo(cpu.machine - ours, 1));
          }
          const record: RunRecord = { round, target: target.name, connections, summary, cpu, attempt, ...(serverCounters && { serverCounters }) };
          servedInWindow.set(target.name, (servedInWindow.get(target.name) ?? 0) + summary.requests);
          const noisy = (cpu.other ?? 0) > NOISY_OTHER_CPU_PCT;
          log(`round ${round}/${opts.rounds}  ${label.padEnd(opts.connections.length > 1 ? 20 : 14)} ${fmtInt(summary.rps).padStart(7)} req/s  p50 ${fmtMs(summary.latency.p50)} ms  p99 ${fmtMs(summary.latency.p99)} ms  cpu: server ${fmtPct(cpu.server)}, generator ${fmtPct(cpu.generator)}${cpu.redis !== undefined ? `, redis ${fmtPct(cpu.redis)}, nats ${fmtPct(cpu.nats)}` : ''}, other ${fmtPct(cpu.other)}${noisy ? (attempt < opts.retries ? '  NOISY: again' : '  NOISY') : ''}`);
          problems.push(...runProblems(`round ${round} ${label}`, summary));
          if (target.server !== 'bare') problems.push(...(await s.dependencyCheck()).map((p) => `after round ${round} ${label}: ${p}`));
          if (!best || (cpu.other ?? 0) < (best.cpu.other ?? 0)) best = record;
          if (!noisy) break;
        }
        if (!best) continue;
        records.push(best);
        if ((best.cpu.other ?? 0) > NOISY_OTHER_CPU_PCT) noise.push(`round ${round} ${label}: other processes used ${Math.round(best.cpu.other ?? 0)}% of a core`);
      }
    }

    const measuredToUs = monotonicUs();


    if (opts.drainEvents > 0) {
      await sleep(500);
      if (opts.quietWaitS > 0) await waitForQuiet(opts.quietWaitS, NOISY_OTHER_CPU_PCT, sleep);
      try {
        drain = await benchDrain(s.natsUrl, dir, opts.drainEvents);
        log(`fallback queue end to end: ${fmtInt(drain.events)} events appended at ${fmtInt(drain.appendPerSec)}/s, drained into JetStream at ${fmtInt(drain.drainPerSec)}/s (${drain.drainMs} ms)`);
      } catch (err) {
        problems.push(`fallback queue drain: ${err instanceof Error ? err.message : String(err)}`);
      }
      try {
        queueLocal = await benchFallbackQueue({ dir, durationMs: opts.quick ? 500 : 1000, runs: opts.quick ? 1 : 3, drainRecords: opts.drainEvents });
      } catch (err) {
        problems.push(`fallback queue micro-benchmark: ${err instanceof Error ? err.message : String(err)}`);
      }
    }

    if (profileDir) {
      await s.stopServers();
      for (const server of SERVER_NAMES) {
        const served = selected.filter((t) => t.server === server).map((t) => t.name);
        if (served.length === 0) continue;
        const file = cpuProfiles(join(profileDir, server))[0];
        if (!file) {
          problems.push(`no .cpuprofile written in ${join(profileDir, server)}`);
          continue;
        }
        const requests = served.reduce((n, t) => n + (servedInWindow.get(t) ?? 0), 0);
        profileSummaries.push(summariseCpuProfile(file, {
          fromUs: measuredFromUs, toUs: measuredToUs, requests,
          label: `${SERVER_LABELS[server]} serving ${served.join(', ')}`,
        }));
      }
    }
  } catch (err) {
    if (!interrupted) {
      keepDir = true;
      problems.push(`bench failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  } finally {
    await cleanup();
  }
  // Interrupted: the signal handler exits once the servers are down; write no partial results.
  if (interrupted) return new Promise<number>(() => undefined);

  const byLevel = new Map(opts.connections.map((c) => [c, summarise(selected, records, c)] as const));
  for (const [connections, levelResults] of byLevel) {
    if (levelResults.length === 0) continue;
    log(`\nMedians of ${opts.rounds} round(s), ${opts.durationS} s each, ${connections} connections, no pipelining:\n`);
    printResults(levelResults);
  }
  const multiLevel = opts.connections.length > 1;
  const results = multiLevel ? saturationFigures(byLevel.values(), records.map((r) => ({ target: r.target, connections: r.connections, round: r.round, rps: r.summary.rps })), 'bare') : (byLevel.get(opts.connections[0] ?? 64) ?? []);
  if (multiLevel && results.length > 0) {
    log(`\nSaturation throughput: each target at the concurrency where its median req/s was highest (of ${opts.connections.join(', ')}),\nagainst bare Fastify at its own best; the goals are judged here:\n`);
    const rows = results.map((r) => [
      r.target, String(r.connections), fmtInt(r.rps), fmtMs(r.p50), fmtMs(r.p99), fmtPct(r.serverCpuPct),
      r.ratio === undefined ? '-' : r.ratio.toFixed(2),
      r.ratioPerRoundMedian === undefined ? '-' : r.ratioPerRoundMedian.toFixed(2),
      r.serverUsPerReqRatio === undefined ? '-' : r.serverUsPerReqRatio.toFixed(2),
      goalCell(r),
    ]);
    log(table(['target', 'connections', 'req/s', 'p50 ms', 'p99 ms', 'server cpu', 'x bare', 'x bare per round', 'µs/req x bare', 'goal (req/s x bare)'], rows, new Set([1, 2, 3, 4, 5, 6, 7, 8])));
  }
  if (drain || queueLocal) {
    log('\nFallback queue (usage events while NATS is unreachable):\n');
    if (drain) log(`  end to end: ${fmtInt(drain.events)} events appended by 64 concurrent writers at ${fmtInt(drain.appendPerSec)} events/s (fsynced, group commit); drained into JetStream by the meter's drainer at ${fmtInt(drain.drainPerSec)} events/s, every event acknowledged (${drain.drainMs} ms)`);
    if (queueLocal) log(`\n${formatFallbackQueueResults(queueLocal).split('\n').map((l) => `  ${l}`).join('\n')}`);
  }
  for (const summary of profileSummaries) log(`\n${formatProfileSummary(summary)}`);
  const [bareProfile, apiProfile] = profileSummaries;
  if (apiProfile && bareProfile) log(`\n${formatAreaComparison(apiProfile, bareProfile)}`);
  if (noise.length > 0) {
    log(`\nNOISY: other processes competed for the CPU in ${noise.length} run(s); rerun on a quiet machine for figures to quote:\n${noise.map((n) => `  - ${n}`).join('\n')}`);
  }

  const report = {
    machine,
    revision,
    options: { generator: opts.generator, durationS: opts.durationS, connections: opts.connections, pipelining: 1, rounds: opts.rounds, warmupS: opts.warmupS, retries: opts.retries, quietWaitS: opts.quietWaitS, targets: opts.targets, profile: opts.profile, pin: opts.pin, drainEvents: opts.drainEvents },
    notes: 'Medians across rounds; rps = completed requests / measured duration; latencies from each response\'s own timing. Generator and servers share the machine\'s cores.',
    results,
    ...(opts.connections.length > 1 && { byConnections: Object.fromEntries(byLevel) }),
    runs: records,
    ...(drain && { fallbackQueueDrain: drain }),
    ...(queueLocal && { fallbackQueue: queueLocal }),
    ...(profileSummaries.length > 0 && { profiles: profileSummaries }),
    problems,
    noise,
    ok: problems.length === 0,
  };
  mkdirSync(dirname(opts.out), { recursive: true });
  writeFileSync(opts.out, `${JSON.stringify(report, null, 2)}\n`);
  log(`\nresults written to ${relative(process.cwd(), opts.out)}`);
  if (keepDir) log(`server logs and data kept in ${dir}`);

  if (problems.length > 0) {
    log(`\nBENCH PROBLEMS (figures above are not trustworthy):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    return 1;
  }
  return 0;
}

/** The tables of one concurrency level: throughput and latency, CPU, the server per request, and the A/B lines. */
function printResults(results: readonly TargetResult[]): void {
  const rows = results.map((r) => [
    r.target,
    fmtInt(r.rps),
    r.rpsRounds.map(fmtInt).join(' '),
    fmtMs(r.p50),
    fmtMs(r.p99),
    r.ratio === undefined ? '-' : r.ratio.toFixed(2),
    r.ratioPerRoundMedian === undefined ? '-' : r.ratioPerRoundMedian.toFixed(2),
    goalCell(r),
  ]);
  log(table(['target', 'req/s', 'req/s per round', 'p50 ms', 'p99 ms', 'x bare', 'x bare per round', 'goal (req/s x bare)'], rows, new Set([1, 3, 4, 5, 6])));
  const cpuRows = results.map((r) => [
    r.target,
    fmtPct(r.serverCpuPct),
    r.serverUsPerReq === undefined ? '-' : r.serverUsPerReq.toFixed(0),
    r.serverUsPerReqRatio === undefined ? '-' : r.serverUsPerReqRatio.toFixed(2),
    r.depsUsPerReq === undefined ? '-' : r.depsUsPerReq.toFixed(0),
    fmtPct(r.generatorCpuPct),
    fmtPct(r.otherCpuPct),
  ]);
  log('\nCPU (medians; % of one core while the target was under load):\n');
  log(table(['target', 'server cpu', 'server µs/req', 'µs/req x bare', 'redis+nats µs/req', 'generator cpu', 'other cpu'], cpuRows, new Set([1, 2, 3, 4, 5, 6])));
  const sysRows = results.filter((r) => r.serverPerReq).map((r) => [
    r.target,
    r.serverPerReq?.userUs.toFixed(1) ?? '-',
    r.serverPerReq?.kernelUs.toFixed(1) ?? '-',
    r.serverPerReq?.mainThreadUs.toFixed(1) ?? '-',
    r.serverPerReq === undefined ? '-' : (r.serverPerReq.userUs + r.serverPerReq.kernelUs - r.serverPerReq.mainThreadUs).toFixed(1),
    r.serverPerReq?.reads.toFixed(2) ?? '-',
    r.serverPerReq?.writes.toFixed(2) ?? '-',
    r.serverPerReq?.voluntarySwitches.toFixed(3) ?? '-',
    r.serverPerReq?.involuntarySwitches.toFixed(3) ?? '-',
  ]);
  if (sysRows.length > 0) {
    log('\nThe server process per request (medians; /proc/<pid>/stat, io and status over each run, divided by the requests answered;\nmain thread: the JavaScript thread\'s user + kernel µs; other threads: V8\'s GC helpers and libuv\'s pool;\nswitches: the main thread\'s context switches, waits (voluntary) and preemptions (involuntary)):\n');
    log(table(['target', 'user µs', 'kernel µs', 'main thread µs', 'other threads µs', 'read syscalls', 'write syscalls', 'waits', 'preemptions'], sysRows, new Set([1, 2, 3, 4, 5, 6, 7, 8])));
  }
  log('\nx bare: median req/s over bare Fastify\'s median req/s (same run); x bare per round: the median of each round\'s ratio to\nthat round\'s bare run, which cancels a machine whose speed drifts between rounds. server = the process answering (API or bare);\nµs/req = its CPU time per request, which other load on the machine disturbs less than req/s; other = processes outside the bench.');
  const metered = results.find((r) => r.target === 'invoke');
  const routed = results.find((r) => r.target === 'invoke-routed');
  if (metered && routed) {
    log(`\nFast path: invoke ahead of the router ${fmtInt(metered.rps)} req/s vs through Fastify's router ${fmtInt(routed.rps)} req/s `
      + `(${(metered.rps / routed.rps).toFixed(2)}x; server ${metered.serverUsPerReq ?? '?'} vs ${routed.serverUsPerReq ?? '?'} µs/req).`);
  }
  const unmetered = results.find((r) => r.target === 'invoke-nometer');
  if (metered && unmetered) {
    log(`\nMetering: invoke with durable metering ${fmtInt(metered.rps)} req/s vs without a meter ${fmtInt(unmetered.rps)} req/s `
      + `(${(metered.rps / unmetered.rps).toFixed(2)}x; server ${metered.serverUsPerReq ?? '?'} vs ${unmetered.serverUsPerReq ?? '?'} µs/req, `
      + `redis+nats ${metered.depsUsPerReq ?? '?'} vs ${unmetered.depsUsPerReq ?? '?'} µs/req).`);
  }
  const floor = results.find((r) => r.target === 'io-floor');
  if (floor) {
    // The floor's own ratio bounds what any implementation of the metered call reaches here.
    log(`\nI/O floor: the round trips a metered call must wait for, and nothing else, ${fmtInt(floor.rps)} req/s `
      + `(${floor.ratio === undefined ? '?' : floor.ratio.toFixed(2)}x bare, ${floor.ratioPerRoundMedian === undefined ? '?' : floor.ratioPerRoundMedian.toFixed(2)}x per round; server ${floor.serverUsPerReq ?? '?'} µs/req)`
      + (metered ? `; invoke reaches ${(metered.rps / floor.rps).toFixed(2)}x of it (server ${metered.serverUsPerReq ?? '?'} µs/req).` : '.'));
  }
}

const SERVER_LABELS: Readonly<Record<ServerName, string>> = { 'api': 'the API', 'api-nometer': 'the API without metering', 'bare': 'bare Fastify', 'io-floor': 'the I/O floor server' };

function goalCell(r: TargetResult): string {
  return r.goal === undefined ? (r.target === 'bare' ? 'baseline' : '-') : `${r.goalMet ? 'met' : 'MISSED'} (>= ${r.goal.toFixed(2)})`;
}

/** Server CPU µs per request in one run: % of a core x 10^4 / req/s. */
function serverUsPerReq(r: RunRecord): number | undefined {
  const cpu = r.cpu.server;
  return cpu === undefined || r.summary.rps <= 0 ? undefined : (cpu * 1e4) / r.summary.rps;
}

function depsUsPerReq(r: RunRecord): number | undefined {
  if (r.cpu.redis === undefined && r.cpu.nats === undefined) return undefined;
  return r.summary.rps <= 0 ? undefined : (((r.cpu.redis ?? 0) + (r.cpu.nats ?? 0)) * 1e4) / r.summary.rps;
}

function summarise(selected: readonly Target[], allRecords: readonly RunRecord[], connections: number): TargetResult[] {
  const records = allRecords.filter((r) => r.connections === connections);
  const bareRuns = records.filter((r) => r.target === 'bare');
  const bareRps = bareRuns.length > 0 ? median(bareRuns.map((r) => r.summary.rps)) : undefined;
  const out: TargetResult[] = [];
  for (const target of selected) {
    const runs = records.filter((r) => r.target === target.name);
    if (runs.length === 0) continue;
    const rps = median(runs.map((r) => r.summary.rps));
    const perRound = runs
      .map((r) => {
        const bare = bareRuns.find((b) => b.round === r.round);
        return bare && bare.summary.rps > 0 ? r.summary.rps / bare.summary.rps : undefined;
      })
      .filter((x): x is number => x !== undefined);
    const ratio = bareRps ? rps / bareRps : undefined;
    const cpuMedian = (key: string): number | undefined => {
      const values = runs.map((r) => r.cpu[key]).filter((x): x is number => x !== undefined);
      return values.length > 0 ? roundTo(median(values), 1) : undefined;
    };
    const usPerReq = median(runs.map((r) => serverUsPerReq(r) ?? Number.NaN).filter((x) => !Number.isNaN(x)));
    const bareUsPerReq = median(bareRuns.map((r) => serverUsPerReq(r) ?? Number.NaN).filter((x) => !Number.isNaN(x)));
    const depsUs = median(runs.map((r) => depsUsPerReq(r) ?? Number.NaN).filter((x) => !Number.isNaN(x)));
    const perReq = runs.flatMap((r) => (r.serverCounters && r.summary.requests > 0 ? [{ c: r.serverCounters, n: r.summary.requests }] : []));
    const perReqMedian = (f: (c: ProcessCounters) => number): number => median(perReq.map(({ c, n }) => f(c) / n));
    out.push({
      target: target.name,
      description: target.description,
      connections,
      rps: roundTo(rps, 1),
      rpsRounds: runs.map((r) => r.summary.rps),
      p50: median(runs.map((r) => r.summary.latency.p50)),
      p90: median(runs.map((r) => r.summary.latency.p90)),
      p99: median(runs.map((r) => r.summary.latency.p99)),
      ratio: ratio === undefined ? undefined : roundTo(ratio, 3),
      ratioPerRoundMedian: perRound.length > 0 ? roundTo(median(perRound), 3) : undefined,
      goal: target.goal,
      goalMet: target.goal === undefined || ratio === undefined ? undefined : ratio >= target.goal,
      serverCpuPct: cpuMedian('server'),
      serverUsPerReq: Number.isNaN(usPerReq) ? undefined : roundTo(usPerReq, 1),
      serverUsPerReqRatio: Number.isNaN(usPerReq) || Number.isNaN(bareUsPerReq) ? undefined : roundTo(usPerReq / bareUsPerReq, 3),
      depsUsPerReq: Number.isNaN(depsUs) ? undefined : roundTo(depsUs, 1),
      serverPerReq: perReq.length === 0 ? undefined : {
        userUs: roundTo(perReqMedian((c) => c.userS * 1e6), 1),
        kernelUs: roundTo(perReqMedian((c) => c.systemS * 1e6), 1),
        reads: roundTo(perReqMedian((c) => c.reads), 2),
        writes: roundTo(perReqMedian((c) => c.writes), 2),
        voluntarySwitches: roundTo(perReqMedian((c) => c.voluntarySwitches), 4),
        involuntarySwitches: roundTo(perReqMedian((c) => c.involuntarySwitches), 4),
        mainThreadUs: roundTo(perReqMedian((c) => c.mainThreadS * 1e6), 1),
      },
      generatorCpuPct: cpuMedian('generator') ?? 0,
      redisCpuPct: cpuMedian('redis'),
      natsCpuPct: cpuMedian('nats'),
      otherCpuPct: cpuMedian('other'),
      requests: runs.reduce((n, r) => n + r.summary.requests, 0),
      non2xx: runs.reduce((n, r) => n + r.summary.non2xx, 0),
      errors: runs.reduce((n, r) => n + r.summary.errors, 0),
      timeouts: runs.reduce((n, r) => n + r.summary.timeouts, 0),
    });
  }
  return out;
}

process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

main().then(
  (code) => {
    process.exitCode = code;
  },
  async (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    await cleanup?.();
    process.exitCode = 1;
  },
);
