import { strict as assert } from 'node:assert';
import { Buffer } from 'node:buffer';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  AGENTESE_CONTEXTS, KNOWN_ARCHETYPES, affordances, catalogHolons, invoke, invokeText, type Observer,
} from '../../../src/domain/agentese/index.js';

/** invokeText must be invoke() as JSON exactly (text, size, tokens): the route sends it as the body. */
function assertSameAnswer(path: string, observer: Observer, kwargs: Record<string, unknown>): void {
  const text = invokeText(path, observer, kwargs);
  const out = invoke(path, observer, kwargs);
  assert.equal(text.json, JSON.stringify(out), path);
  assert.equal(text.bytes, Buffer.byteLength(text.json, 'utf8'), path);
  assert.equal(text.tokens_used, out.tokens_used, path);
  assert.equal(text.aspect, (out.result as { aspect: string }).aspect, path);
}

const OBSERVERS = (archetype: string): Observer[] => [
  { archetype },
  { archetype, name: 'n', capabilities: ['c'] },
  { archetype, name: 'zoë "quoted"\n', capabilities: [] },
  { archetype, capabilities: ['a', 'b'] },
];

void describe('invoke answer text', () => {
  void test('is JSON.stringify of invoke() for every context, holon, archetype, afforded aspect and observer shape', () => {
    let checked = 0;
    for (const context of AGENTESE_CONTEXTS) {
      for (const holon of [...catalogHolons(context), 'uncatalogued_thing']) {
        for (const archetype of [...KNOWN_ARCHETYPES, 'unknown-archetype']) {
          for (const aspect of affordances(`${context}.${holon}`, { archetype }).affordances) {
            const paths = [`${context}.${holon}.${aspect}`, `${context}.${holon}.${aspect}[minimal_output=true]@note=x`, `${context}.${holon}.${aspect}[phase=QA]@note=x`];
            if (aspect === 'manifest') paths.push(`${context}.${holon}`, `${context}.${holon}[entropy=0.5]`, `${context}.${holon}@a=1@b=2`);
            for (const path of paths) {
              for (const observer of aspect === 'manifest' ? OBSERVERS(archetype) : OBSERVERS(archetype).slice(1, 2)) {
                assertSameAnswer(path, observer, { target: 'world.house', horizon: 2 });
                checked++;
              }
            }
          }
        }
      }
    }
    assert.ok(checked > 1000, `only ${checked} invocations checked`);
  });

  void test('is JSON.stringify of invoke() for any observer and kwargs', () => {
    fc.assert(fc.property(
      fc.constantFrom('world.house', 'world.house.manifest', 'world.nowhere', 'concept.justice.help', 'self.memory.inspect', 'world.nowhere.witness', 'world.house.transform', 'world.house[minimal_output=true]'),
      fc.record({ name: fc.string({ unit: 'binary', maxLength: 20 }), capabilities: fc.array(fc.string({ unit: 'binary', maxLength: 10 }), { maxLength: 4 }) }, { requiredKeys: [] }),
      fc.constantFrom('poet', 'architect', 'Unknown One', ''),
      fc.dictionary(fc.string({ unit: 'binary', maxLength: 8 }), fc.jsonValue({ maxDepth: 4 })),
      (path, observer, archetype, kwargs) => {
        assertSameAnswer(path, { ...observer, archetype }, kwargs);
      },
    ), { numRuns: 2000 });
  });

  void test('gives the same text for the same call again (pieces serialised once are reused, not changed)', () => {
    const first = invokeText('world.house', { archetype: 'architect' }, {});
    const again = invokeText('world.house', { archetype: 'architect' }, {});
    const other = invokeText('world.house', { archetype: 'poet', name: 'x' }, {});
    assert.equal(again.json, first.json);
    assert.notEqual(other.json, first.json);
    assert.equal(invokeText('world.house', { archetype: 'architect' }, {}).json, first.json);
  });
});
