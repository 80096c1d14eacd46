import { Agent, createServer, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface BackendSpec {
  /** Unique name, e.g. the instance id (`api-1`, `api-1.g2`). */
  readonly id: string;
  readonly port: number;
  readonly host?: string;
}

export interface BackendStats {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  /** Its last readiness probe answered 200 (and no connection to it failed since). */
  readonly ready: boolean;
  /** Receives new requests: ready and not taken out of rotation. */
  readonly in_rotation: boolean;
  readonly removed: boolean;
  readonly in_flight: number;
  readonly requests: number;
  /** Forwarded requests that failed on this backend (then retried elsewhere, or answered 503). */
  readonly errors: number;
  readonly last_probe: { readonly at: string; readonly status: number; readonly error?: string } | null;
}

export interface BalancerStats {
  readonly requests: number;
  /** Attempts repeated on another backend after a connection to one failed. */
  readonly retries: number;
  /** Requests the balancer itself answered with 503 (no ready backend, or the backend failed and a retry was not safe). */
  readonly failed: number;
  readonly no_backend: number;
  readonly backends: readonly BackendStats[];
}

export type BackendEvent = { readonly id: string; readonly ready: boolean; readonly reason: string };

export interface BalancerOptions {
  readonly host?: string;
  /** 0 (default): a free port. */
  readonly port?: number;
  /** How often each backend's readiness path is polled. */
  readonly probeIntervalMs?: number;
  readonly probeTimeoutMs?: number;
  readonly readyPath?: string;
  /** A backend that has not answered within this time: the request fails with 503 (not retried). */
  readonly upstreamTimeoutMs?: number;
  /** Request bodies are buffered (so a failed attempt can be retried); larger ones get 413. */
  readonly maxBodyBytes?: number;
  readonly onBackendChange?: (event: BackendEvent) => void;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-authorization', 'proxy-authenticate']);
/** Handled by the balancer itself: it has read the whole body before forwarding. */
const REQUEST_ONLY = new Set(['expect']);
/** Safe to send twice: RFC 9110 idempotent methods. Other requests are retried only with an Idempotency-Key. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** Errors that mean the request never reached the backend's application: always safe to retry. */
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND']);

/**
 * What a failed upstream request means: whether the instance is gone (or going), and whether the
 * request may be sent to another instance without risking it running twice.
 */
export function upstreamFailure(err: Pick<NodeJS.ErrnoException, 'code' | 'syscall'>, method: string, hasIdempotencyKey: boolean): { readonly instanceGone: boolean; readonly retry: boolean } {
  const code = err.code ?? '';
  const refused = CONNECT_ERRORS.has(code);
  const reset = code === 'ECONNRESET' || code === 'EPIPE';
  // The peer's kernel answered with a RST while connecting (no connection, nothing sent: the
  // instance died with the connection in its accept queue) or when a read or write failed (the
  // socket was closed with our request still unread in it, or was already gone). Either way the
  // application never read the request, so any method may be retried. A FIN without an answer
  // ("socket hang up", no syscall) means it may have read and processed it.
  const unread = reset && (err.syscall === 'connect' || err.syscall === 'read' || err.syscall === 'write');
  const replayable = IDEMPOTENT.has(method) || hasIdempotencyKey;
  return { instanceGone: refused || reset, retry: refused || unread || (reset && replayable) };
}

class Backend {
  readonly host: string;
  readonly agent: Agent;
  ready = false;
  enabled = true;
  removed = false;
  inFlight = 0;
  requests = 0;
  errors = 0;
  lastProbe: BackendStats['last_probe'] = null;
  private idleWaiters: (() => void)[] = [];

  constructor(readonly id: string, readonly port: number, host: string | undefined) {
    this.host = host ?? '127.0.0.1';
    // Idle sockets are dropped after 30 s, well before the API's own keep-alive timeout (72 s), so
    // the balancer never reuses a socket the backend is closing at the same moment.
    this.agent = new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, timeout: 30_000, scheduling: 'lifo' });
  }

  get inRotation(): boolean {
    return this.ready && this.enabled && !this.removed;
  }

  finished(): void {
    this.inFlight--;
    if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

function forwardedHeaders(req: IncomingMessage, bodyLength: number): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const connectionTokens = (req.headers.connection ?? '').toLowerCase().split(',').map((s) => s.trim());
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || REQUEST_ONLY.has(name) || connectionTokens.includes(name)) continue;
    out[name] = value;
  }
  const peer = req.socket.remoteAddress;
  if (peer !== undefined) {
    const prior = req.headers['x-forwarded-for'];
    out['x-forwarded-for'] = prior ? `${String(prior)}, ${peer}` : peer;
  }
  out['x-forwarded-proto'] ??= 'http';
  if (bodyLength > 0 || req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) {
    out['content-length'] = String(bodyLength);
  }
  return out;
}

