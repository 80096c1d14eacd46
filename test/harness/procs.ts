import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { pidAlive } from '../../src/adapters/local/process-record.js';

/** What /proc/<pid>/stat says about a process that tests look at. */
export interface ProcInfo {
  readonly pid: number;
  readonly comm: string;
  readonly ppid: number;
  readonly pgid: number;
  /** R, S, D, T, Z (zombie: exited, not yet reaped)... */
  readonly state: string;
}

/** A process's name, state, parent and process group, from /proc; undefined once it is gone. */
export function procInfo(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses: the fields after it follow the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { pid, comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), state: fields[0] ?? '', ppid: Number(fields[1]), pgid: Number(fields[2]) };
  } catch {
    return undefined;
  }
}

/**
 * The program a process runs (/proc/<pid>/exe). Tests find a node child by this, not by comm:
 * Node 24 names its main thread "MainThread", so comm no longer says "node".
 */
export function exeOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

/** The live children of `ppid`. */
export function children(ppid: number): ProcInfo[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map((d) => procInfo(Number(d))).filter((p): p is ProcInfo => p !== undefined && p.ppid === ppid);
}

/** Waits until `pid` no longer exists; false if it still does after the deadline. */
export async function waitPidGone(pid: number, deadlineMs = 5000): Promise<boolean> {
  const deadline = Date.now() + deadlineMs;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}
