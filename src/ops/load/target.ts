import { existsSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';

/** The parts of `./.stack/stack.json` (written by `kgents stack`) these tools read; anything else is ignored. */
export interface StackState {
  readonly url?: string;
  /** Each API instance's own URL (`parts` of kind `api`), for per-instance /metrics. */
  readonly instances?: readonly string[];
  /** The stack's NATS servers, where run keys go when NATS_URLS is not set. */
  readonly natsUrls?: readonly string[];
}

function urlOf(item: unknown): string | undefined {
  if (typeof item === 'string') return item;
  if (typeof item !== 'object' || item === null) return undefined;
  const url = (item as { url?: unknown }).url;
  return typeof url === 'string' ? url : undefined;
}

/** Reads the local stack's state file if there is one; never throws. */
export function readStackState(cwd: string = process.cwd()): StackState | undefined {
  const file = join(cwd, '.stack', 'stack.json');
  if (!existsSync(file)) return undefined;
  try {
    const raw = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (typeof raw !== 'object' || raw === null) return undefined;
    const record = raw as Record<string, unknown>;
    const url = typeof record.url === 'string' && normaliseUrl(record.url) ? record.url : undefined;
    // stack.json lists API instances among its `parts` (kind "api"); a plain `instances` list is accepted too.
    const apiParts = Array.isArray(record.parts)
      ? record.parts.filter((p: unknown) => typeof p === 'object' && p !== null && (p as { kind?: unknown }).kind === 'api')
      : [];
    const listed: unknown[] = Array.isArray(record.instances) ? record.instances : apiParts;
    const instances = listed.map(urlOf).filter((u): u is string => u !== undefined && normaliseUrl(u) !== undefined);
    const natsUrls = Array.isArray(record.nats_urls) ? record.nats_urls.filter((u: unknown): u is string => typeof u === 'string' && u.startsWith('nats://')) : [];
    return { ...(url && { url }), ...(instances.length > 0 && { instances }), ...(natsUrls.length > 0 && { natsUrls }) };
  } catch {
    return undefined;
  }
}

/** An http(s) URL without a trailing slash, or undefined when it is not one. */
export function normaliseUrl(raw: string): string | undefined {
  try {
    const url = new URL(raw.trim());
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
    if (url.search || url.hash) return undefined;
    return url.toString().replace(/\/+$/, '');
  } catch {
    return undefined;
  }
}

export interface ProbeResult {
  readonly ok: boolean;
  readonly status?: number;
  readonly error?: string;
  readonly body?: string;
}

/** One GET (no keep-alive), for pre-flight checks and /metrics scrapes. Never throws. */
export function httpGet(url: string, options: { timeoutMs?: number; headers?: Record<string, string>; maxBytes?: number } = {}): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      resolve({ ok: false, error: 'bad URL' });
      return;
    }
    const doRequest = parsed.protocol === 'https:' ? httpsRequest : httpRequest;
    const maxBytes = options.maxBytes ?? 8 * 1024 * 1024;
    const req = doRequest(parsed, { method: 'GET', agent: false, headers: options.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= maxBytes) chunks.push(c);
      });
      res.on('end', () => resolve({ ok: true, status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (err) => resolve({ ok: false, error: err.message }));
    });
    req.setTimeout(options.timeoutMs ?? 5000, () => req.destroy(new Error(`no answer within ${options.timeoutMs ?? 5000} ms`)));
    req.on('error', (err) => resolve({ ok: false, error: (err as NodeJS.ErrnoException).code ?? err.message }));
    req.end();
  });
}
