import { Agent, request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

/** What the driver saw from the one instance it pushes toward its memory limit. */
export interface PressureTally {
  readonly requests: number;
  /** Answers by status code ("503" counts only shed answers with ERR_OVERLOADED separately below). */
  readonly statuses: Readonly<Record<string, number>>;
  /** 503 ERR_OVERLOADED answers, and how many of them carried Retry-After. */
  readonly shed: number;
  readonly shedWithRetryAfter: number;
  /** Connections refused or reset: the process was gone (or restarting). */
  readonly connectionErrors: number;
  readonly firstShedAt: number | null;
  readonly firstShedRetryAfter: string | null;
  readonly firstShedReason: string | null;
  readonly firstConnectionErrorAt: number | null;
}

/**
 * Concurrent keep-alive GETs straight at one API instance (not through the balancer), as fast as it
 * answers. Each admitted request is ordinary work (here an unauthenticated affordances call, 401);
 * with TEST_RETAIN_BYTES_PER_REQUEST set on the instance each one also holds heap for a while.
 */
export class MemoryPressureDriver {
  private readonly agent: Agent;
  private running = false;
  private loops: Promise<void>[] = [];
  private tally = {
    requests: 0, statuses: {} as Record<string, number>, shed: 0, shedWithRetryAfter: 0, connectionErrors: 0,
    firstShedAt: null as number | null, firstShedRetryAfter: null as string | null, firstShedReason: null as string | null, firstConnectionErrorAt: null as number | null,
  };

  constructor(private readonly url: string, private readonly concurrency: number, private readonly onShed?: (t: PressureTally) => void) {
    this.agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  }

  start(): void {
    this.running = true;
    this.loops = Array.from({ length: this.concurrency }, () => this.loop());
  }

  async stop(): Promise<PressureTally> {
    this.running = false;
    await Promise.all(this.loops);
    this.agent.destroy();
    return this.current();
  }

  current(): PressureTally {
    return { ...this.tally, statuses: { ...this.tally.statuses } };
  }

  private async loop(): Promise<void> {
    while (this.running) {
      try {
        await this.once();
      } catch {
        this.tally.connectionErrors++;
        this.tally.firstConnectionErrorAt ??= Date.now();
        await sleep(100);
      }
    }
  }

  private once(): Promise<void> {
    const target = new URL('/v1/agentese/affordances?path=world.house', this.url);
    return new Promise((resolve, reject) => {
      const req = request(target, { agent: this.agent, timeout: 10_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          const status = String(res.statusCode ?? 0);
          this.tally.requests++;
          this.tally.statuses[status] = (this.tally.statuses[status] ?? 0) + 1;
          if (res.statusCode === 503 && body.includes('"ERR_OVERLOADED"')) this.recordShed(res.headers['retry-after'], body);
          resolve();
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end();
    });
  }

  private recordShed(retryAfter: string | string[] | undefined, body: string): void {
    this.tally.shed++;
    if (typeof retryAfter === 'string' && retryAfter !== '') this.tally.shedWithRetryAfter++;
    if (this.tally.firstShedAt !== null) return;
    this.tally.firstShedAt = Date.now();
    this.tally.firstShedRetryAfter = typeof retryAfter === 'string' ? retryAfter : null;
    this.tally.firstShedReason = /"reason":"([a-z_]+)"/.exec(body)?.[1] ?? null;
    this.onShed?.(this.current());
  }
}
