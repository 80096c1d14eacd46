import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { AjvCompiler } from '@fastify/ajv-compiler';
import type { FastifyBaseLogger } from 'fastify';
import { parse as secureJsonParse } from 'secure-json-parse';
import type { Config } from '../config/load.js';
import type { KeyStore, Principal } from '../domain/tenancy/types.js';
import type { ApiError } from '../errors/api-error.js';
import { admissionOutcome, admissionRequest, type AdmissionOutcome } from './admission.js';
import { authenticate } from './auth.js';
import { errorBody, invalidJsonError, toApiError, validationError } from './errors.js';
import type { FastHandler } from './fast-paths.js';
import { completionFields } from './request-log.js';
import { performInvoke, type InvokeBody, type InvokeDeps } from './invoke-call.js';
import { INVOKE_PATH, INVOKE_POLICY, invokeBodySchema } from './routes/agentese.js';

export interface FastInvokeOptions extends InvokeDeps {
  readonly config: Pick<Config, 'BODY_LIMIT_BYTES' | 'LOG_REQUESTS' | 'RATE_LIMITS' | 'TOKEN_QUOTAS'>;
  readonly keys: KeyStore;
  /** false: every request goes to Fastify (the instance is closing, or shedding load). */
  readonly active: () => boolean;
  /** The same X-Request-Id as Fastify's genReqId gives. */
  readonly requestId: (req: IncomingMessage) => string;
  /** Ajv options exactly as given to Fastify (`ajv.customOptions`), so bodies are validated alike. */
  readonly ajvOptions: Readonly<Record<string, unknown>>;
  readonly log: FastifyBaseLogger;
}

const JSON_TYPE = 'application/json; charset=utf-8';
/** What Fastify's body parser also accepts; anything else (other parameters, odd spacing) goes to Fastify. */
const JSON_TYPES: ReadonlySet<string> = new Set(['application/json', 'application/json; charset=utf-8', 'application/json;charset=utf-8']);
/** As Fastify's own JSON parser (onProtoPoisoning and onConstructorPoisoning at their defaults). */
const PARSE_OPTIONS = Object.freeze({ protoAction: 'error', constructorAction: 'error' } as const);

/**
 * Answers `POST /v1/agentese/invoke` ahead of Fastify's router, for the common request only, with
 * the route's own parts: the same body schema (compiled by Fastify's Ajv compiler with Fastify's
 * options), the same JSON parser, authentication, admission (admission.ts), billing
 * (invoke-call.ts), error bodies (errors.ts) and metrics.
 *
 * Why: invoke is the billable call, and Fastify's request machinery (router, request and reply
 * objects, content-type parser, four hook runners, reply serialisation) was a quarter of its CPU
 * time per call on these machines (docs/benchmarks.md, tenth session).
 *
 * What it takes: a POST of exactly this path (no query string), with `Content-Length` (1 byte up to
 * BODY_LIMIT_BYTES; no Transfer-Encoding or Content-Encoding), a plain JSON content type, no
 * `Idempotency-Key`, and an API key that authenticates with the route's scope. Everything else is
 * handed to Fastify before a byte of the body is read, so every refusal that can happen before the
 * body (401, 403, 413, 415, 409/422 of idempotency, 503 of shutdown and shedding) keeps a single
 * implementation. After the body is read, the answers this path gives itself are those the route
 * gives after parsing: 400 (JSON, schema), 429 (rate limit, quota), the domain's 400/403/404, 503
 * ERR_METERING_UNAVAILABLE and the 200.
 */
