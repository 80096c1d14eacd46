import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuSeconds } from './cpu.js';
import type { LoadJob, LoadSummary } from './load-types.js';
import { round } from './stats.js';

/**
 * wrk as the load generator (`npm run bench -- --generator wrk`): C, one thread, no garbage
 * collector. autocannon's process reached 90 % of its core before bare Fastify or /health reached
 * theirs (86 %), so those targets were measured at the generator's ceiling; under wrk (52-84 % of its
 * core) the servers run at 95-98 % (docs/benchmarks.md, ninth session).
 *
 * The request comes from the job through the environment (a Lua script reads it), and the script's
 * `done()` prints one JSON line: wrk's totals, errors and latency percentiles (µs, every response).
 * No `response()` callback: it would make wrk hand every response to Lua and cost it throughput.
 */
const RESULT_TAG = 'KGENTS_WRK';

const SCRIPT = `-- kgents bench (bench/lib/wrk.ts): the job's request, and one JSON line of results
local function env(name) return os.getenv(name) or "" end
wrk.method = env("KGENTS_WRK_METHOD")
local body = env("KGENTS_WRK_BODY")
if body ~= "" then wrk.body = body end
for line in string.gmatch(env("KGENTS_WRK_HEADERS"), "[^\\n]+") do
  local name, value = string.match(line, "^([^:]+): (.*)$")
  if name then wrk.headers[name] = value end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '${RESULT_TAG} {"requests":%.0f,"duration_us":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f,' ..
    '"p50":%.0f,"p90":%.0f,"p97_5":%.0f,"p99":%.0f,"p99_9":%.0f,"max":%.0f,"mean":%.3f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(97.5), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
`;

const FIELDS = ['requests', 'duration_us', 'connect', 'read', 'write', 'status', 'timeout', 'p50', 'p90', 'p97_5', 'p99', 'p99_9', 'max', 'mean'] as const;
/** What the script's done() prints: counts, wrk's duration and latencies in µs. */
type WrkFigures = Readonly<Record<(typeof FIELDS)[number], number>>;

let scriptDir: string | undefined;

function scriptPath(): string {
  if (scriptDir === undefined) {
    scriptDir = mkdtempSync(join(tmpdir(), 'kgents-bench-wrk-'));
    writeFileSync(join(scriptDir, 'job.lua'), SCRIPT);
    process.once('exit', () => {
      if (scriptDir !== undefined) rmSync(scriptDir, { recursive: true, force: true });
    });
  }
  return join(scriptDir, 'job.lua');
}

/** The job's headers as the script reads them: one `name: value` per line. */
export function headerLines(headers: Readonly<Record<string, string>>): string {
  return Object.entries(headers).map(([name, value]) => {
    if (/[\r\n:]/.test(name) || /[\r\n]/.test(value)) throw new Error(`wrk: header ${JSON.stringify(name)} cannot be passed on a line`);
    return `${name}: ${value}`;
  }).join('\n');
}

/** The figures the script's done() printed, or an error naming what was missing. */
export function parseWrkOutput(stdout: string): WrkFigures {
  const line = stdout.split('\n').find((l) => l.startsWith(`${RESULT_TAG} `));
  if (line === undefined) throw new Error(`wrk printed no result line:\n${stdout.slice(-2000)}`);
  const parsed: unknown = JSON.parse(line.slice(RESULT_TAG.length + 1));
  if (typeof parsed !== 'object' || parsed === null) throw new Error(`wrk result is not an object: ${line}`);
  const record = parsed as Record<string, unknown>;
  for (const field of FIELDS) {
    if (typeof record[field] !== 'number' || !Number.isFinite(record[field])) throw new Error(`wrk result lacks ${field}: ${line}`);
  }
  return parsed as WrkFigures;
}

/** wrk's figures in the shape autocannon's worker reports (latencies in ms). */
export function wrkSummary(f: WrkFigures, generatorCpuPct: number): LoadSummary {
  const ms = (us: number): number => round(us / 1000, 3);
  const durationS = f.duration_us / 1e6;
  return {
    generator: 'wrk',
    rps: durationS > 0 ? round(f.requests / durationS, 1) : 0,
    requests: f.requests,
    // wrk records every completed response in its latency histogram.
    samples: f.requests,
    durationS: round(durationS, 3),
    latency: { p50: ms(f.p50), p90: ms(f.p90), p97_5: ms(f.p97_5), p99: ms(f.p99), p99_9: ms(f.p99_9), max: ms(f.max), mean: ms(f.mean) },
    // wrk counts answers with a status of 400 or more, no finer; the targets answer 200 or fail their check.
    status2xx: f.requests - f.status,
    non2xx: f.status,
    statusCounts: f.status > 0 ? { '>=400': f.status } : {},
    errors: f.connect + f.read + f.write,
    timeouts: f.timeout,
    generatorCpuPct,
  };
}

/** Whether a wrk binary is on PATH (Debian package wrk). */
export function wrkInstalled(): boolean {
  // wrk has no version flag that exits 0: any answer but "not found" will do.
  const probe = spawnSync('wrk', ['--version'], { stdio: 'ignore' });
  return probe.error === undefined;
}

/** Runs one job with wrk (one thread) in its own process, pinned to `cpus` when given. */
export function runWrkLoad(job: LoadJob, live: Set<ChildProcess>, cpus?: string): Promise<LoadSummary> {
  const args = ['-t1', `-c${job.connections}`, `-d${job.durationS}s`, `--timeout`, `${job.timeoutS}s`, '-s', scriptPath(), job.url];
  const env = {
    ...process.env,
    KGENTS_WRK_METHOD: job.method,
    KGENTS_WRK_BODY: job.body ?? '',
    KGENTS_WRK_HEADERS: headerLines(job.headers),
  };
  return new Promise((resolve, reject) => {
    const child = cpus === undefined
      ? spawn('wrk', args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('taskset', ['-c', cpus, 'wrk', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    const started = process.hrtime.bigint();
    // wrk reports no CPU of its own: /proc while it runs (taskset execs wrk, so the pid is wrk's).
    let lastCpuS = 0;
    let lastAtS = 0;
    const sampler = setInterval(() => {
      const cpu = cpuSeconds(child.pid);
      if (cpu === undefined) return;
      lastCpuS = cpu;
      lastAtS = Number(process.hrtime.bigint() - started) / 1e9;
    }, 200);
    // wrk stops itself after durationS; this only catches a hung generator.
    const watchdog = setTimeout(() => child.kill('SIGKILL'), (job.durationS + 60) * 1000);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    child.once('error', (err) => {
      clearInterval(sampler);
      clearTimeout(watchdog);
      live.delete(child);
      reject(new Error(`wrk could not start (apt-get install -y wrk): ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearInterval(sampler);
      clearTimeout(watchdog);
      live.delete(child);
      if (code !== 0) {
        reject(new Error(`wrk exited (code ${code}, signal ${signal}): ${stderr.trim() || stdout.trim()}`));
        return;
      }
      try {
        resolve(wrkSummary(parseWrkOutput(stdout), lastAtS > 0 ? round((lastCpuS / lastAtS) * 100, 1) : 0));
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  });
}
