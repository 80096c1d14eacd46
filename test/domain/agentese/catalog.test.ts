import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { AGENTESE_CONTEXTS, CATALOG, catalogHolons, parsePath, resolve } from '../../../src/domain/agentese/index.js';

void test('the catalog declares at least five described holons in every context', () => {
  for (const context of AGENTESE_CONTEXTS) {
    const holons = catalogHolons(context);
    assert.ok(holons.length >= 5, `${context} has ${holons.length} holons`);
    assert.ok(CATALOG.contexts[context].description.length > 0);
    for (const holon of holons) assert.ok((CATALOG.contexts[context].holons[holon]?.description.length ?? 0) > 10);
  }
});

void test('the catalog includes the holons the issue names', () => {
  for (const handle of ['world.house', 'world.forest', 'self.memory', 'concept.justice', 'void.entropy', 'time.past', 'concept.forest']) {
    assert.equal(resolve(handle, {}).generic, false, handle);
  }
});

void test('every catalog holon name is a valid path segment and every relation points at a catalog holon', () => {
  for (const context of AGENTESE_CONTEXTS) {
    for (const holon of catalogHolons(context)) {
      assert.equal(parsePath(`${context}.${holon}`).holon, holon);
      for (const related of CATALOG.contexts[context].holons[holon]?.related ?? []) {
        const target = resolve(related, {});
        assert.equal(target.generic, false, `${context}.${holon} -> ${related}`);
        assert.equal(target.handle, related);
        assert.notEqual(related, `${context}.${holon}`);
      }
    }
  }
});

void test('the exported catalog is frozen', () => {
  assert.ok(Object.isFrozen(CATALOG.contexts.world.holons.house));
  assert.throws(() => {
    (CATALOG.contexts.world.holons.house as { description: string }).description = 'changed';
  }, TypeError);
});
