import { existsSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';

/** The parts of `./.stack/stack.json` (written by `kgents stack`) these tools read; anything else is ignored. */
export interface StackState {
  readonly url?: string;
  readonly instances?: readonly string[];
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
    const instances = Array.isArray(record.instances)
      ? record.instances
        .map((i: unknown) => (typeof i === 'string' ? i : typeof i === 'object' && i !== null && typeof (i as { url?: unknown }).url === 'string' ? (i as { url: string }).url : undefined))
        .filter((u): u is string => u !== undefined && normaliseUrl(u) !== undefined)
      : undefined;
    return { ...(url && { url }), ...(instances && instances.length > 0 && { instances }) };
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
