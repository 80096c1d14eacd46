import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A crashed test run or CLI must not leave servers behind on the machine. This matters most for
  // detached children: nothing else (no terminal signal, no hang-up) reaches them once we are gone.
  // Only synchronous work runs here, so SIGKILL is the one thing that can still be done.
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

export interface ManagedProcessOptions {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly logFile?: string;
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Run the child in its own session and process group, so a Ctrl-C (SIGINT to the terminal's
   * foreground group) or a terminal hang-up reaches only the parent, which can then stop the child
   * when it no longer needs it. The parent must then stop it on every way out: stop() or, as a last
   * resort, the SIGKILL of the exit hook (which does not run when the parent itself dies of an
   * unhandled signal or SIGKILL). Off by default: a test's servers may as well die with a Ctrl-C.
   */
  readonly detached?: boolean;
}

/** A child server process with a log file, explicit stop/kill, and exit tracking. */
export class ManagedProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> = Promise.resolve(null);
  private tail = '';

  constructor(readonly options: ManagedProcessOptions) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last few KiB of output, for error messages when a server fails to start. */
  get recentOutput(): string {
    return this.tail;
  }

  start(): void {
    if (this.running) throw new Error(`${this.options.name} is already running`);
    installExitHook();
    const child = spawn(this.options.command, [...this.options.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: this.options.env ?? process.env,
      detached: this.options.detached ?? false,
    });
    this.child = child;
    live.add(child);
    const log = this.options.logFile ? createWriteStream(this.options.logFile, { flags: 'a' }) : undefined;
    // Output can still arrive after 'exit' (the pipes drain later), so this child's log closes on 'close'.
    const onData = (chunk: Buffer): void => {
      if (log?.writableEnded === false) log.write(chunk);
      this.tail = (this.tail + chunk.toString('utf8')).slice(-4096);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => {
      child.once('error', (err) => {
        this.tail += `\nspawn error: ${err.message}`;
        live.delete(child);
        resolve(null);
      });
      child.once('exit', (code) => {
        live.delete(child);
        resolve(code);
      });
      child.once('close', () => log?.end());
    });
  }

  /** SIGTERM, then SIGKILL after the grace period. */
  async stop(graceMs = 5000): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    child.kill('SIGTERM');
    const timer = new AbortController();
    const done = await Promise.race([
      this.exited.then(() => true),
      sleep(graceMs, false, { signal: timer.signal }).catch(() => false),
    ]);
    timer.abort();
    if (!done) {
      child.kill('SIGKILL');
      await this.exited;
    }
  }

  /** kill -9: the process gets no chance to clean up (crash simulation). */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGSTOP/SIGCONT: the process keeps its sockets open but stops answering (a hung server). */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  waitForExit(): Promise<number | null> {
    return this.exited;
  }
}

/** Polls `check` until it returns true or the deadline passes; the error names what was awaited. */
export async function waitUntil(what: string, check: () => Promise<boolean>, deadlineMs: number, proc?: ManagedProcess): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    if (proc && !proc.running) {
      throw new Error(`${what}: process exited before it was ready. Output:\n${proc.recentOutput}`);
    }
    try {
      if (await check()) return;
    } catch {
      // not ready yet
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: not ready within ${deadlineMs} ms${proc ? `. Output:\n${proc.recentOutput}` : ''}`);
    }
    await sleep(50);
  }
}
