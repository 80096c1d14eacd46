import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/**
 * The load generator's HTTP/1.1 client: keep-alive connections over raw sockets, one request at a time
 * per connection (no pipelining), requests prepared once as bytes, a small response parser
 * (Content-Length, chunked, read-until-close). It does a fraction of node:http's work per request, so
 * one generator thread can drive a few times more requests per second before it, rather than the target,
 * sets the pace. `send` never throws: failures are outcomes.
 */

/** How a request ended. `status` 0 is a network error or a timeout, named by `code`. */
export interface Outcome {
  readonly status: number;
  /** The API's error code (`error.code` of the body) for statuses >= 400, `HTTP_<status>` when the body has none; the network error code for status 0. */
  readonly code: string | undefined;
  readonly bytes: number;
}

/** Failed as in k6's http_req_failed: no response, or a status outside 200-399. */
export function isFailure(status: number): boolean {
  return status < 200 || status >= 400;
}

type Done = (outcome: Outcome) => void;

const MAX_ERROR_BODY = 4096;
const MAX_HEAD = 64 * 1024;
const CRLFCRLF = Buffer.from('\r\n\r\n');

function errorCode(status: number, body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown } };
    if (typeof parsed.error?.code === 'string' && parsed.error.code.length <= 64) return parsed.error.code;
  } catch {
    // not JSON
  }
  return `HTTP_${status}`;
}

function networkCode(err: unknown): string {
  const code = err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined;
  return typeof code === 'string' && code !== '' ? code : 'NETWORK_ERROR';
}

class ProtocolError extends Error {
  readonly code = 'HTTP_PROTOCOL_ERROR';
}

type BodyMode = 'length' | 'chunked' | 'close' | 'none';
type ChunkState = 'size' | 'data' | 'data-crlf' | 'trailer';

/** One keep-alive connection and the response it is reading. */
class Connection {
  busy = false;
  alive = true;
  deadline = 0;
  private done: Done | undefined;
  private head: Buffer | undefined;
  private status = 0;
  private keepAlive = true;
  private mode: BodyMode = 'none';
  private remaining = 0;
  private chunkState: ChunkState = 'size';
  private line = '';
  private bytes = 0;
  private errorBody = '';
  private keepBody = false;

