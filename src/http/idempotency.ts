import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IdempotencyStore } from '../domain/limits/ports.js';
import { ApiError } from '../errors/api-error.js';
import type { ApiMetrics } from '../observability/metrics.js';
import { inChildSpan } from '../observability/tracing.js';

const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;
/** How long an in-progress record blocks retries if this instance dies before finishing. */
const LOCK_TTL_S = 60;

export interface IdempotencyOptions {
  readonly store: IdempotencyStore;
  readonly metrics: ApiMetrics;
  readonly ttlS: number;
}

/** Identifies "the same request": method, route pattern and the parsed body. */
export function requestFingerprint(method: string, route: string, body: unknown): string {
  return createHash('sha256').update(`${method} ${route}\n`).update(JSON.stringify(body ?? null)).digest('base64url');
}

/**
 * Starts an idempotent request, or answers it from the stored first response. Returns true when the
 * reply was sent here (a replay) and the handler must not run.
 */
export async function beginIdempotent(opts: IdempotencyOptions, request: FastifyRequest, reply: FastifyReply, tenant: string): Promise<boolean> {
  const header = request.headers['idempotency-key'];
  if (header === undefined || request.method !== 'POST') return false;
  if (typeof header !== 'string' || !KEY_PATTERN.test(header)) {
    throw new ApiError('ERR_IDEMPOTENCY_KEY_INVALID', 'Idempotency-Key must be 1-255 printable ASCII characters without spaces.');
  }
  const key = `${tenant}:${header}`;
  const fingerprint = requestFingerprint(request.method, request.routeOptions.url ?? request.url, request.body);
  const outcome = await inChildSpan(request.span, 'idempotency.begin', 'client', request.span && { 'kgents.store.mode': opts.store.mode },
    () => opts.store.begin(key, fingerprint, LOCK_TTL_S));
  switch (outcome.state) {
    case 'started':
      opts.metrics.idempotency.inc({ outcome: 'started' });
      request.idempotency = { key, fingerprint };
      return false;
    case 'in_progress':
      opts.metrics.idempotency.inc({ outcome: 'in_progress' });
      throw new ApiError('ERR_IDEMPOTENCY_IN_PROGRESS', 'A request with this Idempotency-Key is still in progress; retry shortly.', undefined, { 'retry-after': '1' });
    case 'mismatch':
      opts.metrics.idempotency.inc({ outcome: 'mismatch' });
      throw new ApiError('ERR_IDEMPOTENCY_MISMATCH', 'This Idempotency-Key was already used with a different request body or endpoint.');
    case 'replay': {
      opts.metrics.idempotency.inc({ outcome: 'replayed' });
      const { response } = outcome;
      await reply.code(response.status).headers(response.headers).header('idempotent-replayed', 'true').send(response.body);
      return true;
    }
  }
}

/** Keeps the first response for replays; a 5xx is forgotten instead, so the client's retry runs again. */
export async function finishIdempotent(opts: IdempotencyOptions, request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<void> {
  const pending = request.idempotency;
  if (!pending) return;
  request.idempotency = undefined;
  if (reply.statusCode >= 500) {
    await opts.store.abandon(pending.key);
    return;
  }
  const body = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : JSON.stringify(payload ?? null);
  const contentType = reply.getHeader('content-type');
  await inChildSpan(request.span, 'idempotency.complete', 'client', request.span && { 'kgents.store.mode': opts.store.mode }, () => opts.store.complete(pending.key, pending.fingerprint, {
    status: reply.statusCode,
    headers: { 'content-type': typeof contentType === 'string' ? contentType : 'application/json; charset=utf-8' },
    body,
  }, opts.ttlS));
}
