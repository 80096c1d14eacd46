import { spawn, type ChildProcess } from 'node:child_process';
import { request, type Agent } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../src/adapters/local/ports.js';

export const CLI = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.js');

/** A `kgents serve` child process, for tests where the process itself matters (signals, kill -9). */
export interface ServeProcess {
  readonly child: ChildProcess;
  readonly port: number;
  output(): string;
  readonly exited: Promise<number | null>;
}

export async function spawnServe(env: Record<string, string>, port?: number): Promise<ServeProcess> {
  const listenPort = port ?? (await freePort());
  const child = spawn(process.execPath, [CLI, 'serve'], {
    env: { ...process.env, PORT: String(listenPort), HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 30_000;
  while (!out.includes('kgents API listening')) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`serve exited early:\n${out}`);
    if (Date.now() > deadline) throw new Error(`serve not listening in time:\n${out}`);
    await sleep(50);
  }
  return { child, port: listenPort, output: () => out, exited };
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