function responseHeaders(res: IncomingMessage, backendId: string): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const connectionTokens = (res.headers.connection ?? '').toLowerCase().split(',').map((s) => s.trim());
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || connectionTokens.includes(name)) continue;
    out[name] = value;
  }
  out['x-kgents-backend'] = backendId;
  return out;
}

function errorBody(message: string): string {
  return JSON.stringify({ error: { code: 'ERR_SERVICE_UNAVAILABLE', message } });
}

/**
 * The stack's HTTP load balancer: one public port, requests round-robined over the backends whose
 * readiness probe (GET /ready) last answered 200.
 *
 * - A backend leaves rotation as soon as a probe answers anything else or not at all, as soon as a
 *   connection to it fails, or when `remove()`/`disable()` takes it out. Being HTTP-aware, it stops
 *   sending new requests to a draining backend even on kept-alive client connections.
 * - A request whose connection to a backend fails is retried on another backend when that is safe:
 *   always if the connection was refused or reset with the request unread (the application never
 *   saw it); after the connection ended without an answer (the backend may have processed it) only
 *   for idempotent methods and requests with an Idempotency-Key (the API deduplicates those).
 */
export class Balancer {
  private server: Server | undefined;
  private readonly byId = new Map<string, Backend>();
  private order: Backend[] = [];
  private next = 0;
  private probing = false;
  private readonly probeLoops = new Set<Promise<void>>();
  private totals = { requests: 0, retries: 0, failed: 0, no_backend: 0 };
  private boundPort = 0;
  private readonly sockets = new Set<Socket>();
  private readonly opts: Required<Omit<BalancerOptions, 'onBackendChange'>> & Pick<BalancerOptions, 'onBackendChange'>;

  constructor(options: BalancerOptions = {}) {
    this.opts = {
      host: options.host ?? '127.0.0.1', port: options.port ?? 0, probeIntervalMs: options.probeIntervalMs ?? 250,
      probeTimeoutMs: options.probeTimeoutMs ?? 1000, readyPath: options.readyPath ?? '/ready',
      upstreamTimeoutMs: options.upstreamTimeoutMs ?? 60_000, maxBodyBytes: options.maxBodyBytes ?? 16 * 1024 * 1024,
      onBackendChange: options.onBackendChange,
    };
  }

  get port(): number {
    return this.boundPort;
  }

  get url(): string {
    return `http://${this.opts.host}:${this.boundPort}`;
  }

  /** Listens on the public port; rejects (e.g. EADDRINUSE) if it cannot. */
  async start(): Promise<void> {
    const server = createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = 65_000;
    server.headersTimeout = 66_000;
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    this.boundPort = typeof addr === 'object' && addr ? addr.port : 0;
    this.server = server;
    this.probing = true;
    for (const b of this.byId.values()) this.startProbing(b);
  }

  /**
   * Adds a backend. With `ready: true` (its readiness was just checked) it joins the rotation at
   * once; otherwise at its first successful probe.
   */
  add(spec: BackendSpec, options: { ready?: boolean } = {}): void {
    const existing = this.byId.get(spec.id);
    if (existing && !existing.removed) throw new Error(`backend ${spec.id} is already in the balancer`);
    const backend = new Backend(spec.id, spec.port, spec.host);
    backend.ready = options.ready === true;
    this.byId.set(spec.id, backend);
    this.order = [...this.order.filter((b) => b.id !== spec.id), backend];
    if (backend.ready) this.opts.onBackendChange?.({ id: backend.id, ready: true, reason: 'added ready' });
    if (this.probing) this.startProbing(backend);
  }

