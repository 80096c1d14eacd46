import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { findBinary } from './binaries.js';
import { ManagedProcess, waitUntil } from './managed-process.js';
import { freePort } from './ports.js';

export interface LocalRedisOptions {
  readonly dir: string;
  readonly port?: number;
  readonly readyDeadlineMs?: number;
  /** Keep data across restarts (AOF); tests of fallback usually want a fresh server. */
  readonly persist?: boolean;
  /** Own process group: see ManagedProcessOptions.detached. */
  readonly detached?: boolean;
}

/** Sends PING over a raw socket so readiness does not depend on a client library's reconnect logic. */
export function pingRedis(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (chunk) => done(chunk.toString().startsWith('+PONG')));
  });
}

/** A redis-server on loopback with its own directory; restartable on the same port. */
export class LocalRedisServer {
  private proc: ManagedProcess | undefined;
  port = 0;

  constructor(private readonly options: LocalRedisOptions) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return this.proc?.running ?? false;
  }

  async start(): Promise<void> {
    const binary = findBinary('redis-server');
    if (!binary) throw new Error('redis-server is not installed (apt-get install -y redis-server)');
    this.port ||= this.options.port ?? (await freePort());
    mkdirSync(this.options.dir, { recursive: true });
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.options.dir, '--save', '',
      '--appendonly', this.options.persist ? 'yes' : 'no', '--daemonize', 'no', '--protected-mode', 'yes'];
    this.proc = new ManagedProcess({
      name: 'redis', command: binary, args, logFile: join(this.options.dir, 'redis-server.log'), detached: this.options.detached ?? false,
    });
    this.proc.start();
    await waitUntil(`redis-server on port ${this.port}`, () => pingRedis(this.port), this.options.readyDeadlineMs ?? 10_000, this.proc);
  }

  async stop(): Promise<void> {
    await this.proc?.stop();
  }

  async kill(): Promise<void> {
    await this.proc?.kill();
  }

  pause(): void {
    this.proc?.pause();
  }

  resume(): void {
    this.proc?.resume();
  }
}
