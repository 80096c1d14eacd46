import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * What a stack records about a process it started, so that a later `status` or `down` (another
 * process, maybe much later) can tell it is still the same process and not a stranger that got the
 * pid after a reboot or pid wrap-around.
 */
export interface ProcessRecord {
  readonly pid: number;
  /** Start time in clock ticks since boot (/proc/<pid>/stat field 22); null where /proc is absent. */
  readonly start_ticks: number | null;
  /** A string the process's command line (/proc/<pid>/cmdline, NULs as spaces) must contain. */
  readonly match: string;
}

interface ProcStat {
  readonly state: string;
  readonly startTicks: number;
}

function procStat(pid: number): ProcStat | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses: the fields after it follow the last ')'.
    const rest = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    const state = rest[0];
    const start = Number(rest[19]);
    if (state === undefined || !Number.isFinite(start)) return undefined;
    return { state, startTicks: start };
  } catch {
    return undefined;
  }
}

/** The command line of a process, arguments joined by spaces (from /proc, else `ps`); undefined when unknown. */
export function procCmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((s) => s !== '').join(' ');
  } catch {
    if (hasProcfs()) return undefined;
  }
  try {
    const line = execFileSync('ps', ['-p', String(pid), '-o', 'command='], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 2000 }).trim();
    return line === '' ? undefined : line;
  } catch {
    return undefined;
  }
}

/** Whether /proc is available (Linux): without it identities cannot be checked. */
export function hasProcfs(): boolean {
  return procStat(process.pid) !== undefined;
}

/** Whether a pid names a live (not zombie) process, whoever owns it. */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = procStat(pid);
  return stat === undefined ? !hasProcfs() : stat.state !== 'Z' && stat.state !== 'X';
}

export function recordProcess(pid: number, match: string): ProcessRecord {
  return { pid, start_ticks: procStat(pid)?.startTicks ?? null, match };
}

export type Liveness = 'alive' | 'paused' | 'gone' | 'other';

/**
 * Whether the recorded process still runs: `alive` (or `paused` under SIGSTOP), `gone`, or `other`
 * when the pid now belongs to a different process (never signal that one).
 */
export function liveness(record: ProcessRecord): Liveness {
  if (!pidAlive(record.pid)) return 'gone';
  const stat = procStat(record.pid);
  if (stat !== undefined && record.start_ticks !== null && stat.startTicks !== record.start_ticks) return 'other';
  // Without /proc (macOS) only the command line (from ps) tells the process apart; unknown counts as other.
  const cmdline = procCmdline(record.pid);
  if (cmdline === undefined ? stat === undefined : !cmdline.includes(record.match)) return 'other';
  return stat?.state === 'T' || stat?.state === 't' ? 'paused' : 'alive';
}

/** Sends a signal to a recorded process only if it is still that process. */
export function signalRecorded(record: ProcessRecord, signal: NodeJS.Signals): boolean {
  const l = liveness(record);
  if (l !== 'alive' && l !== 'paused') return false;
  try {
    process.kill(record.pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Waits until a recorded process has gone (or been replaced by another); true if it went in time. */
export async function waitGone(record: ProcessRecord, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const l = liveness(record);
    if (l === 'gone' || l === 'other') return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

/**
 * SIGTERM, and SIGKILL after `graceMs` (a paused process is continued first so it can act on the
 * SIGTERM). Only touches the process if it is still the recorded one. Resolves true if it is gone.
 */
export async function terminateRecorded(record: ProcessRecord, graceMs: number): Promise<boolean> {
  if (!signalRecorded(record, 'SIGTERM')) return liveness(record) !== 'alive';
  signalRecorded(record, 'SIGCONT');
  if (await waitGone(record, graceMs)) return true;
  signalRecorded(record, 'SIGKILL');
  return waitGone(record, 5000);
}

export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly at: string;
}

export interface StackProcessOptions {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  /** Output (stdout and stderr) is appended to this file by the child itself. */
  readonly logFile: string;
  /** The substring of the command line that identifies this process (see ProcessRecord.match). */
  readonly match: string;
  readonly cwd?: string;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A supervisor that crashes (an exception, not kill -9) takes its children with it; after a
  // kill -9 of the supervisor, `kgents stack down` finds them through stack.json.
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

/**
 * A child process of the stack. Unlike the test servers' ManagedProcess it writes its output
 * straight to its log file (no pipe through the supervisor, so it survives the supervisor and a
 * busy API does not cost the supervisor CPU) and runs in its own process group, so that a Ctrl-C in
 * the supervisor's terminal reaches only the supervisor, which then stops everything in order.
 */
export class StackProcess {
  private child: ChildProcess | undefined;
  private exitInfo: ProcessExit | undefined;
  /** Resolves when the process has exited (never, if it is never started). */
  readonly exited: Promise<ProcessExit>;
  private resolveExit: (exit: ProcessExit) => void = () => undefined;
  record: ProcessRecord | undefined;
  startedAt = 0;

  constructor(readonly options: StackProcessOptions) {
    this.exited = new Promise((resolve) => {
      this.resolveExit = resolve;
    });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.exitInfo === undefined;
  }

  get exit(): ProcessExit | undefined {
    return this.exitInfo;
  }

  start(): void {
    if (this.child) throw new Error(`${this.options.name} was already started`);
    installExitHook();
    const fd = openSync(this.options.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(this.options.command, [...this.options.args], {
        stdio: ['ignore', fd, fd], env: this.options.env, detached: true, ...(this.options.cwd !== undefined && { cwd: this.options.cwd }),
      });
    } finally {
      closeSync(fd);
    }
    this.child = child;
    this.startedAt = Date.now();
    live.add(child);
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (this.exitInfo) return;
      live.delete(child);
      this.exitInfo = { code, signal, at: new Date().toISOString() };
      this.resolveExit(this.exitInfo);
    };
    child.once('error', () => finish(null, null));
    child.once('exit', (code, signal) => finish(code, signal));
    if (child.pid !== undefined) this.record = recordProcess(child.pid, this.options.match);
  }

  /** Sends a signal; false if the process is not running. */
  signal(signal: NodeJS.Signals): boolean {
    if (!this.child || !this.running) return false;
    try {
      return this.child.kill(signal);
    } catch {
      return false;
    }
  }

  /** SIGTERM (and SIGCONT, in case it is paused), then SIGKILL after the grace period. */
  async stop(graceMs: number): Promise<ProcessExit | undefined> {
    if (!this.child) return undefined;
    if (this.running) {
      this.signal('SIGTERM');
      this.signal('SIGCONT');
      const timer = new AbortController();
      const done = await Promise.race([
        this.exited.then(() => true),
        sleep(graceMs, false, { signal: timer.signal }).catch(() => false),
      ]);
      timer.abort();
      if (!done) this.signal('SIGKILL');
    }
    return this.exited;
  }
}
