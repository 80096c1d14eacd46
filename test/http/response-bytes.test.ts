import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import * as agentese from '../../src/domain/agentese/index.js';
import { testApp } from '../harness/app.js';
import { createKey } from '../harness/fixtures.js';

// Budget: well under a second (in-process app, memory stores).
void test('resolve and invoke answers are byte for byte what JSON.stringify makes of the domain result (response schemas change speed, not bytes)', async () => {
  const t = await testApp();
  try {
    const key = (await createKey(t.keys, 'acme', 'enterprise', ['read', 'write'])).key;
    const paths = ['world.house.manifest', 'world.house', 'self.memory.witness', 'void.entropy.sip[entropy=0.2]@span=3', 'concept.justice.manifest'];
    for (const path of paths) {
      const res = await t.app.inject({ url: `/v1/agentese/resolve?path=${encodeURIComponent(path)}&archetype=architect`, headers: { 'x-api-key': key } });
      if (res.statusCode !== 200) continue;
      assert.equal(res.body, JSON.stringify(agentese.resolve(path, { archetype: 'architect' })), path);
      const post = await t.app.inject({ method: 'POST', url: '/v1/agentese/resolve', headers: { 'x-api-key': key }, payload: { path, observer: { archetype: 'poet', name: 'ada' } } });
      assert.equal(post.body, JSON.stringify(agentese.resolve(path, { archetype: 'poet', name: 'ada' })), path);
    }
    let invoked = 0;
    for (const path of paths) {
      const body = { path, observer: { archetype: 'architect' }, kwargs: { note: 'é ✓ "quoted"', n: 3, nested: { a: [1, null, true] } } };
      const res = await t.app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': key }, payload: body });
      if (res.statusCode !== 200) continue;
      invoked++;
      assert.equal(res.body, JSON.stringify(agentese.invoke(path, body.observer, body.kwargs)), path);
    }
    assert.ok(invoked >= 2, `only ${invoked} paths could be invoked`);
  } finally {
    await t.close();
  }
});
