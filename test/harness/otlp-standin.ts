import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** One span as the stand-in decoded it from an OTLP/HTTP JSON ExportTraceServiceRequest. */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly name: string;
  readonly kind: number;
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly attributes: Readonly<Record<string, string | number | boolean>>;
  readonly statusCode: number;
  readonly resource: Readonly<Record<string, string | number | boolean>>;
}

/**
 * How the stand-in answers: `accept` (200 with an empty partialSuccess), `hang` (reads the request,
 * never answers: a collector stuck behind a full pipeline), `error` (503).
 */
export type CollectorMode = 'accept' | 'hang' | 'error';

export interface OtlpStandIn {
  /** The base URL to use as OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** Export requests received (any mode). */
  readonly requests: number;
  /** Requests held open in `hang` mode right now. */
  readonly hanging: number;
  /** Bodies that did not decode as the OTLP JSON mapping defines it. */
  readonly malformed: string[];
  mode: CollectorMode;
  close(): Promise<void>;
}

type AnyValue = { stringValue?: string; boolValue?: boolean; intValue?: string | number; doubleValue?: number };
interface KeyValue { key: string; value: AnyValue }

function value(v: AnyValue): string | number | boolean {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  throw new Error(`unsupported AnyValue ${JSON.stringify(v)}`);
}

function attributes(list: KeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of list ?? []) out[kv.key] = value(kv.value);
  return out;
}

const HEX = (n: number): RegExp => new RegExp(`^[0-9a-f]{${n}}$`);

/** Decodes an ExportTraceServiceRequest in the OTLP JSON mapping, checking the fields' encodings. */
export function decodeOtlpJson(body: string): ReceivedSpan[] {
  const req = JSON.parse(body) as { resourceSpans?: { resource?: { attributes?: KeyValue[] }; scopeSpans?: { spans?: Record<string, unknown>[] }[] }[] };
  const out: ReceivedSpan[] = [];
  for (const rs of req.resourceSpans ?? []) {
    const resource = attributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        const traceId = String(s.traceId);
        const spanId = String(s.spanId);
        const parent = typeof s.parentSpanId === 'string' && s.parentSpanId !== '' ? s.parentSpanId : undefined;
        if (!HEX(32).test(traceId) || !HEX(16).test(spanId) || (parent !== undefined && !HEX(16).test(parent))) throw new Error(`bad ids in ${JSON.stringify(s)}`);
        const start = String(s.startTimeUnixNano);
        const end = String(s.endTimeUnixNano);
        if (!/^\d+$/.test(start) || !/^\d+$/.test(end)) throw new Error(`bad times in ${JSON.stringify(s)}`);
        if (typeof s.kind !== 'number') throw new Error(`kind must be an integer: ${JSON.stringify(s)}`);
        out.push({
          traceId, spanId, parentSpanId: parent, name: String(s.name), kind: s.kind, startNs: BigInt(start), endNs: BigInt(end),
          attributes: attributes(s.attributes as KeyValue[] | undefined),
          statusCode: Number((s.status as { code?: number } | undefined)?.code ?? 0), resource,
        });
      }
    }
  }
  return out;
}

/** A local OTLP/HTTP collector stand-in (JSON encoding), on a free loopback port. */
export async function startOtlpStandIn(mode: CollectorMode = 'accept'): Promise<OtlpStandIn> {
  const spans: ReceivedSpan[] = [];
  const malformed: string[] = [];
  const held = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  let requests = 0;
  const state = { mode };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests++;
      if (state.mode === 'hang') {
        held.add(res);
        res.on('close', () => held.delete(res));
        return;
      }
      if (state.mode === 'error') {
        res.writeHead(503).end();
        return;
      }
      const body = Buffer.concat(chunks).toString('utf8');
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !String(req.headers['content-type']).startsWith('application/json')) {
        malformed.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
        res.writeHead(404).end();
        return;
      }
      try {
        spans.push(...decodeOtlpJson(body));
      } catch (err) {
        malformed.push(err instanceof Error ? err.message : String(err));
        res.writeHead(400).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"partialSuccess":{}}');
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    spans, malformed,
    get requests() {
      return requests;
    },
    get hanging() {
      return held.size;
    },
    get mode() {
      return state.mode;
    },
    set mode(m: CollectorMode) {
      state.mode = m;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