  /**
   * Takes a backend out of rotation at once and forgets it; resolves when the requests it is still
   * serving have finished (or after `timeoutMs`), then closes the kept-alive connections to it.
   */
  async remove(id: string, timeoutMs = 60_000): Promise<void> {
    const backend = this.byId.get(id);
    if (!backend || backend.removed) return;
    backend.removed = true;
    this.order = this.order.filter((b) => b !== backend);
    this.byId.delete(id);
    this.opts.onBackendChange?.({ id, ready: false, reason: 'removed' });
    const timer = new AbortController();
    await Promise.race([backend.idle(), sleep(timeoutMs, undefined, { signal: timer.signal }).catch(() => undefined)]);
    timer.abort();
    backend.agent.destroy();
  }

  /**
   * The backend's process is known to be gone (its supervisor saw it exit): out of rotation now,
   * not at the next failed probe or connection, and its kept-alive connections closed, so no new
   * request is written into a socket whose peer has died. Its next successful probe brings it back.
   */
  down(id: string, reason: string): void {
    const b = this.byId.get(id);
    if (!b || b.removed) return;
    this.setReady(b, false, reason);
    b.agent.destroy();
  }

  /** Keeps a backend but sends it no new requests (`enable` undoes it); probes go on. */
  disable(id: string): void {
    const b = this.byId.get(id);
    if (b) b.enabled = false;
  }

  enable(id: string): void {
    const b = this.byId.get(id);
    if (b) b.enabled = true;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  /** Whether a backend is receiving new requests. */
  inRotation(id: string): boolean {
    return this.byId.get(id)?.inRotation ?? false;
  }

  /** Resolves when the backend is in rotation; rejects after the deadline. */
  async waitInRotation(id: string, deadlineMs: number): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    while (!this.inRotation(id)) {
      if (Date.now() > deadline) throw new Error(`backend ${id} did not become ready within ${deadlineMs} ms`);
      await sleep(25);
    }
  }

  stats(): BalancerStats {
    return {
      ...this.totals,
      backends: [...this.byId.values()].map((b) => ({
        id: b.id, host: b.host, port: b.port, ready: b.ready, in_rotation: b.inRotation, removed: b.removed,
        in_flight: b.inFlight, requests: b.requests, errors: b.errors, last_probe: b.lastProbe,
      })),
    };
  }