  constructor(readonly socket: Socket, private readonly onFree: (c: Connection) => void, private readonly onGone: (c: Connection) => void) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err) => this.fail(networkCode(err)));
    socket.on('close', () => this.fail('ECONNRESET'));
  }

  start(request: Buffer, deadline: number, done: Done): void {
    this.busy = true;
    this.deadline = deadline;
    this.done = done;
    this.head = undefined;
    this.status = 0;
    this.mode = 'none';
    this.bytes = 0;
    this.errorBody = '';
    this.keepBody = false;
    this.chunkState = 'size';
    this.line = '';
    this.socket.write(request);
  }

  /** Ends the request in flight (if any) with `code` and closes the connection. */
  fail(code: string): void {
    const done = this.done;
    // A response delimited by the end of the connection is complete when it closes.
    const outcome: Outcome = this.mode === 'close' && this.status > 0 && code === 'ECONNRESET' ? this.outcome() : { status: 0, code, bytes: this.bytes };
    this.done = undefined;
    this.busy = false;
    if (this.alive) {
      this.alive = false;
      this.socket.destroy();
      this.onGone(this);
    }
    done?.(outcome);
  }

  private onEnd(): void {
    this.fail('ECONNRESET');
  }

  private outcome(): Outcome {
    return { status: this.status, code: this.keepBody ? errorCode(this.status, this.errorBody) : undefined, bytes: this.bytes };
  }

  private complete(): void {
    const done = this.done;
    const outcome = this.outcome();
    this.done = undefined;
    this.busy = false;
    // Free the connection first (the outcome is already taken), so the next request can reuse it at once.
    if (!this.keepAlive) {
      this.alive = false;
      this.socket.destroy();
      this.onGone(this);
    } else {
      this.onFree(this);
    }
    done?.(outcome);
  }

  private onData(chunk: Buffer): void {
    if (!this.done) {
      // Bytes nobody asked for: the server is not speaking HTTP/1.1 request-response.
      this.fail('HTTP_PROTOCOL_ERROR');
      return;
    }
    this.bytes += chunk.length;
    try {
      let data = chunk;
      if (this.status === 0) {
        const buf = this.head ? Buffer.concat([this.head, chunk]) : chunk;
        const end = buf.indexOf(CRLFCRLF);
        if (end < 0) {
          if (buf.length > MAX_HEAD) throw new ProtocolError('response head too large');
          this.head = buf;
          return;
        }
        this.head = undefined;
        const informational = this.parseHead(buf.toString('latin1', 0, end));
        data = buf.subarray(end + 4);
        if (informational) {
          // 1xx: the real response follows.
          this.status = 0;
          if (data.length > 0) this.onData(data);
          return;
        }
        if (this.mode === 'none' || (this.mode === 'length' && this.remaining === 0)) {
          this.complete();
          return;
        }
      }
      this.body(data);
    } catch (err) {
      this.fail(err instanceof ProtocolError ? err.code : 'HTTP_PROTOCOL_ERROR');
    }
  }

  /**
   * Parses the status line and the three headers that frame the body; true for a 1xx response.
   * It searches the lower-cased head instead of splitting it into lines: this runs once per response
   * and was the generator's largest cost of its own (every string made here is per request).
   */
  private parseHead(head: string): boolean {
    const statusLine = /^HTTP\/1\.([01]) (\d{3})/.exec(head);
    if (!statusLine) throw new ProtocolError('bad status line');
    this.status = Number(statusLine[2]);
    if (this.status >= 100 && this.status < 200 && this.status !== 101) return true;
    const lower = head.toLowerCase();
    const value = (name: string): string | undefined => {
      const at = lower.indexOf(`\r\n${name}:`);
      if (at < 0) return undefined;
      const from = at + name.length + 3;
      const end = lower.indexOf('\r\n', from);
      return lower.slice(from, end < 0 ? lower.length : end).trim();
    };
    let keepAlive = statusLine[1] === '1';
    const lengthText = value('content-length');
    const length = lengthText === undefined ? -1 : Number(lengthText);
    const chunked = value('transfer-encoding')?.includes('chunked') ?? false;
    const connection = value('connection');
    if (connection?.includes('close')) keepAlive = false;
    else if (connection?.includes('keep-alive')) keepAlive = true;
    this.keepAlive = keepAlive;
    this.keepBody = this.status >= 400;
    if (this.status === 204 || this.status === 304) {
      this.mode = 'none';
    } else if (chunked) {
      this.mode = 'chunked';
    } else if (length >= 0 && Number.isFinite(length)) {
      this.mode = 'length';
      this.remaining = length;
    } else {
      this.mode = 'close';
      this.keepAlive = false;
    }
    return false;
  }

  private keep(data: Buffer): void {
    if (this.keepBody && this.errorBody.length < MAX_ERROR_BODY) this.errorBody += data.toString('utf8');
  }

  private body(data: Buffer): void {
    if (this.mode === 'length') {
      const take = Math.min(this.remaining, data.length);
      this.keep(data.subarray(0, take));
      this.remaining -= take;
      if (this.remaining === 0) this.complete();
    } else if (this.mode === 'close') {
      this.keep(data);
    } else if (this.mode === 'chunked') {
      this.chunked(data);
    }
  }

  private chunked(data: Buffer): void {
    let i = 0;
    while (i < data.length) {
      if (this.chunkState === 'data') {
        const take = Math.min(this.remaining, data.length - i);
        this.keep(data.subarray(i, i + take));
        i += take;
        this.remaining -= take;
        if (this.remaining === 0) this.chunkState = 'data-crlf';
        continue;
      }
      const nl = data.indexOf(10, i);
      if (nl < 0) {
        if (this.chunkState !== 'data-crlf') this.line += data.toString('latin1', i);
        if (this.line.length > 4096) throw new ProtocolError('chunk line too long');
        return;
      }
      const line = (this.line + data.toString('latin1', i, nl)).replace(/\r$/, '');
      this.line = '';
      i = nl + 1;
      if (this.chunkState === 'data-crlf') {
        this.chunkState = 'size';
      } else if (this.chunkState === 'size') {
        const size = parseInt(line.split(';')[0] ?? '', 16);
        if (!Number.isFinite(size) || size < 0) throw new ProtocolError('bad chunk size');
        if (size === 0) {
          this.chunkState = 'trailer';
        } else {
          this.remaining = size;
          this.chunkState = 'data';
        }
      } else if (line === '') {
        // the empty line after the trailers ends the body
        this.complete();
        return;
      }
    }
  }
}

