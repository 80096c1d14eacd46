import { spawn } from 'node:child_process';
import type { KubectlCall } from './report.js';

/** Which deployment, where: the flags every kubectl call of a rollout carries. */
export interface KubeTarget {
  readonly kubectl: string;
  readonly context?: string;
  readonly namespace: string;
  readonly deployment: string;
}

/** `--context C -n NS` before the verb, so every call names the same cluster and namespace explicitly. */
function scope(t: KubeTarget): string[] {
  return [...(t.context ? ['--context', t.context] : []), '--namespace', t.namespace];
}

function resource(t: KubeTarget): string {
  return `deployment/${t.deployment}`;
}

/** The kubectl argument lists of a rollout; pure, so tests can check them without a cluster. */
export const kubectlArgs = {
  revision: (t: KubeTarget): string[] => [...scope(t), 'get', resource(t), '-o', 'jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}'],
  restart: (t: KubeTarget): string[] => [...scope(t), 'rollout', 'restart', resource(t)],
  setImage: (t: KubeTarget, container: string, image: string): string[] => [...scope(t), 'set', 'image', resource(t), `${container}=${image}`],
  status: (t: KubeTarget, timeoutS: number): string[] => [...scope(t), 'rollout', 'status', resource(t), '--watch=true', `--timeout=${Math.max(1, Math.ceil(timeoutS))}s`],
  undo: (t: KubeTarget, toRevision?: string): string[] => [...scope(t), 'rollout', 'undo', resource(t), ...(toRevision ? [`--to-revision=${toRevision}`] : [])],
};

export interface KubectlRun {
  readonly call: KubectlCall;
  readonly stdout: string;
}

const KEEP_LINES = 20;

/** A running kubectl: `done` settles with its record; `kill()` ends it early (SIGTERM). */
export interface KubectlProcess {
  readonly done: Promise<KubectlRun>;
  kill(): void;
}

/**
 * Starts kubectl without a shell (arguments are passed as they are); `onLine` sees each output
 * line as it comes. It is killed after `timeoutMs` so a hung API server cannot hold the rollout.
 */
export function startKubectl(kubectl: string, args: readonly string[], options: { timeoutMs: number; onLine?: (line: string) => void }): KubectlProcess {
  const started = Date.now();
  const child = spawn(kubectl, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  const tail: string[] = [];
  const pending = { out: '', err: '' };
  const take = (which: 'out' | 'err', chunk: Buffer): void => {
    const text = pending[which] + chunk.toString('utf8');
    if (which === 'out') stdout += chunk.toString('utf8');
    const lines = text.split('\n');
    pending[which] = lines.pop() ?? '';
    for (const line of lines) emit(line);
  };
  const emit = (line: string): void => {
    const clean = line.replace(/\r$/, '');
    if (clean.trim() === '') return;
    tail.push(clean);
    if (tail.length > KEEP_LINES) tail.shift();
    options.onLine?.(clean);
  };
  child.stdout.on('data', (c: Buffer) => take('out', c));
  child.stderr.on('data', (c: Buffer) => take('err', c));
  const timer = setTimeout(() => child.kill('SIGTERM'), options.timeoutMs);
  const done = new Promise<KubectlRun>((resolve) => {
    let spawnError: string | undefined;
    child.once('error', (err) => {
      spawnError = (err as NodeJS.ErrnoException).code === 'ENOENT' ? `${kubectl} not found (install kubectl or pass --kubectl PATH)` : err.message;
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      emit(pending.out);
      emit(pending.err);
      if (spawnError) tail.push(spawnError);
      resolve({
        stdout,
        call: { args: [...args], exit_code: spawnError ? 127 : code, signal: signal ?? null, took_s: Math.round(Date.now() - started) / 1000, output: tail.join('\n') },
      });
    });
  });
  return { done, kill: () => child.kill('SIGTERM') };
}

export function runKubectl(kubectl: string, args: readonly string[], timeoutMs: number): Promise<KubectlRun> {
  return startKubectl(kubectl, args, { timeoutMs }).done;
}
