import { strict as assert } from 'node:assert';
import { ApiError } from '../../../src/errors/api-error.js';
import type { ErrorCode } from '../../../src/errors/registry.js';

/** Runs fn, asserts it throws an ApiError with the given code, and returns that error. */
export function apiErrorFrom(fn: () => unknown, code: ErrorCode): ApiError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ApiError, `expected an ApiError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected ${code} to be thrown`);
}

/** details.position of a syntax error. */
export function positionOf(fn: () => unknown): number {
  const error = apiErrorFrom(fn, 'ERR_AGENTESE_PATH_SYNTAX');
  const position = error.details?.position;
  assert.equal(typeof position, 'number');
  assert.match(error.message, new RegExp(`at position ${String(position)}\\b`));
  return position as number;
}

/** Asserts that a JSON value is a string and returns it. */
export function text(value: unknown): string {
  assert.equal(typeof value, 'string', `expected a string, got ${JSON.stringify(value)}`);
  return value as string;
}
