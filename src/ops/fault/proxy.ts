import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * `pass`: forward both ways. `hang`: a black hole: connections are accepted (and kept) but nothing
 * crosses in either direction, not even a close, so both ends see a silent peer, as behind a
 * firewall that drops packets. `refuse`: new and existing connections are reset. `latency`: every
 * chunk (and close) crosses `latencyMs` later, in order.
 */
export type FaultMode = 'pass' | 'hang' | 'refuse' | 'latency';

export const FAULT_MODES: readonly FaultMode[] = ['pass', 'hang', 'refuse', 'latency'];

export interface FaultSetting {
  readonly mode: FaultMode;
  /** Delay of each chunk in `latency` mode (ms). */
  readonly latencyMs?: number;
}

export interface FaultProxyOptions {
  readonly upstreamHost?: string;
  readonly upstreamPort: number;
  readonly host?: string;
  /** Listening port; 0 or absent: a free port. */
  readonly port?: number;
  /** A name for reports (e.g. the NATS node it fronts). */
  readonly name?: string;
}

export interface FaultProxyStats {
  readonly name: string;
  readonly url: string;
  readonly upstream: string;
  readonly mode: FaultMode;
  readonly latency_ms: number;
  /** ISO time the current mode was set. */
  readonly since: string;
  readonly connections_open: number;
  readonly connections_total: number;
  /** Connections reset by `refuse` (new ones and open ones). */
  readonly connections_reset: number;
  /** Bytes delivered client → upstream and upstream → client. */
  readonly bytes_up: number;
  readonly bytes_down: number;
}

export class FaultModeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FaultModeError';
  }
}

/** Parses `mode` (and `latency_ms` for latency) as the control endpoint and CLI receive them. */
export function parseFaultSetting(mode: string | null | undefined, latencyMs?: string | null): FaultSetting {
  const m = (mode ?? '').trim().toLowerCase();
  if (!FAULT_MODES.includes(m as FaultMode)) throw new FaultModeError(`unknown fault mode "${String(mode).slice(0, 40)}"; use one of ${FAULT_MODES.join(', ')}`);
  if (m !== 'latency') return { mode: m as FaultMode };
  const ms = Number(latencyMs ?? '');
  if (!Number.isInteger(ms) || ms < 0 || ms > 600_000) throw new FaultModeError('latency mode needs latency_ms, an integer from 0 to 600000');
  return { mode: 'latency', latencyMs: ms };
}

type Item = { readonly kind: 'data'; readonly chunk: Buffer; readonly due: number } | { readonly kind: 'end' | 'reset'; readonly due: number };

/** Above this many queued bytes a direction stops reading its source (backpressure). */
const HIGH_WATER = 1024 * 1024;

/**
 * One direction of a connection. Everything the source sends (data, its end, its reset) is queued
 * and crosses only when the proxy allows it, so `hang` holds back closes too and `pass` after a
 * hang delivers what was held, as TCP retransmission does once a partition heals.
 */
class Flow {
  private readonly queue: Item[] = [];
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private blocked = false;
  private done = false;

  private dst: Socket | undefined;

  constructor(private readonly src: Socket, private readonly proxy: FaultProxy, private readonly count: (n: number) => void) {
    src.on('data', (chunk: Buffer) => {
      this.push({ kind: 'data', chunk, due: Date.now() + proxy.delayMs });
      if (this.queuedBytes > HIGH_WATER) src.pause();
    });
    src.on('end', () => this.push({ kind: 'end', due: Date.now() + proxy.delayMs }));
    src.on('error', () => undefined);
    src.on('close', (hadError) => {
      if (hadError) this.push({ kind: 'reset', due: Date.now() + proxy.delayMs });
    });
  }

  attach(dst: Socket): void {
    this.dst = dst;
    dst.on('drain', () => {
      this.blocked = false;
      this.pump();
    });
    this.pump();
  }

  /** The mode changed: stop or start reading, and deliver what may now cross. */
  update(): void {
    if (this.proxy.mode === 'hang') {
      this.src.pause();
      clearTimeout(this.timer);
      this.timer = undefined;
      return;
    }
    this.pump();
  }

  private push(item: Item): void {
    if (this.done) return;
    if (item.kind === 'data') this.queuedBytes += item.chunk.length;
    this.queue.push(item);
    this.pump();
  }

  private pump(): void {
    const dst = this.dst;
    if (!dst || this.proxy.mode === 'hang') return;
    while (!this.blocked && this.queue.length > 0) {
      const head = this.queue[0];
      if (!head) break;
      const wait = head.due - Date.now();
      if (wait > 0) {
        if (!this.timer) {
          this.timer = setTimeout(() => {
            this.timer = undefined;
            this.pump();
          }, wait);
        }
        return;
      }
      this.queue.shift();
      if (head.kind === 'data') {
        this.queuedBytes -= head.chunk.length;
        this.count(head.chunk.length);
        if (!dst.destroyed && !dst.write(head.chunk)) this.blocked = true;
      } else if (head.kind === 'end') {
        this.done = true;
        if (!dst.destroyed) dst.end();
      } else {
        this.done = true;
        resetSocket(dst);
      }
    }
    if (!this.done && this.queuedBytes <= HIGH_WATER / 2 && !this.src.destroyed) this.src.resume();
  }
}

