/**
 * The one list of error codes the API can return. docs/errors.md is checked against it by a test,
 * so a code cannot be added, renamed or re-statused without the docs following.
 */
export const ERROR_CODES = {
  ERR_AUTH_MISSING_KEY: { status: 401, summary: 'No API key was sent (X-API-Key or Authorization: Bearer).' },
  ERR_AUTH_INVALID_KEY: { status: 401, summary: 'The API key is malformed or unknown.' },
  ERR_AUTH_REVOKED_KEY: { status: 401, summary: 'The API key was revoked.' },
  ERR_AUTH_INSUFFICIENT_SCOPE: { status: 403, summary: 'The API key lacks the scope this endpoint needs (read, write or admin).' },
  ERR_RATE_LIMITED: { status: 429, summary: 'Per-key requests-per-minute limit reached; retry after Retry-After seconds.' },
  ERR_QUOTA_EXCEEDED: { status: 429, summary: "The tenant's monthly token quota is used up." },
  ERR_IDEMPOTENCY_KEY_INVALID: { status: 400, summary: 'Idempotency-Key must be 1-255 printable ASCII characters.' },
  ERR_IDEMPOTENCY_IN_PROGRESS: { status: 409, summary: 'A request with this Idempotency-Key is still being processed.' },
  ERR_IDEMPOTENCY_MISMATCH: { status: 422, summary: 'This Idempotency-Key was used with a different request body or route.' },
  ERR_AGENTESE_PATH_SYNTAX: { status: 400, summary: 'The AGENTESE path is malformed; the message gives the position.' },
  ERR_AGENTESE_PATH_NOT_FOUND: { status: 404, summary: 'The AGENTESE context does not exist (valid: world, self, concept, void, time).' },
  ERR_AGENTESE_AFFORDANCE_DENIED: { status: 403, summary: "The observer's archetype does not afford this aspect; details list the available ones." },
  ERR_VALIDATION: { status: 400, summary: 'The request body or query failed validation; the message names the field.' },
  ERR_BAD_REQUEST: { status: 400, summary: 'The request is malformed in a way no more specific code covers (for example a bad Content-Length).' },
  ERR_INVALID_JSON: { status: 400, summary: 'The request body is not valid JSON.' },
  ERR_BODY_TOO_LARGE: { status: 413, summary: 'The request body exceeds BODY_LIMIT_BYTES.' },
  ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, summary: 'The Content-Type is not application/json.' },
  ERR_NOT_FOUND: { status: 404, summary: 'No such route.' },
  ERR_METHOD_NOT_ALLOWED: { status: 405, summary: 'The route exists but not for this HTTP method.' },
  ERR_METERING_UNAVAILABLE: { status: 503, summary: 'Usage cannot be recorded durably right now (event bus down and fallback queue full); the call was not performed. Retry after Retry-After.' },
  ERR_WEBHOOK_SIGNATURE: { status: 400, summary: 'The Stripe-Signature header is missing, malformed, too old, or does not match the payload.' },
  ERR_WEBHOOK_UNAVAILABLE: { status: 503, summary: 'The webhook could not be recorded durably (or is being processed by another instance); Stripe retries it.' },
  ERR_SERVICE_UNAVAILABLE: { status: 503, summary: 'The instance is shutting down or overloaded; retry on another instance after Retry-After.' },
  ERR_OVERLOADED: { status: 503, summary: 'The instance sheds load (event-loop delay or memory over its threshold); the request was not started. Retry after Retry-After.' },
  ERR_INTERNAL: { status: 500, summary: 'An unexpected server error; the request id identifies it in the logs.' },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function statusOf(code: ErrorCode): number {
  return ERROR_CODES[code].status;
}
