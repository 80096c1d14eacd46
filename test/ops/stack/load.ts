import { randomUUID } from 'node:crypto';
import { Agent, request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

/** What a light test load saw, per kind of request. */
export interface LoadResult {
  readonly ok: number;
  /**
   * Requests that did not get a 200, by kind: `get` (GET resolve), `keyed` (POST invoke with an
   * Idempotency-Key), `plain` (POST invoke without one), as "kind status body-or-error".
   */
  readonly failures: Readonly<Record<Kind, readonly string[]>>;
  /** Which instance (x-kgents-backend) answered how many. */
  readonly byBackend: Readonly<Record<string, number>>;
}

export interface RunningLoad {
  stop(): Promise<LoadResult>;
  /** Requests answered so far. */
  answered(): number;
}

export type Kind = 'get' | 'keyed' | 'plain';

function once(baseUrl: string, key: string, kind: Kind, agent: Agent): Promise<{ status: number; backend: string }> {
  const url = new URL(baseUrl);
  const body = kind === 'get' ? undefined : JSON.stringify({ path: 'world.house.manifest' });
  const headers: Record<string, string> = { 'x-api-key': key };
  if (body) headers['content-type'] = 'application/json';
  if (kind === 'keyed') headers['idempotency-key'] = randomUUID();
  return new Promise((resolve, reject) => {
    const req = request({
      host: url.hostname, port: Number(url.port), agent, headers,
      method: kind === 'get' ? 'GET' : 'POST', path: kind === 'get' ? '/v1/agentese/resolve?path=world.house' : '/v1/agentese/invoke',
    }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, backend: String(res.headers['x-kgents-backend'] ?? (text.slice(0, 120) || '?')) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Light load through the balancer on kept-alive connections: `workers` loops, each cycling GET
 * resolve, POST invoke with an Idempotency-Key and (if `plainPosts`) POST invoke without one.
 */
export function startLoad(baseUrl: string, key: string, options: { workers?: number; pauseMs?: number; plainPosts?: boolean } = {}): RunningLoad {
  const agent = new Agent({ keepAlive: true, maxSockets: options.workers ?? 4 });
  const kinds: Kind[] = options.plainPosts === false ? ['get', 'keyed'] : ['get', 'keyed', 'plain'];
  let running = true;
  let ok = 0;
  const failures: Record<Kind, string[]> = { get: [], keyed: [], plain: [] };
  const byBackend: Record<string, number> = {};
  const loops = Array.from({ length: options.workers ?? 4 }, async (_, w) => {
    let i = w;
    while (running) {
      const kind = kinds[i++ % kinds.length] ?? 'get';
      try {
        const r = await once(baseUrl, key, kind, agent);
        if (r.status === 200) {
          ok++;
          byBackend[r.backend] = (byBackend[r.backend] ?? 0) + 1;
        } else {
          failures[kind].push(`${kind} ${r.status} ${r.backend}`);
        }
      } catch (err) {
        failures[kind].push(`${kind} ${(err as Error).message}`);
      }
      await sleep(options.pauseMs ?? 5);
    }
  });
  return {
    answered: () => ok,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return { ok, failures, byBackend };
    },
  };
}

/** Polls until `check` holds; fails with `what` after the deadline. */
export async function eventually(what: string, check: () => boolean | Promise<boolean>, deadlineMs: number): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > deadlineMs) throw new Error(`${what}: not within ${deadlineMs} ms`);
    await sleep(50);
  }
  return Date.now() - started;
}
