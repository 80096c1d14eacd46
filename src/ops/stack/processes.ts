import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { recordProcess, type ProcessRecord } from '../../adapters/local/process-record.js';

// Process identities live with the local-process adapters (the embedded servers use them too).
export { hasProcfs, liveness, pidAlive, procCmdline, recordProcess, signalRecorded, terminateRecorded, waitGone, type Liveness, type ProcessRecord } from '../../adapters/local/process-record.js';

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
