import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { FaultProxy, type FaultProxyStats, type FaultSetting } from '../fault/proxy.js';
import { PartStateError } from './errors.js';

/** The stand-in OpenTelemetry collector of a stack started with `otelFaults`, as the stack reports it. */
export interface OtelCollectorState extends FaultProxyStats {
  /** What the API instances have as OTEL_EXPORTER_OTLP_ENDPOINT (the fault proxy). */
  readonly endpoint: string;
  /** OTLP/HTTP export requests the sink answered 200. */
  readonly export_requests: number;
  /** Spans in those requests. */
  readonly spans_received: number;
}

/**
 * Faults between the API instances and their OpenTelemetry collector (chaos: observability-down).
 * Only a stack started with `otelFaults` (`kgents stack up --otel-faults`) has the collector.
 */
export interface OtelFaultControl {
  otelCollector(): Promise<OtelCollectorState>;
  /** hang: the collector accepts and never answers; refuse: connections reset; pass: heal. */
  setOtelFault(setting: FaultSetting): Promise<OtelCollectorState>;
}

export function hasOtelFaults<T extends object>(control: T): control is T & OtelFaultControl {
  return typeof (control as Partial<OtelFaultControl>).setOtelFault === 'function' && typeof (control as Partial<OtelFaultControl>).otelCollector === 'function';
}

export const NO_OTEL_COLLECTOR = 'this stack runs without a stand-in OpenTelemetry collector; start it with kgents stack up --otel-faults (Stack option otelFaults: true)';

/** Counts spans in an OTLP/HTTP JSON body without keeping it. */
function countSpans(body: string): number {
  try {
    const req = JSON.parse(body) as { resourceSpans?: { scopeSpans?: { spans?: unknown[] }[] }[] };
    let n = 0;
    for (const rs of req.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) n += ss.spans?.length ?? 0;
    return n;
  } catch {
    return 0;
  }
}

/**
 * A span sink that answers OTLP/HTTP JSON exports like a collector (200, spans counted, then
 * discarded), behind a TCP fault proxy that the chaos scenario switches to hang or refuse.
 */
export class OtelFaultCollector {
  private server: Server | undefined;
  private proxy: FaultProxy | undefined;
  private readonly sockets = new Set<Socket>();
  private requests = 0;
  private spans = 0;

  get enabled(): boolean {
    return this.proxy !== undefined;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/v1/traces') {
          res.writeHead(404).end();
          return;
        }
        this.requests++;
        this.spans += countSpans(Buffer.concat(chunks).toString('utf8'));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    this.server = server;
    const proxy = new FaultProxy({ upstreamPort: (server.address() as AddressInfo).port, name: 'otel-collector' });
    await proxy.start();
    this.proxy = proxy;
  }

  /** OTEL_EXPORTER_OTLP_ENDPOINT for the API instances. */
  endpoint(): string {
    if (!this.proxy) throw new PartStateError(NO_OTEL_COLLECTOR);
    return `http://127.0.0.1:${this.proxy.port}`;
  }

  state(): OtelCollectorState {
    if (!this.proxy) throw new PartStateError(NO_OTEL_COLLECTOR);
    return { ...this.proxy.stats(), endpoint: this.endpoint(), export_requests: this.requests, spans_received: this.spans };
  }

  set(setting: FaultSetting): OtelCollectorState {
    if (!this.proxy) throw new PartStateError(NO_OTEL_COLLECTOR);
    this.proxy.set(setting);
    return this.state();
  }

  async stop(): Promise<void> {
    await this.proxy?.stop();
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    this.proxy = undefined;
    this.server = undefined;
  }
}
