/**
 * A minimal client for OpenMeter's ingest endpoint (POST /api/v1/events). It sends one batch and
 * says what the exporter should do with the answer; it never retries by itself.
 */

/** Why an attempt did not succeed; also the `reason` label of kgents_exporter_failures_total. */
export type FailureReason =
  | 'rate_limited'
  | 'server_error'
  | 'timeout'
  | 'network'
  | 'unauthorized'
  | 'endpoint'
  | 'bad_request'
  | 'too_large'
  | 'rejected';

export type PostResult =
  | { readonly kind: 'ok'; readonly status: number }
  /**
   * Try the same batch again later. Also used for 401/403 (a wrong API key) and 404/405 (a wrong
   * OPENMETER_URL): those are configuration faults, and dead-lettering every event because of one
   * would lose billing data.
   */
  | { readonly kind: 'retryable'; readonly reason: FailureReason; readonly status?: number; readonly detail: string; readonly retryAfterMs?: number }
  /** OpenMeter refused the content of the batch (400, 413, 422, ...): retrying it cannot help. */
  | { readonly kind: 'invalid'; readonly reason: FailureReason; readonly status: number; readonly detail: string };

export interface OpenMeterClientOptions {
  /** Base URL, e.g. https://openmeter.cloud; events go to `<url>/api/v1/events`. */
  readonly url: string;
  /** Bearer token. Never logged or returned. */
  readonly apiKey: string;
  /** Per-request timeout. Default 10000 ms. */
  readonly timeoutMs?: number;
  /** Longest reason text kept from an error response. Default 500 characters. */
  readonly maxDetailChars?: number;
  /** For tests: a fetch replacement. */
  readonly fetch?: typeof fetch;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_DETAIL = 500;
/** Longest Retry-After honoured; a larger value (or a date far ahead) is clamped to this. */
export const MAX_RETRY_AFTER_MS = 300_000;

export const BATCH_CONTENT_TYPE = 'application/cloudevents-batch+json';
export const SINGLE_CONTENT_TYPE = 'application/cloudevents+json';

/** The ingest URL for a base URL, tolerating a trailing slash. */
export function ingestUrl(base: string): string {
  return `${base.replace(/\/+$/, '')}/api/v1/events`;
}

/** Parses Retry-After (delta seconds or an HTTP date) into milliseconds from `now`; undefined when absent or unparsable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (trimmed === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.min(Math.round(Number(trimmed) * 1000), MAX_RETRY_AFTER_MS);
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.min(Math.max(0, at - now), MAX_RETRY_AFTER_MS);
}

/** Replaces every occurrence of the secrets in `text` and drops control characters. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length > 0) out = out.split(secret).join('[redacted]');
  }
  // eslint-disable-next-line no-control-regex
  return out.replace(/[\u0000-\u001f\u007f]+/g, ' ');
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

/** The human part of a problem+json body (title/detail), else the raw text. */
function reasonFromBody(body: string, contentType: string | null): string {
  if (contentType !== null && /json/i.test(contentType)) {
    try {
      const parsed: unknown = JSON.parse(body);
      if (parsed !== null && typeof parsed === 'object') {
        const p = parsed as Record<string, unknown>;
        const parts = [p.title, p.detail, p.message, p.error].filter((v): v is string => typeof v === 'string' && v.trim() !== '');
        if (parts.length > 0) return [...new Set(parts)].join(': ');
      }
    } catch {
      // not JSON after all: use the text
    }
  }
  return body.trim();
}

function classifyStatus(status: number): { kind: 'retryable' | 'invalid'; reason: FailureReason } {
  if (status === 429) return { kind: 'retryable', reason: 'rate_limited' };
  if (status === 408) return { kind: 'retryable', reason: 'timeout' };
  if (status >= 500) return { kind: 'retryable', reason: 'server_error' };
  if (status === 401 || status === 403) return { kind: 'retryable', reason: 'unauthorized' };
  if (status === 404 || status === 405) return { kind: 'retryable', reason: 'endpoint' };
  if (status === 413) return { kind: 'invalid', reason: 'too_large' };
  if (status === 400 || status === 422) return { kind: 'invalid', reason: 'bad_request' };
  if (status >= 400) return { kind: 'invalid', reason: 'rejected' };
  // 1xx/3xx: fetch follows redirects, so this is something odd; try again rather than drop data
  return { kind: 'retryable', reason: 'server_error' };
}

export class OpenMeterClient {
  readonly endpoint: string;
  private readonly timeoutMs: number;
  private readonly maxDetail: number;
  private readonly secrets: readonly string[];
  private readonly doFetch: typeof fetch;

