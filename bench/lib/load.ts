import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { LoadGenerator, LoadJob, LoadSummary, WorkerMessage } from './load-types.js';
import { pin } from './pin.js';
import { runWrkLoad } from './wrk.js';

const WORKER = join(import.meta.dirname, '..', 'load-worker.js');
const live = new Set<ChildProcess>();

/** Kills any load generator still running (SIGINT, errors). */
export function killLoadGenerators(): void {
  for (const child of live) child.kill('SIGKILL');
}

process.on('exit', killLoadGenerators);

/**
 * Runs one job in a fresh child process (autocannon in a Node worker, or wrk) and returns its
 * summary; `cpus`: pin the generator there first (taskset list).
 */
export function runLoad(job: LoadJob, cpus?: string, generator: LoadGenerator = 'autocannon'): Promise<LoadSummary> {
  return generator === 'wrk' ? runWrkLoad(job, live, cpus) : runAutocannon(job, cpus);
}

function runAutocannon(job: LoadJob, cpus?: string): Promise<LoadSummary> {
  return new Promise((resolve, reject) => {
    const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
    live.add(child);
    let settled = false;
    const finish = (err: Error | undefined, summary?: LoadSummary): void => {
      if (settled) return;
      settled = true;
      clearTimeout(watchdog);
      if (err) reject(err);
      else if (summary) resolve(summary);
    };
    // autocannon stops itself after durationS; this only catches a hung generator.
    const watchdog = setTimeout(() => {
      child.kill('SIGKILL');
      finish(new Error(`load generator did not finish within ${job.durationS + 60} s`));
    }, (job.durationS + 60) * 1000);
    child.on('message', (message: WorkerMessage) => {
      if (message.kind === 'result') finish(undefined, message.summary);
      else finish(new Error(message.message));
    });
    child.once('error', (err) => finish(err));
    // 'close' (not 'exit'): it comes after the IPC channel has delivered the last message.
    child.once('close', (code, signal) => {
      live.delete(child);
      finish(new Error(`load generator exited (code ${code}, signal ${signal}) without a result`));
    });
    if (cpus === undefined) child.send(job);
    else pin(child.pid, cpus).then(() => child.send(job), (err: unknown) => {
      child.kill('SIGKILL');
      finish(err instanceof Error ? err : new Error(String(err)));
    });
  });
}
