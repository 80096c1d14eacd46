import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';

/** One metered call as the client saw it (times are Date.now() ms). */
export interface RequestRecord {
  /** Sent as x-request-id; the API copies it into the usage event's data.request_id. */
  readonly id: string;
  readonly start: number;
  readonly end: number;
  /** HTTP status; 0 when there was no answer (refused, reset, timed out). */
  readonly status: number;
  /** The error code of a failed answer (`ERR_...` from the body, or the socket error). */
  readonly error?: string;
  /** Which instance answered (the stack's balancer sets x-kgents-backend). */
  readonly backend?: string;
}

export interface ChaosLoadOptions {
  readonly url: string;
  readonly keys: readonly string[];
  /** Requests per second over all loops. */
  readonly rate: number;
  /** Parallel request loops (each at rate / concurrency; a hung request holds its loop). */
  readonly concurrency: number;
  /** Unique per run: request ids are `<prefix>-<n>`. */
  readonly idPrefix: string;
  readonly timeoutMs?: number;
  /** Send the request id as Idempotency-Key too (default false; see docs/chaos-baseline.md). */
  readonly idempotencyKeys?: boolean;
}

const BODY = JSON.stringify({ path: 'world.house.manifest' });

/**
 * Steady POST /v1/agentese/invoke load that keeps a record of every request, so the audit can match
 * each 2xx answer with its usage event. Deliberately simple (one thread, fixed pacing): chaos runs
 * need tens of requests per second and exact bookkeeping, not peak throughput (that is kgents load).
 */
export class ChaosLoad {
  readonly records: RequestRecord[] = [];
  private running = false;
  private loops: Promise<void>[] = [];
  private seq = 0;
  private readonly agent: HttpAgent;
  private readonly target: URL;
  private readonly listeners = new Set<(r: RequestRecord) => void>();

  constructor(private readonly options: ChaosLoadOptions) {
    if (options.keys.length === 0) throw new Error('chaos load needs at least one API key');
    this.target = new URL('/v1/agentese/invoke', options.url);
    const agentOptions = { keepAlive: true, maxSockets: options.concurrency };
    this.agent = this.target.protocol === 'https:' ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
  }

  /** Called with each finished request (the runner's detection watches them). */
  onRecord(fn: (r: RequestRecord) => void): void {
    this.listeners.add(fn);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const periodMs = (1000 * this.options.concurrency) / this.options.rate;
    this.loops = Array.from({ length: this.options.concurrency }, (_, i) => this.loop(periodMs, (periodMs * i) / this.options.concurrency));
  }

  /** Stops sending and waits for the requests in flight. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.agent.destroy();
  }

  private async loop(periodMs: number, offsetMs: number): Promise<void> {
    await sleep(offsetMs);
    let next = Date.now();
    while (this.running) {
      const record = await this.once();
      this.records.push(record);
      for (const fn of this.listeners) fn(record);
      next += periodMs;
      const wait = next - Date.now();
      // Behind schedule (a slow or hung request): carry on from now rather than bursting to catch up.
      if (wait > 0) await sleep(wait);
      else next = Date.now();
    }
  }

  private once(): Promise<RequestRecord> {
    const n = this.seq++;
    const id = `${this.options.idPrefix}-${n}`;
    const key = this.options.keys[n % this.options.keys.length] ?? '';
    const headers: Record<string, string> = {
      'content-type': 'application/json', 'content-length': String(Buffer.byteLength(BODY)), 'x-api-key': key, 'x-request-id': id,
    };
    if (this.options.idempotencyKeys === true) headers['idempotency-key'] = id;
    const start = Date.now();
    const doRequest = this.target.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve) => {
      let settled = false;
      const finish = (status: number, error?: string, backend?: string): void => {
        if (settled) return;
        settled = true;
        resolve({ id, start, end: Date.now(), status, ...(error !== undefined && { error }), ...(backend !== undefined && { backend }) });
      };
      const req = doRequest(this.target, { method: 'POST', agent: this.agent, headers }, (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        const backend = typeof res.headers['x-kgents-backend'] === 'string' ? res.headers['x-kgents-backend'] : undefined;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => {
          if (status >= 300) chunks.push(c);
        });
        res.on('end', () => finish(status, status >= 300 ? errorCode(Buffer.concat(chunks).toString('utf8')) : undefined, backend));
        res.on('error', (err) => finish(0, (err as NodeJS.ErrnoException).code ?? err.message, backend));
      });
      req.setTimeout(this.options.timeoutMs ?? 10_000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
      req.on('error', (err) => finish(0, (err as NodeJS.ErrnoException).code ?? err.message));
      req.end(BODY);
    });
  }
}

function errorCode(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown } };
    if (typeof parsed.error?.code === 'string') return parsed.error.code;
  } catch {
    // not JSON: fall through
  }
  return body.slice(0, 60) || 'no body';
}