  constructor(private readonly options: OpenMeterClientOptions) {
    this.endpoint = ingestUrl(options.url);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxDetail = options.maxDetailChars ?? DEFAULT_MAX_DETAIL;
    this.secrets = options.apiKey.length > 0 ? [options.apiKey] : [];
    this.doFetch = options.fetch ?? fetch;
  }

  /** The ingest URL with any user:password@ removed, for logs. */
  get displayUrl(): string {
    return this.endpoint.replace(/^([a-z]+:\/\/)[^@/]*@/i, '$1***@');
  }

  /**
   * Posts `events` (already-serialised CloudEvents JSON texts) as one batch. `signal` aborts the
   * request early (reported as retryable `network`, reason "aborted").
   */
  async postBatch(events: readonly string[], signal?: AbortSignal): Promise<PostResult> {
    return this.post(`[${events.join(',')}]`, BATCH_CONTENT_TYPE, signal);
  }

  /** Posts one serialised CloudEvent as application/cloudevents+json. */
  async postOne(event: string, signal?: AbortSignal): Promise<PostResult> {
    return this.post(event, SINGLE_CONTENT_TYPE, signal);
  }

  private async post(body: string, contentType: string, signal: AbortSignal | undefined): Promise<PostResult> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const combined = signal ? AbortSignal.any([timeout, signal]) : timeout;
    let res: Response;
    try {
      res = await this.doFetch(this.endpoint, {
        method: 'POST',
        headers: {
          'content-type': contentType,
          accept: 'application/json, application/problem+json',
          authorization: `Bearer ${this.options.apiKey}`,
        },
        body,
        signal: combined,
      });
    } catch (err) {
      if (timeout.aborted) return { kind: 'retryable', reason: 'timeout', detail: `no answer from ${this.displayUrl} within ${this.timeoutMs} ms` };
      if (signal?.aborted) return { kind: 'retryable', reason: 'network', detail: 'aborted' };
      return { kind: 'retryable', reason: 'network', detail: this.clean(`${this.displayUrl}: ${describeError(err)}`) };
    }

    if (res.status >= 200 && res.status < 300) {
      await res.body?.cancel().catch(() => undefined);
      return { kind: 'ok', status: res.status };
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      if (timeout.aborted) return { kind: 'retryable', reason: 'timeout', status: res.status, detail: `response body from ${this.displayUrl} not read within ${this.timeoutMs} ms` };
      text = describeError(err);
    }
    const reasonText = reasonFromBody(text, res.headers.get('content-type'));
    const detail = this.clean(`HTTP ${res.status}${reasonText ? `: ${reasonText}` : ''}`);
    const { kind, reason } = classifyStatus(res.status);
    if (kind === 'invalid') return { kind, reason, status: res.status, detail };
    const retryAfterMs = res.status === 429 || res.status === 503 ? parseRetryAfter(res.headers.get('retry-after')) : undefined;
    return { kind, reason, status: res.status, detail, ...(retryAfterMs !== undefined && { retryAfterMs }) };
  }

  private clean(text: string): string {
    return truncate(redact(text, this.secrets), this.maxDetail);
  }
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as Error & { cause?: unknown }).cause;
  const causeText = cause instanceof Error ? cause.message : typeof cause === 'string' ? cause : '';
  return causeText && !err.message.includes(causeText) ? `${err.message} (${causeText})` : err.message;
}