  /** Stops accepting, lets in-flight requests finish for up to `graceMs`, then closes every connection. */
  async stop(graceMs = 5000): Promise<void> {
    this.probing = false;
    const server = this.server;
    this.server = undefined;
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = new AbortController();
      await Promise.race([closed, sleep(graceMs, undefined, { signal: timer.signal }).catch(() => undefined)]);
      timer.abort();
      for (const s of this.sockets) s.destroy();
      await closed;
    }
    await Promise.all([...this.probeLoops]);
    for (const b of this.byId.values()) b.agent.destroy();
  }

  // ---- probing -----------------------------------------------------------------------------------

  private startProbing(backend: Backend): void {
    const loop = (async () => {
      while (this.probing && !backend.removed) {
        await this.probe(backend);
        await sleep(this.opts.probeIntervalMs);
      }
    })();
    this.probeLoops.add(loop);
    void loop.finally(() => this.probeLoops.delete(loop));
  }

  private probe(backend: Backend): Promise<void> {
    return new Promise((resolve) => {
      let settled = false;
      const done = (status: number, error?: string): void => {
        if (settled) return;
        settled = true;
        backend.lastProbe = { at: new Date().toISOString(), status, ...(error !== undefined && { error }) };
        this.setReady(backend, status === 200, status === 0 ? `probe failed: ${error ?? 'no answer'}` : `probe answered ${status}`);
        resolve();
      };
      const req = httpRequest({ host: backend.host, port: backend.port, path: this.opts.readyPath, method: 'GET', agent: false, timeout: this.opts.probeTimeoutMs }, (res) => {
        res.resume();
        done(res.statusCode ?? 0);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.opts.probeTimeoutMs} ms`)));
      req.on('error', (err) => done(0, (err as NodeJS.ErrnoException).code ?? err.message));
      req.end();
    });
  }

  private setReady(backend: Backend, ready: boolean, reason: string): void {
    if (backend.removed || backend.ready === ready) return;
    backend.ready = ready;
    this.opts.onBackendChange?.({ id: backend.id, ready, reason });
  }

  // ---- proxying ----------------------------------------------------------------------------------

  private pick(exclude: ReadonlySet<Backend>): Backend | undefined {
    const n = this.order.length;
    for (let i = 0; i < n; i++) {
      const b = this.order[(this.next + i) % n];
      if (b && b.inRotation && !exclude.has(b)) {
        this.next = (this.next + i + 1) % n;
        return b;
      }
    }
    return undefined;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.totals.requests++;
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      if (tooLarge) return;
      size += chunk.length;
      if (size > this.opts.maxBodyBytes) {
        tooLarge = true;
        res.writeHead(413, { 'content-type': 'application/json', connection: 'close' });
        res.end(JSON.stringify({ error: { code: 'ERR_BODY_TOO_LARGE', message: 'request body too large for the load balancer' } }));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge) return;
      const body = chunks.length === 0 ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      this.forward(req, res, body, new Set());
    });
    req.on('error', () => res.destroy());
  }

  private fail(res: ServerResponse, message: string, noBackend: boolean): void {
    this.totals.failed++;
    if (noBackend) this.totals.no_backend++;
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1', 'x-kgents-balancer': noBackend ? 'no-backend' : 'backend-failed' });
    res.end(errorBody(message));
  }

  private forward(req: IncomingMessage, res: ServerResponse, body: Buffer | undefined, tried: Set<Backend>): void {
    if (res.destroyed) return;
    const backend = this.pick(tried);
    if (!backend) {
      this.fail(res, tried.size === 0 ? 'no API instance is ready' : 'every API instance tried failed', tried.size === 0);
      return;
    }
    tried.add(backend);
    backend.inFlight++;
    backend.requests++;
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      backend.finished();
    };
    let responded = false;
    const up = httpRequest({
      host: backend.host, port: backend.port, method: req.method, path: req.url, headers: forwardedHeaders(req, body?.length ?? 0), agent: backend.agent,
    });
    up.setTimeout(this.opts.upstreamTimeoutMs, () => up.destroy(Object.assign(new Error('upstream timeout'), { code: 'ETIMEDOUT_UPSTREAM' })));
    const onClientGone = (): void => {
      if (!res.writableFinished) up.destroy();
    };
    res.once('close', onClientGone);
    let handedOff = false;
    up.on('response', (ures) => {
      // A shed request (503 with X-Kgents-Shed) was refused before any work: another instance may take it.
      if (ures.statusCode === 503 && ures.headers['x-kgents-shed'] !== undefined && this.order.some((b) => b.inRotation && !tried.has(b))) {
        handedOff = true;
        ures.resume();
        finish();
        res.off('close', onClientGone);
        this.setReady(backend, false, `shedding load (${String(ures.headers['x-kgents-shed'])})`);
        this.totals.retries++;
        this.forward(req, res, body, tried);
        return;
      }
      responded = true;
      res.writeHead(ures.statusCode ?? 502, responseHeaders(ures, backend.id));
      ures.pipe(res);
      ures.once('end', finish);
      ures.once('close', finish);
      ures.once('error', () => {
        finish();
        res.destroy();
      });
    });
    up.on('error', (err: NodeJS.ErrnoException) => {
      if (handedOff) return;
      finish();
      res.off('close', onClientGone);
      if (res.destroyed) return;
      if (responded) {
        res.destroy();
        return;
      }
      backend.errors++;
      const code = err.code ?? '';
      const verdict = upstreamFailure(err, req.method ?? 'GET', req.headers['idempotency-key'] !== undefined);
      // A refused or reset connection means the instance is gone (or going): no more requests until a probe says otherwise.
      if (verdict.instanceGone) this.setReady(backend, false, `connection failed: ${err.message}`);
      if (verdict.retry) {
        this.totals.retries++;
        this.forward(req, res, body, tried);
        return;
      }
      this.fail(res, code === 'ETIMEDOUT_UPSTREAM' ? `API instance ${backend.id} did not answer in time` : `API instance ${backend.id} failed: ${err.message}`, false);
    });
    up.end(body);
  }
}
