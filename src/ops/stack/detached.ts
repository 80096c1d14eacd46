import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { liveness, pidAlive, recordProcess, signalRecorded, terminateRecorded, waitGone, type ProcessRecord } from './processes.js';
import { KGENTS_CLI } from './stack.js';
import { readState, recordedProcesses, writeState, type StackState } from './state.js';

export interface DetachedOptions {
  readonly dir: string;
  readonly apiInstances?: number;
  readonly natsNodes?: number;
  readonly port?: number;
  /** NATS fault proxies between the API instances and NATS (see StackOptions.natsFaults). */
  readonly natsFaults?: boolean;
  /** A stand-in OpenTelemetry collector behind a fault proxy (see StackOptions.otelFaults). */
  readonly otelFaults?: boolean;
  /** How long to wait for the stack to be running (default 180 s). */
  readonly timeoutMs?: number;
  readonly cli?: string;
}

export function supervisorLog(dir: string): string {
  return join(dir, 'logs', 'supervisor.log');
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** The recorded processes of a state file that still run (the same processes, per /proc). */
export function runningProcesses(state: StackState): { readonly id: string; readonly process: ProcessRecord }[] {
  return recordedProcesses(state).filter((p) => {
    const l = liveness(p.process);
    return l === 'alive' || l === 'paused';
  });
}

export class StackStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StackStartError';
  }
}

/**
 * Starts a supervisor (`kgents stack up --foreground`) as a detached background process logging to
 * DIR/logs/supervisor.log, and resolves with the stack's state once it is running. Throws, with the
 * end of the supervisor's log, if it fails or does not get there in time (stopping it then).
 */
export async function startDetached(options: DetachedOptions): Promise<StackState> {
  const dir = resolve(options.dir);
  const existing = readState(dir);
  if (existing) {
    const running = runningProcesses(existing);
    if (running.length > 0) {
      throw new StackStartError(`a stack already runs in ${dir} (${running.map((p) => `${p.id} pid ${p.process.pid}`).join(', ')}); stop it first: kgents stack down --dir ${dir}`);
    }
  }
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const log = supervisorLog(dir);
  const fd = openSync(log, 'a');
  const cli = options.cli ?? KGENTS_CLI;
  const args = [cli, 'stack', 'up', '--foreground', '--dir', dir,
    ...(options.apiInstances !== undefined ? ['--api', String(options.apiInstances)] : []),
    ...(options.natsNodes !== undefined ? ['--nats', String(options.natsNodes)] : []),
    ...(options.port !== undefined ? ['--port', String(options.port)] : []),
    ...(options.natsFaults === true ? ['--nats-faults'] : []),
    ...(options.otelFaults === true ? ['--otel-faults'] : [])];
  let pid: number | undefined;
  try {
    const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', fd, fd], env: process.env });
    child.on('error', () => undefined);
    pid = child.pid;
    child.unref();
  } finally {
    closeSync(fd);
  }
  if (pid === undefined) throw new StackStartError(`could not start the supervisor; see ${log}`);
  const supervisor = recordProcess(pid, 'stack up --foreground');
  const deadline = Date.now() + (options.timeoutMs ?? 180_000);
  for (;;) {
    await sleep(200);
    let state: StackState | undefined;
    try {
      state = readState(dir);
    } catch {
      state = undefined; // being replaced right now
    }
    const ours = state?.supervisor.pid === pid ? state : undefined;
    if (ours?.status === 'running') return ours;
    if (ours?.status === 'failed' || !pidAlive(pid)) {
      if (pidAlive(pid)) await waitGone(supervisor, 60_000);
      throw new StackStartError(`the stack did not start${ours?.error ? `: ${ours.error}` : ''}\n--- ${log} (end) ---\n${tail(log)}`);
    }
    if (Date.now() > deadline) {
      await terminateRecorded(supervisor, 60_000);
      throw new StackStartError(`the stack was not running within ${options.timeoutMs ?? 180_000} ms; stopped it\n--- ${log} (end) ---\n${tail(log)}`);
    }
  }
}