function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  // resetAndDestroy sends an RST (ECONNRESET at the peer); it throws if the socket is not connected yet.
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

class Link {
  upstream: Socket | undefined;
  private readonly up: Flow;
  private down: Flow | undefined;
  private open_ = 1;

  constructor(readonly client: Socket, private readonly proxy: FaultProxy, private readonly onGone: (link: Link) => void) {
    this.up = new Flow(client, proxy, (n) => proxy.countUp(n));
    client.once('close', () => this.closed());
  }

  /** Opens the upstream connection (deferred while hanging: the far side must not see the connection). */
  open(host: string, port: number): void {
    if (this.upstream || this.client.destroyed) return;
    const upstream = connect({ host, port, allowHalfOpen: true });
    this.upstream = upstream;
    this.open_++;
    upstream.setNoDelay(true);
    upstream.once('close', () => this.closed());
    this.down = new Flow(upstream, this.proxy, (n) => this.proxy.countDown(n));
    upstream.once('connect', () => this.up.attach(upstream));
    // The upstream is down or refuses: the client sees a reset, as it would connecting directly.
    upstream.once('error', () => {
      if (upstream.connecting) resetSocket(this.client);
    });
    this.down.attach(this.client);
  }

  update(): void {
    this.up.update();
    this.down?.update();
  }

  reset(): void {
    resetSocket(this.client);
    if (this.upstream) resetSocket(this.upstream);
  }

  private closed(): void {
    if (--this.open_ === 0 || !this.upstream) this.onGone(this);
  }
}

/**
 * A TCP proxy that can cut, stall, delay or refuse the connections it carries: the network fault
 * injector of the chaos scenarios (`network-partition` puts one in front of each NATS node).
 */
export class FaultProxy {
  private server: Server | undefined;
  private readonly links = new Set<Link>();
  private setting: FaultSetting = { mode: 'pass' };
  private since = new Date().toISOString();
  private total = 0;
  private resets = 0;
  private bytesUp = 0;
  private bytesDown = 0;
  private boundPort = 0;
  readonly name: string;
  readonly upstreamHost: string;
  readonly upstreamPort: number;

  constructor(private readonly options: FaultProxyOptions) {
    this.name = options.name ?? `proxy-${options.upstreamPort}`;
    this.upstreamHost = options.upstreamHost ?? '127.0.0.1';
    this.upstreamPort = options.upstreamPort;
  }

  get mode(): FaultMode {
    return this.setting.mode;
  }

  /** The delay each chunk gets now (0 unless in latency mode). */
  get delayMs(): number {
    return this.setting.mode === 'latency' ? (this.setting.latencyMs ?? 0) : 0;
  }

  get port(): number {
    return this.boundPort;
  }

  get host(): string {
    return this.options.host ?? '127.0.0.1';
  }

  async start(): Promise<void> {
    if (this.server) return;
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port ?? 0, this.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    this.boundPort = typeof addr === 'object' && addr ? addr.port : 0;
    this.server = server;
  }

  /** Changes the mode of new and open connections at once. */
  set(setting: FaultSetting): void {
    if (setting.mode === 'latency' && (setting.latencyMs === undefined || setting.latencyMs < 0)) throw new FaultModeError('latency mode needs latencyMs >= 0');
    this.setting = setting.mode === 'latency' ? { mode: 'latency', latencyMs: setting.latencyMs ?? 0 } : { mode: setting.mode };
    this.since = new Date().toISOString();
    for (const link of [...this.links]) {
      if (setting.mode === 'refuse') {
        this.resets++;
        link.reset();
        this.links.delete(link);
        continue;
      }
      // Connections accepted during a hang reach the far side only now.
      if (setting.mode !== 'hang') link.open(this.upstreamHost, this.upstreamPort);
      link.update();
    }
  }

  stats(): FaultProxyStats {
    return {
      name: this.name, url: `tcp://${this.host}:${this.boundPort}`, upstream: `${this.upstreamHost}:${this.upstreamPort}`,
      mode: this.setting.mode, latency_ms: this.delayMs, since: this.since,
      connections_open: this.links.size, connections_total: this.total, connections_reset: this.resets, bytes_up: this.bytesUp, bytes_down: this.bytesDown,
    };
  }

  countUp(n: number): void {
    this.bytesUp += n;
  }

  countDown(n: number): void {
    this.bytesDown += n;
  }

  /** Stops listening and drops every connection. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const link of this.links) {
      link.client.destroy();
      link.upstream?.destroy();
    }
    this.links.clear();
    await closed;
  }

  private accept(client: Socket): void {
    this.total++;
    if (this.setting.mode === 'refuse') {
      this.resets++;
      resetSocket(client);
      return;
    }
    client.setNoDelay(true);
    const link = new Link(client, this, (l) => this.links.delete(l));
    this.links.add(link);
    if (this.setting.mode !== 'hang') link.open(this.upstreamHost, this.upstreamPort);
    link.update();
  }
}
