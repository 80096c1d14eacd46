import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

export type ExportFailure = 'timeout' | 'network' | 'http_status' | 'aborted';

export type ExportResult =
  | { readonly ok: true; readonly rejected: number }
  | { readonly ok: false; readonly reason: ExportFailure; readonly detail: string };

/** Response bodies are read only for partialSuccess; more than this is a misbehaving collector. */
const MAX_RESPONSE_BYTES = 64 * 1024;

/**
 * Posts OTLP/HTTP JSON bodies to the collector. Every export settles within `timeoutMs`, whatever
 * the collector does (refuses, hangs after accepting, trickles a response): the request is then
 * destroyed, so a hanging collector holds one socket and one batch, never more.
 */
export class OtlpHttpTransport {
  private readonly url: URL;
  private readonly agent: HttpAgent;
  private readonly inflight = new Set<() => void>();
  private closed = false;

  constructor(url: string, private readonly timeoutMs: number) {
    this.url = new URL(url);
    const options = { keepAlive: true, maxSockets: 1 };
    this.agent = this.url.protocol === 'https:' ? new HttpsAgent(options) : new HttpAgent(options);
  }

  post(body: string): Promise<ExportResult> {
    if (this.closed) return Promise.resolve({ ok: false, reason: 'aborted', detail: 'exporter closed' });
    return new Promise<ExportResult>((resolve) => {
      let settled = false;
      const payload = Buffer.from(body, 'utf8');
      const send = this.url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(this.url, {
        method: 'POST',
        agent: this.agent,
        headers: { 'content-type': 'application/json', 'content-length': payload.length },
      });
      const finish = (result: ExportResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.inflight.delete(abort);
        if (!result.ok) req.destroy();
        resolve(result);
      };
      const abort = (): void => finish({ ok: false, reason: 'aborted', detail: 'export aborted at shutdown' });
      this.inflight.add(abort);
      const timer = setTimeout(() => finish({ ok: false, reason: 'timeout', detail: `no answer within ${this.timeoutMs} ms` }), this.timeoutMs);
      timer.unref();
      req.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, reason: 'network', detail: err.code ?? err.message }));
      req.on('response', (res: IncomingMessage) => readResponse(res, finish));
      req.end(payload);
    });
  }

  /** Settles every export in flight as aborted and closes idle sockets. */
  close(): void {
    this.closed = true;
    for (const abort of [...this.inflight]) abort();
    this.agent.destroy();
  }
}

function readResponse(res: IncomingMessage, finish: (r: ExportResult) => void): void {
  const status = res.statusCode ?? 0;
  const chunks: Buffer[] = [];
  let size = 0;
  res.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_RESPONSE_BYTES) chunks.push(chunk);
  });
  res.on('error', (err) => finish({ ok: false, reason: 'network', detail: err.message }));
  res.on('end', () => {
    if (status < 200 || status >= 300) {
      finish({ ok: false, reason: 'http_status', detail: `HTTP ${status}` });
      return;
    }
    finish({ ok: true, rejected: size <= MAX_RESPONSE_BYTES ? rejectedSpans(Buffer.concat(chunks).toString('utf8')) : 0 });
  });
}

/** OTLP partial success: the collector accepted the request but refused some spans. */
function rejectedSpans(body: string): number {
  if (!body.includes('rejectedSpans')) return 0;
  try {
    const parsed = JSON.parse(body) as { partialSuccess?: { rejectedSpans?: string | number } };
    const n = Number(parsed.partialSuccess?.rejectedSpans ?? 0);
    return Number.isFinite(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}