export interface StoppedProcess {
  readonly id: string;
  readonly pid: number;
  /** supervisor: stopped by the supervisor's own shutdown; signal: SIGTERM (then SIGKILL if needed) from `down`. */
  readonly by: 'supervisor' | 'signal';
  readonly gone: boolean;
}

export interface DownResult {
  readonly dir: string;
  /** Nothing was running. */
  readonly already_stopped: boolean;
  readonly stopped: readonly StoppedProcess[];
  /** Recorded pids now used by other processes: left alone. */
  readonly skipped: readonly { readonly id: string; readonly pid: number }[];
}

/**
 * Stops a stack: SIGTERM to its supervisor, which stops the API instances (draining), the balancer,
 * Redis and NATS in order; then any recorded process still alive (the supervisor was killed, or
 * hung) gets SIGTERM and, after a grace period, SIGKILL. Only processes recorded in stack.json, and
 * only while /proc shows they are still those processes. Idempotent.
 */
export async function stopDetached(dirOption: string, options: { readonly supervisorGraceMs?: number; readonly partGraceMs?: number } = {}): Promise<DownResult> {
  const dir = resolve(dirOption);
  const before = readState(dir);
  if (!before) return { dir, already_stopped: true, stopped: [], skipped: [] };
  const recorded = recordedProcesses(before);
  const skipped = recorded.filter((p) => liveness(p.process) === 'other').map((p) => ({ id: p.id, pid: p.process.pid }));
  const initiallyRunning = runningProcesses(before);
  if (initiallyRunning.length === 0) {
    if (before.status !== 'stopped' && before.status !== 'failed') markStopped(dir, before);
    return { dir, already_stopped: true, stopped: [], skipped };
  }
  const stopped: StoppedProcess[] = [];
  const supervisorAlive = initiallyRunning.some((p) => p.id === 'supervisor');
  if (supervisorAlive) {
    signalRecorded(before.supervisor, 'SIGCONT');
    signalRecorded(before.supervisor, 'SIGTERM');
    const gone = await waitGone(before.supervisor, options.supervisorGraceMs ?? 90_000);
    stopped.push({ id: 'supervisor', pid: before.supervisor.pid, by: 'signal', gone });
    if (!gone) {
      signalRecorded(before.supervisor, 'SIGKILL');
      await waitGone(before.supervisor, 5000);
    }
  }
  // Whatever the supervisor started after `before` was read (a restart, a replacement) is in the latest file.
  let after: StackState | undefined;
  try {
    after = readState(dir);
  } catch {
    after = undefined;
  }
  const seen = new Set<string>();
  const candidates = [...recorded, ...(after ? recordedProcesses(after) : [])].filter((p) => {
    if (p.id === 'supervisor') return false;
    const key = `${p.process.pid}:${String(p.process.start_ticks)}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const order = (id: string): number => (id.startsWith('api') ? 0 : id === 'redis' ? 1 : 2);
  candidates.sort((a, b) => order(a.id) - order(b.id));
  for (const p of candidates) {
    const l = liveness(p.process);
    if (l === 'other') {
      if (!skipped.some((s) => s.pid === p.process.pid)) skipped.push({ id: p.id, pid: p.process.pid });
      continue;
    }
    const wasRunning = initiallyRunning.some((r) => r.process.pid === p.process.pid);
    if (l === 'gone') {
      if (wasRunning && supervisorAlive) stopped.push({ id: p.id, pid: p.process.pid, by: 'supervisor', gone: true });
      continue;
    }
    const gone = await terminateRecorded(p.process, options.partGraceMs ?? (p.id.startsWith('api') ? 45_000 : 10_000));
    stopped.push({ id: p.id, pid: p.process.pid, by: 'signal', gone });
  }
  const latest = (() => {
    try {
      return readState(dir);
    } catch {
      return undefined;
    }
  })() ?? before;
  if (latest.status !== 'stopped') markStopped(dir, latest);
  return { dir, already_stopped: false, stopped, skipped };
}

function markStopped(dir: string, state: StackState): void {
  writeState(dir, {
    ...state, status: 'stopped',
    parts: state.parts.map((p) => ({ ...p, process: null, started_at: null, status: 'stopped' as const })),
    retiring: [], updated_at: new Date().toISOString(),
  });
}
