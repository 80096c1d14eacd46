import { setTimeout as sleep } from 'node:timers/promises';
import { httpGet } from '../load/target.js';

/** One /health/saas answer (or the lack of one). */
export interface HealthSample {
  readonly at: number;
  /** The base URL polled (the public URL or one instance). */
  readonly endpoint: string;
  readonly ok: boolean;
  /** `ok`, `degraded`, `http 503`, `unreachable`... */
  readonly status: string;
  /** components.nats.circuit and fallback_queue_depth, components.redis.mode, when present. */
  readonly circuit?: string;
  readonly queue_depth?: number;
  readonly redis_mode?: string;
}

interface SaasBody {
  readonly status?: unknown;
  readonly components?: { readonly nats?: { readonly circuit?: unknown; readonly fallback_queue_depth?: unknown }; readonly redis?: { readonly mode?: unknown } };
}

export function parseHealth(endpoint: string, at: number, status: number | undefined, body: string | undefined, error?: string): HealthSample {
  if (status === undefined) return { at, endpoint, ok: false, status: `unreachable${error ? ` (${error})` : ''}` };
  let parsed: SaasBody = {};
  try {
    parsed = JSON.parse(body ?? '') as SaasBody;
  } catch {
    // a proxy's HTML error page: the status code says enough
  }
  const word = typeof parsed.status === 'string' ? parsed.status : `http ${status}`;
  const nats = parsed.components?.nats;
  const redis = parsed.components?.redis;
  return {
    at, endpoint, ok: status === 200 && word === 'ok', status: status === 200 ? word : `http ${status}${typeof parsed.status === 'string' ? ` ${parsed.status}` : ''}`,
    ...(typeof nats?.circuit === 'string' && { circuit: nats.circuit }),
    ...(typeof nats?.fallback_queue_depth === 'number' && { queue_depth: nats.fallback_queue_depth }),
    ...(typeof redis?.mode === 'string' && { redis_mode: redis.mode }),
  };
}

/**
 * Polls GET /health/saas of every endpoint (the public URL and, on the local stack, each API
 * instance) every `intervalMs`, keeping every sample; a sample not `ok` is a detection signal, and
 * "all endpoints ok" is part of full recovery.
 */
export class HealthMonitor {
  readonly samples: HealthSample[] = [];
  private readonly latest = new Map<string, HealthSample>();
  private running = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly endpoints: () => Promise<readonly string[]>, private readonly intervalMs = 250, private readonly timeoutMs = 2000) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** Whether the latest sample of every endpoint polled in the last round is ok. */
  allOk(): boolean {
    if (this.latest.size === 0) return false;
    return [...this.latest.values()].every((s) => s.ok);
  }

  /** The latest sample per endpoint. */
  current(): HealthSample[] {
    return [...this.latest.values()];
  }

  /** Polls once now (also used to settle before the fault). */
  async pollOnce(): Promise<void> {
    let endpoints: readonly string[];
    try {
      endpoints = await this.endpoints();
    } catch {
      return;
    }
    const results = await Promise.all(endpoints.map(async (endpoint) => {
      const at = Date.now();
      const r = await httpGet(`${endpoint}/health/saas`, { timeoutMs: this.timeoutMs, maxBytes: 256 * 1024 });
      return parseHealth(endpoint, at, r.ok ? r.status : undefined, r.body, r.error);
    }));
    // An endpoint that is no longer listed (a replaced instance) no longer counts.
    for (const key of [...this.latest.keys()]) if (!endpoints.includes(key)) this.latest.delete(key);
    for (const s of results) {
      this.samples.push(s);
      this.latest.set(s.endpoint, s);
    }
  }

  private async run(): Promise<void> {
    while (this.running) {
      const started = Date.now();
      await this.pollOnce();
      const wait = this.intervalMs - (Date.now() - started);
      if (wait > 0) await sleep(wait);
    }
  }
}
