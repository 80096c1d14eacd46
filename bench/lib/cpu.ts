import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/**
 * User and system CPU seconds a process (or, with `thread`, one of its threads) has used so far
 * (Linux /proc); undefined elsewhere or if it is gone.
 */
function cpuTimes(pid: number, thread?: number): { userS: number; systemS: number } | undefined {
  try {
    const stat = readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, 'utf8');
    // Fields after the ")" that closes the command name: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
    return { userS: utime / clockTicks(), systemS: stime / clockTicks() };
  } catch {
    return undefined;
  }
}

/** User+system CPU seconds a process has used so far (Linux /proc); undefined elsewhere or if it is gone. */
export function cpuSeconds(pid: number | undefined): number | undefined {
  const t = pid === undefined ? undefined : cpuTimes(pid);
  return t === undefined ? undefined : t.userS + t.systemS;
}

/**
 * Samples several processes' CPU over an interval; `stop()` gives % of one core per name, plus
 * `machine`: the whole machine's busy time (all cores, every process), in % of one core.
 */
export function startCpuWatch(pids: Readonly<Record<string, number | undefined>>): { stop(): Record<string, number> } {
  const started = process.hrtime.bigint();
  const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
  const machineBefore = machineBusySeconds();
  return {
    stop() {
      const wallS = Number(process.hrtime.bigint() - started) / 1e9;
      const out: Record<string, number> = {};
      const machineAfter = machineBusySeconds();
      if (machineBefore !== undefined && machineAfter !== undefined && wallS > 0) {
        out.machine = Math.round(((machineAfter - machineBefore) / wallS) * 1000) / 10;
      }
      for (const [name, pid] of Object.entries(pids)) {
        const a = before[name];
        const b = cpuSeconds(pid);
        if (a !== undefined && b !== undefined && wallS > 0) out[name] = Math.round(((b - a) / wallS) * 1000) / 10;
      }
      return out;
    },
  };
}

/** Busy CPU seconds of the whole machine so far, summed over cores (Linux /proc/stat). */
export function machineBusySeconds(): number | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const [label, ...rest] = line.trim().split(/\s+/);
    if (label !== 'cpu') return undefined;
    // user nice system idle iowait irq softirq steal ...: everything except idle and iowait is busy.
    const v = rest.map(Number);
    const busy = (v[0] ?? 0) + (v[1] ?? 0) + (v[2] ?? 0) + (v[5] ?? 0) + (v[6] ?? 0) + (v[7] ?? 0);
    return busy / clockTicks();
  } catch {
    return undefined;
  }
}

/**
 * Waits until the machine has been nearly idle for one second (busy below `thresholdPct` of one
 * core; the bench's own servers are idle between runs, so this is other people's work), or until
 * `maxWaitS` has passed. Returns the seconds waited, or undefined when it never got quiet.
 */
export async function waitForQuiet(maxWaitS: number, thresholdPct: number, sleep: (ms: number) => Promise<unknown>): Promise<number | undefined> {
  const started = Date.now();
  for (;;) {
    const a = machineBusySeconds();
    const t0 = process.hrtime.bigint();
    await sleep(1000);
    const b = machineBusySeconds();
    if (a === undefined || b === undefined) return 0;
    const busyPct = ((b - a) / (Number(process.hrtime.bigint() - t0) / 1e9)) * 100;
    const waited = (Date.now() - started) / 1000;
    if (busyPct < thresholdPct) return waited;
    if (waited >= maxWaitS) return undefined;
  }
}

/** What the kernel counts for one process: CPU split into user and kernel time, and syscalls. */
export interface ProcessCounters {
  readonly userS: number;
  readonly systemS: number;
  /** read-like syscalls (read, recv, readv...) and write-like ones (write, send, writev...), from /proc/<pid>/io. */
  readonly reads: number;
  readonly writes: number;
  /**
   * Context switches of the main (JavaScript) thread, from /proc/<pid>/status: voluntary (it waited
   * for I/O: epoll) and involuntary (the scheduler took the CPU from it, e.g. to run a process it had
   * just woken by writing to its socket).
   */
  readonly voluntarySwitches: number;
  readonly involuntarySwitches: number;
  /** CPU seconds (user + system) of the main thread alone; the rest is V8's GC helpers and libuv's pool. */
  readonly mainThreadS: number;
}

/** The counters of a process so far (Linux /proc); undefined elsewhere or if it is gone. */
export function processCounters(pid: number | undefined): ProcessCounters | undefined {
  const times = pid === undefined ? undefined : cpuTimes(pid);
  if (pid === undefined || !times) return undefined;
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    const count = (name: string): number => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? Number.NaN);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const switches = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)$`, 'm').exec(status)?.[1] ?? Number.NaN);
    const main = cpuTimes(pid, pid);
    const counters = {
      ...times,
      mainThreadS: main === undefined ? Number.NaN : main.userS + main.systemS,
      reads: count('syscr'),
      writes: count('syscw'),
      voluntarySwitches: switches('voluntary_ctxt_switches'),
      involuntarySwitches: switches('nonvoluntary_ctxt_switches'),
    };
    return Object.values(counters).every(Number.isFinite) ? counters : undefined;
  } catch {
    return undefined;
  }
}

/** Counts from now until stop(): the difference, or undefined when /proc cannot tell. */
export function startCounterWatch(pid: number | undefined): { stop(): ProcessCounters | undefined } {
  const before = processCounters(pid);
  return {
    stop() {
      const after = processCounters(pid);
      if (!before || !after) return undefined;
      return {
        userS: after.userS - before.userS,
        systemS: after.systemS - before.systemS,
        reads: after.reads - before.reads,
        writes: after.writes - before.writes,
        voluntarySwitches: after.voluntarySwitches - before.voluntarySwitches,
        involuntarySwitches: after.involuntarySwitches - before.involuntarySwitches,
        mainThreadS: after.mainThreadS - before.mainThreadS,
      };
    },
  };
}