export function fastInvokeHandler(options: FastInvokeOptions): FastHandler {
  const validate = AjvCompiler()({}, { customOptions: { ...options.ajvOptions }, plugins: [] })({ schema: invokeBodySchema, method: 'POST', url: INVOKE_PATH, httpPart: 'body' });
  const observeOk = options.metrics.requestRecorder(INVOKE_PATH, 'POST', 200);
  const { config } = options;

  const principalFor = (req: IncomingMessage): Principal | undefined => {
    const headers = req.headers;
    if (headers['idempotency-key'] !== undefined || headers['transfer-encoding'] !== undefined || headers['content-encoding'] !== undefined) return undefined;
    const type = headers['content-type'];
    // Lower-cased only when not already one of them (clients nearly always send it so).
    if (type === undefined || !(JSON_TYPES.has(type) || JSON_TYPES.has(type.toLowerCase()))) return undefined;
    const length = Number(headers['content-length']);
    if (!(length >= 1 && length <= config.BODY_LIMIT_BYTES)) return undefined;
    try {
      return authenticate(options.keys, headers, INVOKE_POLICY.scope);
    } catch {
      // Fastify answers it, counting the failure once.
      return undefined;
    }
  };

  /** `headers`: the whole list, X-Request-Id first and Content-Type and Content-Length last. */
  const answer = (res: ServerResponse, started: number, id: string, status: number, body: string, headers: string[], principal: Principal): void => {
    res.writeHead(status, headers);
    res.end(body);
    const seconds = (performance.now() - started) / 1000;
    if (status === 200) {
      observeOk(seconds);
      return;
    }
    options.metrics.observeRequest(INVOKE_PATH, 'POST', status, seconds);
    if (config.LOG_REQUESTS === 'errors') {
      options.log.info({ request_id: id, ...completionFields('POST', INVOKE_PATH, status, seconds * 1000, principal) }, 'request completed');
    }
  };

  const fail = (res: ServerResponse, started: number, id: string, err: unknown, admitted: AdmissionOutcome | undefined, principal: Principal): void => {
    const apiError: ApiError = toApiError(err);
    if (apiError.status >= 500) options.log.error({ err, request_id: id }, 'request failed');
    const headers = ['x-request-id', id];
    if (admitted) headers.push('ratelimit-limit', admitted.limit, 'ratelimit-remaining', admitted.remaining, 'ratelimit-reset', admitted.reset);
    if (apiError.headers) for (const [name, value] of Object.entries(apiError.headers)) headers.push(name, value);
    const text = JSON.stringify(errorBody(apiError, id));
    headers.push('content-type', JSON_TYPE, 'content-length', String(Buffer.byteLength(text)));
    answer(res, started, id, apiError.status, text, headers, principal);
  };

  const run = async (res: ServerResponse, started: number, id: string, principal: Principal, body: InvokeBody): Promise<void> => {
    let admitted: AdmissionOutcome | undefined;
    try {
      const admission = admissionRequest(config, principal, true);
      admitted = admissionOutcome(options.metrics, principal, admission, await options.limits.admit(admission));
      if (admitted.refusal) {
        fail(res, started, id, admitted.refusal, admitted, principal);
        return;
      }
      const done = await performInvoke(options, {
        body, principal, quotaKey: admitted.quotaKey, idempotencyKey: undefined, requestId: id,
        elapsedMs: () => performance.now() - started,
        span: undefined,
        chargeFailed: (err) => options.log.error({ err, request_id: id }, 'token charge failed'),
      });
      answer(res, started, id, 200, done.json, [
        'x-request-id', id, 'ratelimit-limit', admitted.limit, 'ratelimit-remaining', admitted.remaining, 'ratelimit-reset', admitted.reset,
        'content-type', JSON_TYPE, 'content-length', String(done.bytes),
      ], principal);
    } catch (err) {
      // An answer already under way cannot be replaced by an error: end the connection instead.
      if (res.headersSent) {
        options.log.error({ err, request_id: id }, 'request failed after its answer began');
        res.destroy();
        return;
      }
      fail(res, started, id, err, admitted, principal);
    }
  };

  return (req, res) => {
    if (req.method !== 'POST' || req.url !== INVOKE_PATH || !options.active()) return false;
    const principal = principalFor(req);
    if (!principal) return false;
    const started = performance.now();
    const id = options.requestId(req);
    // Raw chunks, decoded once at the end: setEncoding would give each request a StringDecoder.
    let first: Buffer | undefined;
    let more: Buffer[] | undefined;
    req.on('data', (chunk: Buffer) => {
      if (first === undefined) first = chunk;
      else (more ??= []).push(chunk);
    });
    // A client gone mid-body: Node destroys the socket; there is no one to answer.
    req.on('error', ignore);
    req.on('end', () => {
      const text = first === undefined ? '' : more === undefined ? first.toString('utf8') : Buffer.concat([first, ...more]).toString('utf8');
      let body: unknown;
      try {
        body = secureJsonParse(text, undefined, PARSE_OPTIONS);
      } catch {
        fail(res, started, id, invalidJsonError(false), undefined, principal);
        return;
      }
      if (!validate(body)) {
        fail(res, started, id, validationError(validate.errors ?? [], 'body'), undefined, principal);
        return;
      }
      void run(res, started, id, principal, body as InvokeBody);
    });
    return true;
  };
}

function ignore(): void {
  // nothing to do
}
