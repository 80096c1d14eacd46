import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  AGENTESE_CONTEXTS, KNOWN_ARCHETYPES, affordances, catalogHolons, invokeWithJson,
} from '../../../src/domain/agentese/index.js';

// The route sends invokeWithJson's text as the response body: it must be the result's JSON exactly.
void describe('invoke result text', () => {
  void test('is JSON.stringify of the result for every context, archetype and afforded aspect', () => {
    let checked = 0;
    for (const context of AGENTESE_CONTEXTS) {
      for (const holon of [...catalogHolons(context), 'uncatalogued_thing']) {
        for (const archetype of [...KNOWN_ARCHETYPES, 'unknown-archetype']) {
          for (const aspect of affordances(`${context}.${holon}`, { archetype }).affordances) {
            for (const path of [`${context}.${holon}.${aspect}`, `${context}.${holon}.${aspect}[minimal_output=true]@note=x`]) {
              const { out, json } = invokeWithJson(path, { archetype, name: 'n', capabilities: ['c'] }, { target: 'world.house', horizon: 2 });
              assert.equal(json, JSON.stringify(out), path);
              checked++;
            }
          }
        }
      }
    }
    assert.ok(checked > 1000, `only ${checked} invocations checked`);
  });

  void test('is JSON.stringify of the result for any observer and kwargs', () => {
    fc.assert(fc.property(
      fc.constantFrom('world.house', 'world.house.manifest', 'concept.justice.help', 'self.memory.inspect', 'world.nowhere.witness', 'world.house.transform'),
      fc.record({ name: fc.string({ unit: 'binary', maxLength: 20 }), capabilities: fc.array(fc.string({ unit: 'binary', maxLength: 10 }), { maxLength: 4 }) }),
      fc.dictionary(fc.string({ unit: 'binary', maxLength: 8 }), fc.jsonValue({ maxDepth: 4 })),
      (path, observer, kwargs) => {
        const { out, json } = invokeWithJson(path, { ...observer, archetype: 'poet' }, kwargs);
        assert.equal(json, JSON.stringify(out));
      },
    ), { numRuns: 2000 });
  });
});
