import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
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
