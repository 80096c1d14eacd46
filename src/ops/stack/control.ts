import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { FaultModeError, parseFaultSetting, type FaultSetting } from '../fault/proxy.js';
import { PartStateError, UnknownPartError } from './errors.js';
import { NO_FAULT_PROXIES, type NatsFaultControl, type NatsProxyState } from './faults.js';
import { NO_OTEL_COLLECTOR, type OtelCollectorState, type OtelFaultControl } from './otel-collector.js';
import type { ReplaceResult, SignalResult, StackControl } from './stack.js';
import { readState, type StackState } from './state.js';

/** What the control endpoint drives: the stack's controls, and how to stop it all. */
export interface ControlTarget extends StackControl, Partial<NatsFaultControl>, Partial<OtelFaultControl> {
  stop(): Promise<void>;
}

const SIGNALS = new Set(['SIGKILL', 'SIGTERM', 'SIGSTOP', 'SIGCONT', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2']);

/** `KILL`, `kill`, `SIGKILL`: a signal name with or without the SIG prefix, among those the stack sends. */
export function parseSignal(raw: string): NodeJS.Signals | undefined {
  const upper = raw.trim().toUpperCase();
  const name = upper.startsWith('SIG') ? upper : `SIG${upper}`;
  return SIGNALS.has(name) ? (name as NodeJS.Signals) : undefined;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/**
 * The supervisor's control endpoint: HTTP on loopback, every request with
 * `Authorization: Bearer <control.token from stack.json>`.
 *
 *   GET  /state                       the live StackState (with balancer counters)
 *   POST /parts/{id}/signal?signal=S  send S (KILL, TERM, STOP, CONT, ...) to the part's process
 *   POST /parts/{id}/stop             stop it and keep it stopped
 *   POST /parts/{id}/start            start it again (waits until ready)
 *   POST /parts/{id}/replace          zero-downtime replacement of an API slot (waits until done)
 *   POST /shutdown                    stop the whole stack (answers 202 first)
 *   GET  /faults                      the NATS fault proxies (stacks started with --nats-faults)
 *   POST /faults/nats?mode=M          M = pass|hang|refuse|latency (&latency_ms=N) [&node=nats-1]
 *   GET  /faults/otel                 the stand-in OpenTelemetry collector (stacks started with --otel-faults)
 *   POST /faults/otel?mode=M          M as for NATS: the collector hangs, refuses, lags or heals
 *
 * Errors: {error:{code,message}} with 401, 404 (unknown part or route), 409 (wrong state), 500.
 */
export class ControlServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private boundPort = 0;

  constructor(private readonly target: ControlTarget, private readonly token: string, private readonly listen: { readonly host: string; readonly port: number }) {}

  get url(): string {
    return this.server ? `http://${this.listen.host}:${this.boundPort}` : '';
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      void this.handle(req, res);
    });
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listen.port, this.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    this.boundPort = typeof addr === 'object' && addr ? addr.port : 0;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    // give a just-answered /shutdown a moment to flush, then drop what is left
    setTimeout(() => {
      for (const s of this.sockets) s.destroy();
    }, 200).unref();
    await closed;
  }

  private authorized(req: IncomingMessage): boolean {
    const header = req.headers.authorization ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    const want = Buffer.from(this.token);
    return given.length === want.length && timingSafeEqual(given, want);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.resume();
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      if (!this.authorized(req)) throw new HttpError(401, 'missing or wrong bearer token (see control.token in stack.json)');
      const url = new URL(req.url ?? '/', 'http://control');
      const method = req.method ?? 'GET';
      if (method === 'GET' && url.pathname === '/state') {
        send(200, await this.target.state());
        return;
      }
      if (method === 'POST' && url.pathname === '/shutdown') {
        send(202, { stopping: true });
        void this.target.stop();
        return;
      }
      if (url.pathname === '/faults' && method === 'GET') {
        send(200, { nats: this.target.natsFaults ? await this.target.natsFaults() : [] });
        return;
      }
      if (url.pathname === '/faults/otel') {
        if (!this.target.otelCollector || !this.target.setOtelFault) throw new PartStateError(NO_OTEL_COLLECTOR);
        if (method === 'GET') {
          send(200, { otel: await this.target.otelCollector() });
          return;
        }
        if (method === 'POST') {
          let setting: FaultSetting;
          try {
            setting = parseFaultSetting(url.searchParams.get('mode'), url.searchParams.get('latency_ms'));
          } catch (err) {
            throw new HttpError(400, err instanceof FaultModeError ? err.message : 'bad fault setting');
          }
          send(200, { otel: await this.target.setOtelFault(setting) });
          return;
        }
      }
      if (url.pathname === '/faults/nats' && method === 'POST') {
        let setting: FaultSetting;
        try {
          setting = parseFaultSetting(url.searchParams.get('mode'), url.searchParams.get('latency_ms'));
        } catch (err) {
          throw new HttpError(400, err instanceof FaultModeError ? err.message : 'bad fault setting');
        }
        if (!this.target.setNatsFault) throw new PartStateError(NO_FAULT_PROXIES);
        send(200, { nats: await this.target.setNatsFault(setting, url.searchParams.get('node') ?? undefined) });
        return;
      }
      const match = /^\/parts\/([A-Za-z0-9._-]{1,64})\/(signal|stop|start|replace)$/.exec(url.pathname);
      if (method !== 'POST' || !match?.[1] || !match[2]) throw new HttpError(404, `no route ${method} ${url.pathname.slice(0, 100)}`);
      const id = match[1];
      switch (match[2]) {
        case 'signal': {
          const signal = parseSignal(url.searchParams.get('signal') ?? 'KILL');
          if (!signal) throw new HttpError(400, `unsupported signal; use one of ${[...SIGNALS].join(', ')}`);
          send(200, await this.target.signal(id, signal));
          return;
        }
        case 'stop':
          await this.target.stopPart(id);
          send(200, { id, status: 'stopped' });
          return;
        case 'start':
          await this.target.startPart(id);
          send(200, { id, status: 'running' });
          return;
        default:
          send(200, await this.target.replaceInstance(id));
      }
    } catch (err) {
      const status = err instanceof HttpError ? err.status : err instanceof UnknownPartError ? 404 : err instanceof PartStateError ? 409 : 500;
      const code = { 400: 'ERR_BAD_REQUEST', 401: 'ERR_UNAUTHORIZED', 404: 'ERR_NOT_FOUND', 409: 'ERR_CONFLICT' }[status] ?? 'ERR_INTERNAL';
      if (!res.headersSent) send(status, { error: { code, message: err instanceof Error ? err.message : String(err) } });
    }
  }
}

