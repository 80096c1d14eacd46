import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { ERROR_CODES } from '../../src/errors/registry.js';
import { testApp, type TestApp } from '../harness/app.js';
import { createKey } from '../harness/fixtures.js';

interface ErrorBody { error: { code: string; message: string; request_id: string; details?: Record<string, unknown> } }

describe('bad input gets a clear 4xx, never a 500', () => {
  let t: TestApp;
  let key: string;
  before(async () => {
    t = await testApp({ BODY_LIMIT_BYTES: '2048', RATE_LIMITS: 'free=1,pro=1,enterprise=100000000' });
    key = (await createKey(t.keys, 'acme', 'enterprise', ['read', 'write'])).key;
  });
  after(async () => t.close());

  const post = (payload: string, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': key, 'content-type': 'application/json', ...headers }, payload });

  function expectError(res: { statusCode: number; json: <T>() => T }, status: number, code: string): ErrorBody {
    assert.equal(res.statusCode, status);
    const body = res.json<ErrorBody>();
    assert.equal(body.error.code, code);
    assert.equal(typeof body.error.message, 'string');
    assert.equal(typeof body.error.request_id, 'string');
    return body;
  }

  test('an unknown route gets 404 ERR_NOT_FOUND', async () => {
    expectError(await t.app.inject('/v1/nothing-here'), 404, 'ERR_NOT_FOUND');
  });

  test('a known route with the wrong method gets 405 ERR_METHOD_NOT_ALLOWED with Allow', async () => {
    const res = await t.app.inject({ method: 'DELETE', url: '/v1/agentese/invoke' });
    expectError(res, 405, 'ERR_METHOD_NOT_ALLOWED');
    assert.equal(res.headers.allow, 'POST');
  });

  test('invalid JSON gets 400 ERR_INVALID_JSON', async () => {
    expectError(await post('{"path": '), 400, 'ERR_INVALID_JSON');
  });

  test('an empty JSON body gets 400 ERR_INVALID_JSON', async () => {
    expectError(await post(''), 400, 'ERR_INVALID_JSON');
  });

  test('a schema violation gets 400 ERR_VALIDATION naming the field', async () => {
    const missing = expectError(await post('{}'), 400, 'ERR_VALIDATION');
    assert.equal(missing.error.details?.field, 'path');
    assert.match(missing.error.message, /path/);
    const wrongType = expectError(await post('{"path": 42}'), 400, 'ERR_VALIDATION');
    assert.equal(wrongType.error.details?.field, 'path');
    const nested = expectError(await post('{"path": "world.house", "observer": {"archetype": "NOT VALID"}}'), 400, 'ERR_VALIDATION');
    assert.equal(nested.error.details?.field, 'observer.archetype');
    const extra = expectError(await post('{"path": "world.house", "surprise": 1}'), 400, 'ERR_VALIDATION');
    assert.equal(extra.error.details?.field, 'surprise');
    const query = expectError(await t.app.inject({ url: '/v1/agentese/resolve', headers: { 'x-api-key': key } }), 400, 'ERR_VALIDATION');
    assert.match(query.error.message, /path/);
  });

  test('a body over the limit gets 413 ERR_BODY_TOO_LARGE', async () => {
    expectError(await post(JSON.stringify({ path: 'world.house', kwargs: { blob: 'x'.repeat(4096) } })), 413, 'ERR_BODY_TOO_LARGE');
  });

  test('a non-JSON content type gets 415 ERR_UNSUPPORTED_MEDIA_TYPE', async () => {
    expectError(await post('path=world.house', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'ERR_UNSUPPORTED_MEDIA_TYPE');
    expectError(await post('world.house', { 'content-type': 'text/plain' }), 415, 'ERR_UNSUPPORTED_MEDIA_TYPE');
  });

  test('a Content-Length that does not match the body gets 400 ERR_BAD_REQUEST', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': key, 'content-type': 'application/json', 'content-length': '999' }, payload: '{"path":"world.house"}' });
    expectError(res, 400, 'ERR_BAD_REQUEST');
  });

  test('usage reports on an instance without the event bus get 503 ERR_SERVICE_UNAVAILABLE with Retry-After', async () => {
    const res = await t.app.inject({ url: '/v1/usage', headers: { 'x-api-key': key } });
    expectError(res, 503, 'ERR_SERVICE_UNAVAILABLE');
    assert.ok(Number(res.headers['retry-after']) > 0);
  });

  test('every error code returned carries the status the registry gives it', async () => {
    const res = await post('{');
    const body = res.json<ErrorBody>();
    assert.equal(res.statusCode, ERROR_CODES[body.error.code as keyof typeof ERROR_CODES].status);
  });

  test('random AGENTESE paths never produce a 5xx (property)', async () => {
    await fc.assert(fc.asyncProperty(
      fc.oneof(fc.string({ maxLength: 80 }), fc.stringMatching(/^[a-z]{1,8}(\.[a-z_]{1,8}){0,4}(\[[a-z_]{1,8}=[A-Za-z0-9.-]{0,8}\])?(@[a-z]{1,6}=[a-z0-9]{0,6})?$/)),
      fc.constantFrom('', 'architect', 'poet', 'developer', 'philosopher', 'nobody'),
      async (path, archetype) => {
        const q = new URLSearchParams({ path, ...(archetype && { archetype }) });
        for (const url of [`/v1/agentese/resolve?${q.toString()}`, `/v1/agentese/affordances?${q.toString()}`]) {
          const res = await t.app.inject({ url, headers: { 'x-api-key': key } });
          assert.ok(res.statusCode < 500, `${url} -> ${res.statusCode} ${res.body}`);
        }
        const inv = await post(JSON.stringify({ path, ...(archetype && { observer: { archetype } }) }));
        assert.ok(inv.statusCode < 500, `invoke ${path} -> ${inv.statusCode} ${inv.body}`);
      },
    ), { numRuns: 300 });
  });

  test('random request bodies never produce a 5xx (property)', async () => {
    await fc.assert(fc.asyncProperty(
      fc.oneof(
        fc.jsonValue().map((v) => JSON.stringify(v)),
        fc.record({ path: fc.oneof(fc.string(), fc.constant('world.house.manifest')), observer: fc.jsonValue(), kwargs: fc.jsonValue() }).map((v) => JSON.stringify(v)),
        fc.string({ maxLength: 200 }),
      ),
      async (payload) => {
        const res = await post(payload);
        assert.ok(res.statusCode < 500, `${payload} -> ${res.statusCode} ${res.body}`);
        assert.equal(typeof res.json<ErrorBody | Record<string, unknown>>(), 'object');
      },
    ), { numRuns: 300 });
  });

  test('random headers and methods never produce a 5xx (property)', async () => {
    await fc.assert(fc.asyncProperty(
      fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'),
      fc.constantFrom('/health', '/ready', '/health/saas', '/v1/agentese/resolve', '/v1/agentese/invoke', '/v1/agentese/affordances', '/x'),
      fc.dictionary(fc.constantFrom('x-api-key', 'authorization', 'idempotency-key', 'x-request-id', 'content-type'), fc.string({ maxLength: 60 }).filter((s) => /^[\x20-\x7e]*$/.test(s))),
      fc.string({ maxLength: 100 }),
      async (method, url, headers, payload) => {
        const res = await t.app.inject({ method: method as 'GET', url, headers, ...(method !== 'GET' && method !== 'HEAD' && { payload }) });
        assert.ok(res.statusCode < 500, `${method} ${url} ${JSON.stringify(headers)} -> ${res.statusCode} ${res.body}`);
      },
    ), { numRuns: 300 });
  });
});
