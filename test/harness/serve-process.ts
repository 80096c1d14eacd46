import { spawn, type ChildProcess } from 'node:child_process';
import { request, type Agent } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../src/adapters/local/ports.js';

export const CLI = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.js');

/** A Node child process, for tests where the process itself matters (signals, kill -9). */
export interface NodeProcess {
  readonly child: ChildProcess;
  output(): string;
  readonly exited: Promise<number | null>;
}

/** A `kgents serve` child process. */
export interface ServeProcess extends NodeProcess {
  readonly port: number;
}

/** Runs `node ARGS` with `env` added to this process's, and resolves once its output contains `readyText` (30 s at most). */
export async function spawnNode(args: readonly string[], env: Record<string, string>, readyText: string): Promise<NodeProcess> {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 30_000;
  while (!out.includes(readyText)) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${args.join(' ')} exited early:\n${out}`);
    if (Date.now() > deadline) throw new Error(`${args.join(' ')} did not print "${readyText}" in time:\n${out}`);
    await sleep(50);
  }
  return { child, output: () => out, exited };
}

export async function spawnServe(env: Record<string, string>, port?: number): Promise<ServeProcess> {
  const listenPort = port ?? (await freePort());
  const proc = await spawnNode([CLI, 'serve'], { PORT: String(listenPort), HOST: '127.0.0.1', ...env }, 'kgents API listening');
  return { ...proc, port: listenPort };
}

export interface HttpResult {
  readonly status: number;
  readonly body: string;
  readonly headers: Record<string, string | string[] | undefined>;
  /** Header names as sent, in order, lower-cased. */
  readonly headerNames: readonly string[];
}

/** One HTTP request on loopback; `agent: false` unless one is given. */
export function http(port: number, path: string, options: { method?: string; headers?: Record<string, string>; body?: string; agent?: Agent } = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers, agent: options.agent ?? false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({
        status: res.statusCode ?? 0, body, headers: res.headers,
        headerNames: res.rawHeaders.filter((_v, i) => i % 2 === 0).map((n) => n.toLowerCase()),
      }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}
