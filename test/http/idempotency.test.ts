import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { requestFingerprint } from '../../src/http/idempotency.js';
import { testApp, type TestApp } from '../harness/app.js';
import { createKey } from '../harness/fixtures.js';

interface ErrorBody { error: { code: string } }

describe('Idempotency-Key', () => {
  let t: TestApp;
  let key: string;
  before(async () => {
    t = await testApp();
    key = (await createKey(t.keys, 'acme', 'enterprise', ['read', 'write'])).key;
  });
  after(async () => t.close());

  const invoke = (idem: string | undefined, payload: Record<string, unknown> = { path: 'world.house.manifest', kwargs: { n: 1 } }) =>
    t.app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': key, ...(idem !== undefined && { 'idempotency-key': idem }) }, payload });

  test('a replay returns the first response byte-identical with Idempotent-Replayed: true', async () => {
    const first = await invoke('order-1');
    assert.equal(first.statusCode, 200);
    assert.equal(first.headers['idempotent-replayed'], undefined);
    const second = await invoke('order-1');
    assert.equal(second.statusCode, 200);
    assert.equal(second.headers['idempotent-replayed'], 'true');
    assert.equal(second.body, first.body);
    assert.equal(second.headers['content-type'], first.headers['content-type']);
  });

  test('a 4xx first response is replayed too (the request was deterministic)', async () => {
    const payload = { path: 'world.house.renovate', observer: { archetype: 'poet' } };
    const first = await invoke('denied-1', payload);
    assert.equal(first.statusCode, 403);
    const second = await invoke('denied-1', payload);
    assert.equal(second.statusCode, 403);
    assert.equal(second.body, first.body);
    assert.equal(second.headers['idempotent-replayed'], 'true');
  });

  test('the same key with a different body gets 422 ERR_IDEMPOTENCY_MISMATCH', async () => {
    await invoke('order-2');
    const res = await invoke('order-2', { path: 'world.house.manifest', kwargs: { n: 2 } });
    assert.equal(res.statusCode, 422);
    assert.equal(res.json<ErrorBody>().error.code, 'ERR_IDEMPOTENCY_MISMATCH');
  });

  test('the same key while the first request still runs gets 409 ERR_IDEMPOTENCY_IN_PROGRESS', async () => {
    // Hold the record in progress exactly as a concurrent first request would.
    const payload = { path: 'world.house.manifest', kwargs: { n: 3 } };
    const started = await t.idempotency.begin('acme:order-3', requestFingerprint('POST', '/v1/agentese/invoke', payload), 60);
    assert.equal(started.state, 'started');
    const res = await invoke('order-3', payload);
    assert.equal(res.statusCode, 409);
    assert.equal(res.json<ErrorBody>().error.code, 'ERR_IDEMPOTENCY_IN_PROGRESS');
    assert.equal(res.headers['retry-after'], '1');
  });

  test('concurrent requests with one key run the handler once: one original, the rest replays or 409', async () => {
    const results = await Promise.all(Array.from({ length: 25 }, () => invoke('burst-1')));
    const originals = results.filter((r) => r.statusCode === 200 && r.headers['idempotent-replayed'] === undefined);
    const replays = results.filter((r) => r.headers['idempotent-replayed'] === 'true');
    const conflicts = results.filter((r) => r.statusCode === 409);
    assert.equal(originals.length, 1);
    assert.equal(originals.length + replays.length + conflicts.length, 25);
    for (const r of replays) assert.equal(r.body, originals[0]?.body);
  });

  test('keys are scoped per tenant: another tenant may reuse the same key string', async () => {
    const other = (await createKey(t.keys, 'beta', 'enterprise', ['write'])).key;
    await invoke('shared-name');
    const res = await t.app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': other, 'idempotency-key': 'shared-name' }, payload: { path: 'void.entropy.manifest' } });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['idempotent-replayed'], undefined);
  });

  test('an invalid Idempotency-Key gets 400 ERR_IDEMPOTENCY_KEY_INVALID', async () => {
    const res = await invoke('has spaces in it');
    assert.equal(res.statusCode, 400);
    assert.equal(res.json<ErrorBody>().error.code, 'ERR_IDEMPOTENCY_KEY_INVALID');
  });
});