export class LoadClient {
  private readonly url: URL;
  private readonly basePath: string;
  private readonly hostHeader: string;
  private readonly idle: Connection[] = [];
  private readonly all = new Set<Connection>();
  private readonly waiting: { request: Buffer; done: Done; deadline: number }[] = [];
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(target: string, private readonly maxSockets: number, private readonly timeoutMs: number) {
    this.url = new URL(target);
    if (this.url.protocol !== 'http:' && this.url.protocol !== 'https:') throw new Error(`unsupported protocol ${this.url.protocol} (use http: or https:)`);
    this.basePath = this.url.pathname.replace(/\/+$/, '');
    this.hostHeader = this.url.host;
    // One timer for all deadlines, not one per request.
    this.sweeper = setInterval(() => this.sweep(), Math.min(250, Math.max(10, timeoutMs / 4)));
    this.sweeper.unref();
  }

  /** The bytes of a request, to be prepared once and sent many times. */
  prepare(method: string, path: string, headers: Readonly<Record<string, string>>, body: string | undefined): Buffer {
    let head = `${method} ${this.basePath}${path} HTTP/1.1\r\nhost: ${this.hostHeader}\r\nuser-agent: kgents-load\r\naccept: */*\r\n`;
    for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
    const payload = body === undefined ? undefined : Buffer.from(body, 'utf8');
    if (payload) head += `content-length: ${payload.length}\r\n`;
    head += '\r\n';
    const headBuf = Buffer.from(head, 'latin1');
    return payload ? Buffer.concat([headBuf, payload]) : headBuf;
  }

  send(request: Buffer, done: Done): void {
    if (this.closed) {
      done({ status: 0, code: 'STOPPED', bytes: 0 });
      return;
    }
    const deadline = performance.now() + this.timeoutMs;
    const conn = this.idle.pop() ?? (this.all.size < this.maxSockets ? this.open() : undefined);
    if (conn) conn.start(request, deadline, done);
    else this.waiting.push({ request, done, deadline });
  }

  /** Closes every connection; requests in flight end with code STOPPED. */
  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const w of this.waiting.splice(0)) w.done({ status: 0, code: 'STOPPED', bytes: 0 });
    for (const c of [...this.all]) c.fail('STOPPED');
  }

  private open(): Connection {
    const port = Number(this.url.port || (this.url.protocol === 'https:' ? 443 : 80));
    const host = this.url.hostname.replace(/^\[|\]$/g, '');
    const socket = this.url.protocol === 'https:'
      ? tlsConnect({ host, port, servername: /^[\d.]+$|:/.test(host) ? undefined : host, ALPNProtocols: ['http/1.1'] })
      : netConnect({ host, port });
    const conn = new Connection(socket, (c) => this.free(c), (c) => this.gone(c));
    this.all.add(conn);
    return conn;
  }

  private free(conn: Connection): void {
    const next = this.waiting.shift();
    if (next) conn.start(next.request, next.deadline, next.done);
    else this.idle.push(conn);
  }

  private gone(conn: Connection): void {
    this.all.delete(conn);
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    if (!this.closed && this.waiting.length > 0 && this.all.size < this.maxSockets) {
      const next = this.waiting.shift();
      if (next) this.open().start(next.request, next.deadline, next.done);
    }
  }

  private sweep(): void {
    const now = performance.now();
    for (const c of this.all) if (c.busy && now > c.deadline) c.fail('TIMEOUT');
    while (this.waiting.length > 0 && (this.waiting[0]?.deadline ?? 0) < now) this.waiting.shift()?.done({ status: 0, code: 'TIMEOUT', bytes: 0 });
  }
}
