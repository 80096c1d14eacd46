import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection as RawNatsConnection } from '@nats-io/transport-node';

export interface NatsHealth {
  readonly status: 'ok' | 'down';
  /** ISO time of the last change between ok and down. */
  readonly since: string;
  readonly last_error?: string;
}

export type NatsHealthListener = (health: NatsHealth) => void;

export interface ConnectNatsOptions {
  /** Client name shown by the server (`nats server report connections`). */
  readonly name: string;
  /** How long the first connection attempt may take. Default 5000 ms. */
  readonly timeoutMs?: number;
  /** Pause between reconnect attempts. Default 250 ms. */
  readonly reconnectTimeWaitMs?: number;
  /**
   * Keep trying when no server answers the first attempt (a service booting before NATS). Default
   * false: fail fast with a clear message, which is what the CLI wants.
   */
  readonly waitOnFirstConnect?: boolean;
  /** Ping period; a server that misses two pings counts as gone (a hung process). Default 10000 ms. */
  readonly pingIntervalMs?: number;
}

/** The first connection could not be made. */
export class NatsUnreachableError extends Error {
  constructor(readonly urls: readonly string[], reason: string) {
    super(`cannot reach NATS at ${urls.map(redactUrl).join(', ')} (is nats-server running? set NATS_URLS): ${reason}`);
    this.name = 'NatsUnreachableError';
  }
}

/** Drops credentials from a NATS URL (user:password@ or token@) so it can be logged. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/)[^@/]*@/i, '$1***@');
}

function credentialsIn(urls: readonly string[]): string[] {
  const out: string[] = [];
  for (const url of urls) {
    const match = /^[a-z]+:\/\/([^@/]*)@/i.exec(url);
    if (match?.[1]) out.push(match[1], ...match[1].split(':').filter((p) => p.length >= 3));
  }
  return out;
}

function errorText(err: unknown, secrets: readonly string[]): string {
  let text = err instanceof Error ? err.message : String(err);
  for (const secret of secrets) text = text.split(secret).join('***');
  return text;
}

/**
 * One process-wide connection to NATS that reconnects forever and knows whether it is up.
 * `nc` is the underlying nats.js connection for JetStream/KV clients.
 */
export class NatsConnection {
  private state: NatsHealth;
  private readonly listeners = new Set<NatsHealthListener>();
  private readonly statusLoop: Promise<void>;
  private closing: Promise<void> | undefined;

  private constructor(readonly nc: RawNatsConnection, readonly urls: readonly string[], private readonly secrets: readonly string[]) {
    this.state = { status: 'ok', since: new Date().toISOString() };
    this.statusLoop = this.followStatus();
    void nc.closed().then((err) => {
      this.setState('down', err ? errorText(err, this.secrets) : 'connection closed');
    });
  }

  static async connect(urls: readonly string[], options: ConnectNatsOptions): Promise<NatsConnection> {
    if (urls.length === 0) throw new NatsUnreachableError(urls, 'no NATS_URLS given');
    const secrets = credentialsIn(urls);
    let nc: RawNatsConnection;
    try {
      nc = await connect({
        servers: [...urls],
        name: options.name,
        timeout: options.timeoutMs ?? 5000,
        maxReconnectAttempts: -1,
        reconnectTimeWait: options.reconnectTimeWaitMs ?? 250,
        reconnectJitter: 100,
        waitOnFirstConnect: options.waitOnFirstConnect ?? false,
        pingInterval: options.pingIntervalMs ?? 10_000,
        maxPingOut: 2,
      });
    } catch (err) {
      throw new NatsUnreachableError(urls, errorText(err, secrets));
    }
    return new NatsConnection(nc, urls, secrets);
  }

  /** Current state, for /health/saas. */
  health(): NatsHealth {
    return this.state;
  }

  get isUp(): boolean {
    return this.state.status === 'ok';
  }

  get isClosed(): boolean {
    return this.nc.isClosed();
  }

  /** Called on every change between ok and down; returns a function that unsubscribes. */
  onStatusChange(listener: NatsHealthListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves when the connection is up (at once if it is), or false when it closes first. */
  async waitUntilUp(signal?: AbortSignal): Promise<boolean> {
    while (!this.isUp) {
      if (this.isClosed || signal?.aborted) return false;
      await new Promise<void>((resolve) => {
        const off = this.onStatusChange(() => done());
        const timer = setTimeout(() => done(), 1000);
        const onAbort = (): void => done();
        signal?.addEventListener('abort', onAbort, { once: true });
        function done(): void {
          off();
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve();
        }
      });
    }
    return !this.isClosed;
  }

  /** Drains subscriptions and closes; falls back to a hard close when draining cannot finish (server down). */
  close(timeoutMs = 2000): Promise<void> {
    this.closing ??= (async () => {
      if (!this.nc.isClosed()) {
        const timer = new AbortController();
        const drained = await Promise.race([
          this.nc.drain().then(() => true, () => false),
          sleep(timeoutMs, false, { signal: timer.signal }).catch(() => false),
        ]);
        timer.abort();
        if (!drained && !this.nc.isClosed()) await this.nc.close().catch(() => undefined);
      }
      await this.statusLoop;
    })();
    return this.closing;
  }

  private async followStatus(): Promise<void> {
    try {
      for await (const s of this.nc.status()) {
        switch (s.type) {
          case 'disconnect':
            this.setState('down', `disconnected from ${redactUrl(s.server)}`);
            break;
          case 'reconnecting':
            this.setState('down');
            break;
          case 'staleConnection':
            this.setState('down', 'stale connection (server stopped answering pings)');
            break;
          case 'reconnect':
            this.setState('ok');
            break;
          case 'error':
            this.state = { ...this.state, last_error: errorText(s.error, this.secrets) };
            break;
          case 'close':
            this.setState('down', 'connection closed');
            return;
          default:
            break;
        }
      }
    } catch {
      // the status iterator only ends with the connection
    }
  }

  private setState(status: NatsHealth['status'], error?: string): void {
    const lastError = error ?? this.state.last_error;
    if (status === this.state.status) {
      if (error !== undefined) this.state = { ...this.state, last_error: error };
      return;
    }
    this.state = { status, since: new Date().toISOString(), ...(lastError !== undefined ? { last_error: lastError } : {}) };
    for (const listener of [...this.listeners]) {
      try {
        listener(this.state);
      } catch {
        // a listener's failure must not stop the others
      }
    }
  }
}

/** Connects to the given servers; see {@link ConnectNatsOptions}. */
export function connectNats(urls: readonly string[], options: ConnectNatsOptions): Promise<NatsConnection> {
  return NatsConnection.connect(urls, options);
}
