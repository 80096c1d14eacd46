import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { testApp, type TestApp } from '../harness/app.js';
import { createKey } from '../harness/fixtures.js';

interface ErrorBody { error: { code: string; message: string; details?: Record<string, unknown> } }

describe('AGENTESE endpoints', () => {
  let t: TestApp;
  let key: string;
  before(async () => {
    t = await testApp();
    key = (await createKey(t.keys, 'acme', 'enterprise', ['read', 'write'])).key;
  });
  after(async () => t.close());

  const get = (url: string) => t.app.inject({ url, headers: { 'x-api-key': key } });
  const post = (url: string, payload: unknown, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'POST', url, headers: { 'x-api-key': key, ...headers }, payload: payload as Record<string, unknown> });

  test('GET resolve returns the handle, context, holon, aspect and affordances', async () => {
    const res = await get('/v1/agentese/resolve?path=world.house.manifest&archetype=architect');
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json<{ path: string; handle: string; context: string; holon: string; aspect: string | null; affordances: string[] }>();
    assert.equal(body.path, 'world.house.manifest');
    assert.equal(body.context, 'world');
    assert.equal(body.holon, 'house');
    assert.equal(body.aspect, 'manifest');
    assert.ok(body.affordances.includes('renovate'));
    assert.equal(typeof body.handle, 'string');
  });

  test('POST resolve takes the observer in the body', async () => {
    const res = await post('/v1/agentese/resolve', { path: 'world.house', observer: { name: 'ada', archetype: 'poet' } });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json<{ aspect: string | null; affordances: string[] }>();
    assert.equal(body.aspect, null);
    assert.ok(body.affordances.includes('metaphorize'));
  });

  test('affordances depend on the observer archetype', async () => {
    const dev = (await get('/v1/agentese/affordances?path=world.house&archetype=developer')).json<{ affordances: string[]; observer_archetype: string }>();
    assert.equal(dev.observer_archetype, 'developer');
    for (const a of ['manifest', 'witness', 'affordances', 'help', 'define', 'relate', 'transform', 'build', 'deploy']) assert.ok(dev.affordances.includes(a), a);
    assert.ok(!dev.affordances.includes('renovate'));
    const self = (await get('/v1/agentese/affordances?path=self.memory')).json<{ affordances: string[] }>();
    assert.ok(self.affordances.includes('inspect'));
  });

  test('invoke returns a deterministic result and a token count', async () => {
    const payload = { path: 'world.house.manifest', observer: { archetype: 'architect' }, kwargs: { depth: 2 } };
    const a = (await post('/v1/agentese/invoke', payload)).json<{ path: string; result: unknown; tokens_used: number; cached: boolean }>();
    const b = (await post('/v1/agentese/invoke', payload)).json<{ result: unknown; tokens_used: number }>();
    assert.equal(a.path, 'world.house.manifest');
    assert.deepEqual(a.result, b.result);
    assert.ok(a.tokens_used >= 1);
    assert.equal(a.cached, false);
  });

  test('a malformed path gets 400 ERR_AGENTESE_PATH_SYNTAX with the position', async () => {
    const res = await get('/v1/agentese/resolve?path=world');
    assert.equal(res.statusCode, 400);
    const body = res.json<ErrorBody>();
    assert.equal(body.error.code, 'ERR_AGENTESE_PATH_SYNTAX');
    assert.equal(typeof body.error.details?.position, 'number');
  });

  test('an unknown context gets 404 ERR_AGENTESE_PATH_NOT_FOUND listing the five contexts', async () => {
    const res = await get('/v1/agentese/resolve?path=mars.rover');
    assert.equal(res.statusCode, 404);
    const body = res.json<ErrorBody>();
    assert.equal(body.error.code, 'ERR_AGENTESE_PATH_NOT_FOUND');
    assert.deepEqual([...(body.error.details?.contexts as string[])].sort(), ['concept', 'self', 'time', 'void', 'world']);
  });

  test('invoking an aspect the archetype lacks gets 403 ERR_AGENTESE_AFFORDANCE_DENIED with the available list', async () => {
    const res = await post('/v1/agentese/invoke', { path: 'world.house.renovate', observer: { archetype: 'poet' } });
    assert.equal(res.statusCode, 403);
    const body = res.json<ErrorBody>();
    assert.equal(body.error.code, 'ERR_AGENTESE_AFFORDANCE_DENIED');
    assert.ok((body.error.details?.available as string[]).includes('metaphorize'));
  });

  test('invoke charges its tokens to the tenant (visible in the token metric)', async () => {
    await post('/v1/agentese/invoke', { path: 'concept.justice.manifest' });
    const text = (await t.app.inject('/metrics')).body;
    assert.match(text, /kgents_agentese_tokens_total\{[^}]*tier="enterprise"[^}]*\} [1-9]/);
  });
});