/** The control endpoint answered an error. */
export class ControlError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = 'ControlError';
  }
}

/**
 * Drives a stack running in another process (`kgents stack up` detached) through its control
 * endpoint; the address and token come from DIR/stack.json.
 */
export class StackClient implements StackControl, NatsFaultControl, OtelFaultControl {
  constructor(readonly controlUrl: string, private readonly token: string) {}

  /** Opens the stack recorded in DIR/stack.json; throws if there is none or it is not running. */
  static open(dir: string): StackClient {
    const state = readState(dir);
    if (!state) throw new PartStateError(`no stack in ${dir} (no stack.json): start one with kgents stack up --dir ${dir}`);
    if (state.status !== 'running' && state.status !== 'starting') throw new PartStateError(`the stack in ${dir} is ${state.status}`);
    if (!state.control.url) throw new PartStateError(`the stack in ${dir} has no control endpoint`);
    return new StackClient(state.control.url, state.control.token);
  }

  private async call<T>(method: 'GET' | 'POST', path: string, timeoutMs = 120_000): Promise<T> {
    const res = await fetch(`${this.controlUrl}${path}`, {
      method, headers: { authorization: `Bearer ${this.token}` }, signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (!res.ok) {
      const error = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new ControlError(res.status, error?.code ?? 'ERR_INTERNAL', error?.message ?? `control endpoint answered ${res.status}`);
    }
    return body as T;
  }

  state(): Promise<StackState> {
    return this.call('GET', '/state', 10_000);
  }

  signal(id: string, signal: NodeJS.Signals): Promise<SignalResult> {
    return this.call('POST', `/parts/${encodeURIComponent(id)}/signal?signal=${signal}`, 10_000);
  }

  async stopPart(id: string): Promise<void> {
    await this.call('POST', `/parts/${encodeURIComponent(id)}/stop`);
  }

  async startPart(id: string): Promise<void> {
    await this.call('POST', `/parts/${encodeURIComponent(id)}/start`);
  }

  replaceInstance(id: string): Promise<ReplaceResult> {
    return this.call('POST', `/parts/${encodeURIComponent(id)}/replace`);
  }

  async natsFaults(): Promise<NatsProxyState[]> {
    return (await this.call<{ nats: NatsProxyState[] }>('GET', '/faults', 10_000)).nats;
  }

  async setNatsFault(setting: FaultSetting, node?: string): Promise<NatsProxyState[]> {
    const query = new URLSearchParams({ mode: setting.mode });
    if (setting.mode === 'latency') query.set('latency_ms', String(setting.latencyMs ?? 0));
    if (node !== undefined) query.set('node', node);
    return (await this.call<{ nats: NatsProxyState[] }>('POST', `/faults/nats?${query.toString()}`, 10_000)).nats;
  }

  async otelCollector(): Promise<OtelCollectorState> {
    return (await this.call<{ otel: OtelCollectorState }>('GET', '/faults/otel', 10_000)).otel;
  }

  async setOtelFault(setting: FaultSetting): Promise<OtelCollectorState> {
    const query = new URLSearchParams({ mode: setting.mode });
    if (setting.mode === 'latency') query.set('latency_ms', String(setting.latencyMs ?? 0));
    return (await this.call<{ otel: OtelCollectorState }>('POST', `/faults/otel?${query.toString()}`, 10_000)).otel;
  }

  async shutdown(): Promise<void> {
    await this.call('POST', '/shutdown', 10_000);
  }
}
