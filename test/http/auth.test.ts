import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { testApp, type TestApp } from '../harness/app.js';
import { createKey } from '../harness/fixtures.js';

interface ErrorBody { error: { code: string; message: string; request_id: string; details?: Record<string, unknown> } }

describe('API key authentication', () => {
  let t: TestApp;
  let reader: string;
  let writer: string;
  let admin: string;
  before(async () => {
    t = await testApp();
    reader = (await createKey(t.keys, 'acme', 'pro', ['read'])).key;
    writer = (await createKey(t.keys, 'acme', 'pro', ['read', 'write'])).key;
    admin = (await createKey(t.keys, 'ops', 'enterprise', ['admin'])).key;
  });
  after(async () => t.close());

  const resolve = (headers: Record<string, string>) => t.app.inject({ url: '/v1/agentese/resolve?path=world.house', headers });

  test('a request without a key gets 401 ERR_AUTH_MISSING_KEY', async () => {
    const res = await resolve({});
    assert.equal(res.statusCode, 401);
    assert.equal(res.json<ErrorBody>().error.code, 'ERR_AUTH_MISSING_KEY');
    assert.equal(res.headers['www-authenticate'], 'Bearer');
  });

  test('X-API-Key and Authorization: Bearer are both accepted', async () => {
    assert.equal((await resolve({ 'x-api-key': reader })).statusCode, 200);
    assert.equal((await resolve({ authorization: `Bearer ${reader}` })).statusCode, 200);
  });

  test('a malformed key, an unknown prefix and a wrong secret all get the same 401 ERR_AUTH_INVALID_KEY', async () => {
    const wrongSecret = `${reader.slice(0, 12)}${'A'.repeat(reader.length - 12)}`;
    const unknownPrefix = `kg_ZZZZZZZZ_${reader.slice(12)}`;
    for (const key of ['nonsense', 'kg_short_x', wrongSecret, unknownPrefix]) {
      const res = await resolve({ 'x-api-key': key });
      assert.equal(res.statusCode, 401, key);
      const body = res.json<ErrorBody>();
      assert.equal(body.error.code, 'ERR_AUTH_INVALID_KEY');
      assert.equal(body.error.message, 'The API key is not valid.');
    }
  });

  test('a revoked key gets 401 ERR_AUTH_REVOKED_KEY', async () => {
    const { key, prefix } = await createKey(t.keys, 'acme', 'pro', ['read']);
    assert.equal((await resolve({ 'x-api-key': key })).statusCode, 200);
    await t.keys.revokeKey(prefix);
    const res = await resolve({ 'x-api-key': key });
    assert.equal(res.statusCode, 401);
    assert.equal(res.json<ErrorBody>().error.code, 'ERR_AUTH_REVOKED_KEY');
  });

  test('a read-only key cannot invoke: 403 ERR_AUTH_INSUFFICIENT_SCOPE names the scope', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': reader }, payload: { path: 'world.house.manifest' } });
    assert.equal(res.statusCode, 403);
    const body = res.json<ErrorBody>();
    assert.equal(body.error.code, 'ERR_AUTH_INSUFFICIENT_SCOPE');
    assert.equal(body.error.details?.required, 'write');
  });

  test('a write key can invoke and an admin key can do everything', async () => {
    for (const key of [writer, admin]) {
      const res = await t.app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': key }, payload: { path: 'world.house.manifest' } });
      assert.equal(res.statusCode, 200, res.body);
    }
  });

  test('auth failures are counted in /metrics by code', async () => {
    await resolve({});
    const text = (await t.app.inject('/metrics')).body;
    assert.match(text, /kgents_auth_failures_total\{[^}]*code="ERR_AUTH_MISSING_KEY"[^}]*\} [1-9]/);
  });

  test('the API key never appears in logs, even on failures', async () => {
    t.logs.lines.length = 0;
    await resolve({ 'x-api-key': `${writer}x` });
    await t.app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { authorization: `Bearer ${writer}` }, payload: '{bad json', });
    await t.app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': writer, 'content-type': 'application/json' }, payload: { path: 'nope' } });
    assert.ok(t.logs.lines.length >= 2, 'error requests are logged');
    const secret = writer.slice(12);
    assert.ok(!t.logs.text.includes(secret), 'secret part of the key leaked into logs');
    for (const line of t.logs.lines) JSON.parse(line);
  });
});
