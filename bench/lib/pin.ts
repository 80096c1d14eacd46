import { execFile } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** The CPU the server under test gets to itself with --pin; everything else shares the others. */
export const SERVER_CPU = 0;

/** CPUs other than the server's, as a taskset list ("1" on a 2-core machine, "1-7" on 8). */
export function otherCpus(): string {
  const n = availableParallelism();
  return n <= 2 ? '1' : `1-${n - 1}`;
}

/** Why --pin cannot work here, or undefined when it can. */
export async function pinUnavailable(): Promise<string | undefined> {
  if (availableParallelism() < 2) return 'needs at least 2 CPUs';
  try {
    await execFileP('taskset', ['-p', String(process.pid)]);
    return undefined;
  } catch {
    return 'needs taskset (util-linux)';
  }
}

/** Sets the CPU affinity of every thread of `pid` (taskset -a): new threads inherit it. */
export async function pin(pid: number | undefined, cpus: string): Promise<void> {
  if (pid === undefined) return;
  await execFileP('taskset', ['-a', '-p', '-c', cpus, String(pid)]);
}
