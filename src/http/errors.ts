import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../errors/api-error.js';
import { ERROR_CODES, type ErrorCode } from '../errors/registry.js';

export interface ValidationIssue {
  readonly instancePath?: string;
  readonly message?: string;
  readonly params?: Readonly<Record<string, unknown>>;
}

function describeValidation(issue: ValidationIssue, context: string | undefined): { field: string; message: string } {
  const missing = issue.params?.missingProperty;
  const extra = issue.params?.additionalProperty;
  const base = (issue.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.');
  if (typeof missing === 'string') {
    const field = base ? `${base}.${missing}` : missing;
    return { field, message: `${context ?? 'body'}.${field} is required` };
  }
  if (typeof extra === 'string') {
    const field = base ? `${base}.${extra}` : extra;
    return { field, message: `${context ?? 'body'}.${field} is not an allowed field` };
  }
  const field = base || (context ?? 'body');
  const where = base ? `${context ?? 'body'}.${base}` : (context ?? 'body');
  return { field, message: `${where} ${issue.message ?? 'is invalid'}` };
}

const FASTIFY_CODES: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_TYPE: 'ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_BODY_TOO_LARGE: 'ERR_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_JSON_BODY: 'ERR_INVALID_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'ERR_INVALID_JSON',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'ERR_BAD_REQUEST',
};

/** The ApiError for a failed schema validation: its first issue, naming the field. */
export function validationError(issues: readonly ValidationIssue[], context: string | undefined): ApiError {
  const first = describeValidation(issues[0] ?? {}, context);
  return new ApiError('ERR_VALIDATION', first.message, { field: first.field });
}

export function invalidJsonError(empty: boolean): ApiError {
  return new ApiError('ERR_INVALID_JSON', empty ? 'The request body is empty but Content-Type is application/json.' : 'The request body is not valid JSON.');
}

/** Turns anything thrown in a request into an ApiError; unknown errors become ERR_INTERNAL. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const fe = err as Partial<FastifyError> & { validation?: ValidationIssue[]; validationContext?: string };
  if (Array.isArray(fe.validation) && fe.validation.length > 0) return validationError(fe.validation, fe.validationContext);
  const mapped = fe.code ? FASTIFY_CODES[fe.code] : undefined;
  if (mapped === 'ERR_INVALID_JSON') return invalidJsonError(fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY');
  if (mapped === 'ERR_UNSUPPORTED_MEDIA_TYPE') {
    return new ApiError(mapped, 'Content-Type must be application/json.');
  }
  if (mapped) return new ApiError(mapped, ERROR_CODES[mapped].summary);
  if (err instanceof SyntaxError && fe.statusCode === 400) return invalidJsonError(false);
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new ApiError('ERR_BAD_REQUEST', ERROR_CODES.ERR_BAD_REQUEST.summary);
  }
  return new ApiError('ERR_INTERNAL', 'Internal server error.');
}

/** The body of every error answer: `{error:{code, message, request_id[, details]}}`. */
export function errorBody(err: ApiError, requestId: string): { error: Record<string, unknown> } {
  const error: Record<string, unknown> = { code: err.code, message: err.message, request_id: requestId };
  if (err.details) error.details = err.details;
  return { error };
}

export function sendError(request: FastifyRequest, reply: FastifyReply, err: ApiError): FastifyReply {
  if (err.headers) void reply.headers(err.headers);
  return reply.code(err.status).type('application/json; charset=utf-8').send(errorBody(err, request.id));
}

/** Installs the error and not-found handlers: every failure leaves as {error:{code,message,request_id}}. */
export function installErrorHandling(app: FastifyInstance, knownPaths: () => ReadonlyMap<string, readonly string[]>): void {
  app.setErrorHandler((err, request, reply) => {
    const apiError = toApiError(err);
    if (apiError.status >= 500) {
      request.log.error({ err }, 'request failed');
    }
    return sendError(request, reply, apiError);
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?', 1)[0] ?? request.url;
    const methods = knownPaths().get(path);
    if (methods && !methods.includes(request.method)) {
      return sendError(request, reply, new ApiError('ERR_METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${path}; allowed: ${methods.join(', ')}.`, { allowed: [...methods] }, { allow: methods.join(', ') }));
    }
    return sendError(request, reply, new ApiError('ERR_NOT_FOUND', `No route for ${request.method} ${path}.`));
  });
}
