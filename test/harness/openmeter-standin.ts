import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A local HTTP server that follows OpenMeter's ingest contract, for tests only:
 * - POST /api/v1/events, `application/cloudevents+json` (one event) or
 *   `application/cloudevents-batch+json` (an array);
 * - `Authorization: Bearer <apiKey>` or 401;
 * - every event needs specversion "1.0", id, source, type and subject (OpenMeter groups by subject),
 *   and a parseable time when present; otherwise the whole request gets 400 application/problem+json;
 * - 204 on success; an event whose id+source was seen before is accepted again and stored once.
 */

export interface StandInEvent {
  readonly specversion: string;
  readonly id: string;
  readonly source: string;
  readonly type: string;
  readonly subject: string;
  readonly time?: string;
  readonly data?: unknown;
  readonly [attr: string]: unknown;
}

export interface StandInRequest {
  /** performance.now() when the request arrived. */
  readonly at: number;
  /** performance.now() when it was answered. */
  readonly answeredAt: number;
  readonly status: number;
  /** Events in the body (0 when it was not parsed). */
  readonly events: number;
  /** Whether the client was still there to read the answer. */
  readonly clientWaited: boolean;
}

export interface OpenMeterStandIn {
  readonly url: string;
  /** Stored events, unique by id+source, in arrival order. */
  received(): StandInEvent[];
  /** Events in accepted (2xx) requests, duplicates included. */
  readonly deliveries: number;
  /** Every request answered, any status, in order. */
  readonly requests: readonly StandInRequest[];
  /** Answers `status` (default 500, problem+json) to every request for the next `ms`; failFor(0) ends it. */
  failFor(ms: number, status?: number, options?: { retryAfter?: string }): void;
  /** Holds every request arriving in the next `ms` until the window ends, then processes it (and stores its events) normally. */
  hangFor(ms: number): void;
  /** A batch containing one of these ids gets 400 problem+json naming it. */
  rejectIds(ids: Iterable<string>): void;
  close(): Promise<void>;
}

export interface StandInOptions {
  readonly apiKey: string;
  /** Largest body accepted. Default 8 MiB. */
  readonly maxBodyBytes?: number;
}

class HttpProblem extends Error {
  constructor(readonly status: number, readonly title: string, detail: string) {
    super(detail);
  }
}

const TITLES: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 405: 'Method Not Allowed', 413: 'Payload Too Large',
  415: 'Unsupported Media Type', 429: 'Too Many Requests', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable',
};

function validateEvent(raw: unknown, index: number): StandInEvent {
  const where = `event ${index}`;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new HttpProblem(400, 'Bad Request', `${where}: not a JSON object`);
  const ev = raw as Record<string, unknown>;
  if (ev.specversion !== '1.0') throw new HttpProblem(400, 'Bad Request', `${where}: specversion must be "1.0"`);
  for (const attr of ['id', 'source', 'type', 'subject'] as const) {
    const v = ev[attr];
    if (typeof v !== 'string' || v === '') throw new HttpProblem(400, 'Bad Request', `${where}${typeof ev.id === 'string' ? ` (id ${ev.id})` : ''}: missing required attribute "${attr}"`);
  }
  if (ev.time !== undefined && (typeof ev.time !== 'string' || Number.isNaN(Date.parse(ev.time)))) {
    throw new HttpProblem(400, 'Bad Request', `${where} (id ${String(ev.id)}): time is not an RFC 3339 timestamp`);
  }
  return ev as StandInEvent;
}

async function readBody(req: IncomingMessage, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > max) throw new HttpProblem(413, 'Payload Too Large', `body larger than ${max} bytes`);
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function startOpenMeterStandIn(options: StandInOptions): Promise<OpenMeterStandIn> {
  const maxBody = options.maxBodyBytes ?? 8 * 1024 * 1024;
  const stored = new Map<string, StandInEvent>();
  const requests: StandInRequest[] = [];
  const rejected = new Set<string>();
  let deliveries = 0;
  let failUntil = 0;
  let failStatus = 500;
  let failRetryAfter: string | undefined;
  let hangUntil = 0;

  const problem = (res: ServerResponse, status: number, title: string, detail: string, extra: Record<string, string> = {}): void => {
    const body = JSON.stringify({ type: 'about:blank', title, status, detail });
    res.writeHead(status, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(body), ...extra });
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<{ status: number; events: number }> => {
    const url = new URL(req.url ?? '/', 'http://standin');
    if (url.pathname !== '/api/v1/events') throw new HttpProblem(404, 'Not Found', `no route ${url.pathname}`);
    if (req.method !== 'POST') throw new HttpProblem(405, 'Method Not Allowed', `${req.method ?? '?'} is not allowed; use POST`);
    // read first: a request held by hangFor is then processed even if the client has given up
    const body = await readBody(req, maxBody);
    const hold = hangUntil - performance.now();
    if (hold > 0) await sleep(hold);
    if (performance.now() < failUntil) {
      const title = TITLES[failStatus] ?? 'Error';
      problem(res, failStatus, title, 'stand-in failure window', failRetryAfter !== undefined ? { 'retry-after': failRetryAfter } : {});
      return { status: failStatus, events: 0 };
    }
    if (req.headers.authorization !== `Bearer ${options.apiKey}`) throw new HttpProblem(401, 'Unauthorized', 'missing or invalid bearer token');
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      throw new HttpProblem(400, 'Bad Request', 'body is not valid JSON');
    }
    let events: StandInEvent[];
    if (contentType === 'application/cloudevents+json') {
      events = [validateEvent(parsed, 0)];
    } else if (contentType === 'application/cloudevents-batch+json') {
      if (!Array.isArray(parsed)) throw new HttpProblem(400, 'Bad Request', 'a cloudevents batch must be a JSON array');
      events = parsed.map((e, i) => validateEvent(e, i));
    } else {
      throw new HttpProblem(400, 'Bad Request', `unsupported content type "${contentType}"; use application/cloudevents+json or application/cloudevents-batch+json`);
    }
    const bad = events.find((e) => rejected.has(e.id));
    if (bad) throw new HttpProblem(400, 'Bad Request', `event ${bad.id}: rejected by the stand-in (invalid event)`);
    for (const ev of events) {
      const key = `${ev.source}\u0000${ev.id}`;
      if (!stored.has(key)) stored.set(key, ev);
    }
    deliveries += events.length;
    res.writeHead(204);
    res.end();
    return { status: 204, events: events.length };
  };

  const server = createServer((req, res) => {
    const at = performance.now();
    let clientWaited = true;
    res.on('close', () => {
      if (!res.writableFinished) clientWaited = false;
    });
    void handle(req, res).then(
      (r) => requests.push({ at, answeredAt: performance.now(), status: r.status, events: r.events, clientWaited: clientWaited && !req.destroyed }),
      (err: unknown) => {
        const p = err instanceof HttpProblem ? err : new HttpProblem(500, 'Internal Server Error', String(err));
        if (!res.headersSent && !res.destroyed) problem(res, p.status, p.title, p.message);
        requests.push({ at, answeredAt: performance.now(), status: p.status, events: 0, clientWaited: clientWaited && !req.destroyed });
      },
    );
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    received: () => [...stored.values()],
    get deliveries() {
      return deliveries;
    },
    requests,
    failFor(ms, status = 500, opts = {}) {
      failUntil = performance.now() + ms;
      failStatus = status;
      failRetryAfter = opts.retryAfter;
    },
    hangFor(ms) {
      hangUntil = performance.now() + ms;
    },
    rejectIds(ids) {
      for (const id of ids) rejected.add(id);
    },
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
