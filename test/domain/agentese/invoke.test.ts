import { strict as assert } from 'node:assert';
import { Buffer } from 'node:buffer';
import { describe, test } from 'node:test';
import {
  AGENTESE_CONTEXTS, ASPECT_DESCRIPTIONS, KNOWN_ARCHETYPES, affordances, invoke, type JsonObject, type JsonValue,
} from '../../../src/domain/agentese/index.js';
import { apiErrorFrom, text } from './helpers.js';

function resultOf(path: string, observer: Parameters<typeof invoke>[1] = {}, kwargs: Record<string, unknown> = {}): JsonObject {
  const { result } = invoke(path, observer, kwargs);
  assert.ok(result !== null && typeof result === 'object' && !Array.isArray(result));
  return result;
}

void describe('invoke: envelope', () => {
  void test('invoke returns the path, a plain JSON result, tokens used and cached false', () => {
    const out = invoke('world.house', { archetype: 'architect' }, {});
    assert.equal(out.path, 'world.house');
    assert.equal(out.cached, false);
    assert.ok(Number.isInteger(out.tokens_used) && out.tokens_used >= 1);
    assert.deepEqual(JSON.parse(JSON.stringify(out)), out);
  });

  void test('the aspect defaults to manifest when the path has none', () => {
    assert.deepEqual(resultOf('world.house'), resultOf('world.house.manifest'));
    assert.equal(resultOf('world.house').aspect, 'manifest');
  });

  void test('every afforded aspect of every context and known archetype can be invoked', () => {
    for (const context of AGENTESE_CONTEXTS) {
      for (const archetype of KNOWN_ARCHETYPES) {
        for (const aspect of affordances(`${context}.x`, { archetype }).affordances) {
          for (const holon of ['x', context === 'world' ? 'house' : 'past']) {
            const result = resultOf(`${context}.${holon}.${aspect}`, { archetype }, { note: 'hi' });
            assert.equal(result.aspect, aspect);
            assert.equal(result.node, `${context}.${holon}`);
          }
        }
      }
    }
  });
});

void describe('invoke: affordance checks', () => {
  void test('invoking an aspect the observer lacks is denied with the available aspects listed', () => {
    const error = apiErrorFrom(() => invoke('world.house.renovate', { archetype: 'poet' }, {}), 'ERR_AGENTESE_AFFORDANCE_DENIED');
    assert.equal(error.status, 403);
    assert.equal(error.details?.aspect, 'renovate');
    assert.deepEqual(error.details?.available, affordances('world.house', { archetype: 'poet' }).affordances);
    assert.match(error.message, /renovate/);
  });

  void test('an aspect no archetype has is denied too, and a default observer can only use its own set', () => {
    apiErrorFrom(() => invoke('world.house.fly', {}, {}), 'ERR_AGENTESE_AFFORDANCE_DENIED');
    apiErrorFrom(() => invoke('concept.justice.refine', {}, {}), 'ERR_AGENTESE_AFFORDANCE_DENIED');
    apiErrorFrom(() => invoke('self.memory.sip', { archetype: 'admin' }, {}), 'ERR_AGENTESE_AFFORDANCE_DENIED');
  });

  void test('the same aspect is allowed for the archetype that has it', () => {
    assert.equal(resultOf('concept.justice.refine', { archetype: 'philosopher' }).aspect, 'refine');
  });
});

void describe('invoke: aspects', () => {
  void test('manifest shows the node through the observer\'s lens', () => {
    const result = resultOf('world.house', { archetype: 'architect', name: 'ada', capabilities: ['cad'] });
    assert.equal(result.description, 'A dwelling: rooms, walls and the people who live in them.');
    assert.equal(result.archetype, 'architect');
    assert.equal(result.lens, 'structure, load and form');
    assert.deepEqual(result.affordances, affordances('world.house', { archetype: 'architect' }).affordances);
    assert.deepEqual(result.observer, { name: 'ada', capabilities: ['cad'] });
    assert.equal(result.generic, false);
  });

  void test('manifest of an unknown holon shows a generic node', () => {
    const result = resultOf('void.whisper');
    assert.equal(result.generic, true);
    assert.match(text(result.description), /uncatalogued/);
  });

  void test('minimal_output trims manifest to the description and drops the clause echo', () => {
    assert.deepEqual(resultOf('world.house[minimal_output=true][phase=PLAN]'), {
      node: 'world.house',
      aspect: 'manifest',
      description: 'A dwelling: rooms, walls and the people who live in them.',
    });
  });

  void test('clauses and annotations are echoed in the result', () => {
    const result = resultOf('concept.forest.manifest[phase=PLAN][sprint=saas_phase9]@span=saas_hardening');
    assert.deepEqual(result.clauses, { phase: 'PLAN', sprint: 'saas_phase9' });
    assert.deepEqual(result.annotations, { span: 'saas_hardening' });
  });

  void test('witness gives a deterministic trace that records phase, sprint, span and annotations', () => {
    const result = resultOf('concept.forest.witness[phase=PLAN][span=s1]@owner=kent', { name: 'kent' });
    assert.match(text(result.trace_id), /^[0-9a-f]{16}$/);
    assert.equal(result.observer, 'kent');
    const events = result.events as JsonObject[];
    assert.deepEqual(events.map((e) => e.event), ['grasp', 'resolve', 'observe', 'phase', 'span', 'annotation', 'witness']);
    assert.equal(events[5]?.detail, 'owner=kent');
    assert.deepEqual(events.map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7]);
    assert.notEqual(resultOf('concept.forest.witness', { name: 'kent' }, { a: 1 }).trace_id, result.trace_id);
  });

  void test('help lists every afforded aspect with its description', () => {
    const result = resultOf('time.past.help', { archetype: 'poet' });
    assert.deepEqual(result.aspects, ['manifest', 'witness', 'affordances', 'help', 'trace', 'forecast']
      .map((aspect) => ({ aspect, description: ASPECT_DESCRIPTIONS[aspect as keyof typeof ASPECT_DESCRIPTIONS] })));
  });

  void test('affordances as an aspect returns the list', () => {
    assert.deepEqual(resultOf('self.memory.affordances').affordances, ['manifest', 'witness', 'affordances', 'help', 'inspect']);
  });

  void test('define gives the catalog definition', () => {
    const result = resultOf('world.forest.define');
    assert.equal(result.term, 'forest');
    assert.match(text(result.definition), /trees/);
  });

  void test('relate lists catalog relations and checks a target from kwargs', () => {
    assert.deepEqual(resultOf('world.house.relate').related, ['world.garden', 'world.town', 'world.workshop', 'self.memory']);
    const hit = resultOf('world.house.relate', {}, { target: 'self.memory' });
    assert.equal(hit.connected, true);
    assert.equal(resultOf('world.house.relate', {}, { target: 'time.past' }).connected, false);
    apiErrorFrom(() => invoke('world.house.relate', {}, { target: 7 }), 'ERR_VALIDATION');
  });

  void test('transform recasts the node into the form named in kwargs', () => {
    const result = resultOf('world.house.transform', {}, { into: 'a boat' });
    assert.equal(result.into, 'a boat');
    assert.match(text(result.summary), /world\.house recast as a boat/);
  });

  void test('inspect reports the observer, with name and capabilities capped', () => {
    const caps = Array.from({ length: 40 }, (_, i) => `cap${i}`);
    const result = resultOf('self.soul.inspect', { name: 'n'.repeat(500), archetype: 'Poet', capabilities: caps });
    const observer = result.observer as JsonObject;
    assert.equal(observer.archetype, 'poet');
    assert.equal(text(observer.name).length, 65); // 64 characters and an ellipsis
    assert.equal((observer.capabilities as JsonValue[]).length, 16);
  });

  void test('sip draws a deterministic amount no larger than requested, from kwargs or the entropy clause', () => {
    const a = resultOf('void.entropy.sip', {}, { amount: 0.5 });
    assert.equal(a.requested, 0.5);
    assert.ok(typeof a.drawn === 'number' && a.drawn >= 0 && a.drawn <= 0.5);
    assert.deepEqual(resultOf('void.entropy.sip', {}, { amount: 0.5 }), a);
    assert.equal(resultOf('void.entropy.sip[entropy=0.2]').requested, 0.2);
    assert.equal(resultOf('void.entropy.sip').requested, 0.05);
    apiErrorFrom(() => invoke('void.entropy.sip', {}, { amount: 2 }), 'ERR_VALIDATION');
  });

  void test('tithe returns what is offered', () => {
    const result = resultOf('void.gratitude.tithe', {}, { amount: 0.03 });
    assert.equal(result.offered, 0.03);
    assert.equal(result.returned, 0.03);
  });

  void test('trace follows the node and its relations in order', () => {
    const steps = resultOf('time.past.trace').steps as JsonObject[];
    assert.deepEqual(steps.map((s) => s.node), ['time.past', 'time.trace', 'self.memory', 'world.library', 'time.present']);
  });

  void test('forecast gives one signal per step of the horizon, 3 by default, and validates the horizon', () => {
    assert.equal((resultOf('time.future.forecast').outlook as JsonValue[]).length, 3);
    const result = resultOf('world.market.forecast', { archetype: 'economist' }, { horizon: 7 });
    const outlook = result.outlook as JsonObject[];
    assert.equal(outlook.length, 7);
    for (const entry of outlook) assert.ok(['steady', 'rising', 'falling', 'turbulent'].includes(text(entry.signal)));
    for (const horizon of [0, 13, 2.5, '3']) {
      apiErrorFrom(() => invoke('time.future.forecast', {}, { horizon }), 'ERR_VALIDATION');
    }
  });

  void test('other aspects summarise the action and echo a bounded copy of kwargs', () => {
    const kwargs = { budget: 1000, rooms: ['kitchen', 'attic'], note: 'x'.repeat(1000) };
    const result = resultOf('world.house.renovate', { archetype: 'architect' }, kwargs);
    assert.match(text(result.summary), /^renovate world\.house as architect: /);
    const inputs = result.inputs as JsonObject;
    assert.equal(inputs.budget, 1000);
    assert.deepEqual(inputs.rooms, ['kitchen', 'attic']);
    assert.equal(text(inputs.note).length, 257);
    assert.match(text(result.fingerprint), /^[0-9a-f]{16}$/);
  });

  void test('the kwargs echo caps item counts and depth', () => {
    const many = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${String(i).padStart(2, '0')}`, i]));
    const deep = { a: { b: { c: { d: { e: { f: 1 } } } } } };
    const inputs = resultOf('world.house.use', { archetype: 'inhabitant' }, { many, deep, list: Array.from({ length: 30 }, (_, i) => i) }).inputs as JsonObject;
    assert.equal(Object.keys(inputs.many as JsonObject).length, 17);
    assert.equal((inputs.many as JsonObject)['…'], '24 more');
    assert.equal((inputs.list as JsonValue[]).length, 17);
    assert.deepEqual(inputs.deep, { a: { b: { c: '[object of 1]' } } });
  });

  void test('a __proto__ key in kwargs is echoed as data', () => {
    const kwargs = JSON.parse('{"__proto__": {"polluted": true}}') as Record<string, unknown>;
    const inputs = resultOf('world.house.design', { archetype: 'architect' }, kwargs).inputs as JsonObject;
    assert.ok(Object.hasOwn(inputs, '__proto__'));
    assert.equal(Object.getPrototypeOf(inputs), Object.prototype);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

void describe('invoke: determinism and tokens', () => {
  void test('invoke is deterministic for the same path, observer and kwargs', () => {
    const observer = { name: 'kent', archetype: 'scientist', capabilities: ['lab'] };
    for (const path of ['world.river.experiment', 'void.entropy.sip', 'time.future.forecast', 'world.house.witness', 'concept.beauty.help']) {
      const kwargs = { seed: 42, nested: { list: [1, 'two', null, true] } };
      assert.deepEqual(invoke(path, observer, kwargs), invoke(path, { ...observer }, structuredClone(kwargs)), path);
    }
  });

  void test('the order of keys in kwargs does not change the result', () => {
    const a = invoke('world.house.analyze', { archetype: 'scientist' }, { x: 1, y: { p: 1, q: 2 } });
    const b = invoke('world.house.analyze', { archetype: 'scientist' }, { y: { q: 2, p: 1 }, x: 1 });
    assert.deepEqual(a, b);
  });

  void test('tokens_used is at least 1 and grows with the size of the input', () => {
    const small = invoke('world.house.analyze', { archetype: 'scientist' }, { text: 'a' }).tokens_used;
    const large = invoke('world.house.analyze', { archetype: 'scientist' }, { text: 'a'.repeat(4000) }).tokens_used;
    assert.ok(small >= 1);
    assert.ok(large >= small + 900, `${small} -> ${large}`);
    const manifest = invoke('world.house', {}, {}).tokens_used;
    const withKwargs = invoke('world.house', {}, { ignored: 'b'.repeat(400) }).tokens_used;
    assert.ok(withKwargs >= manifest + 100, `${manifest} -> ${withKwargs}`);
  });

  void test('tokens_used is ceil((input bytes + result bytes) / 4)', () => {
    const path = 'world.house.define';
    const observer = { archetype: 'poet' };
    const kwargs = { q: 'é' };
    const out = invoke(path, observer, kwargs);
    const bytes = Buffer.byteLength(path) + Buffer.byteLength(JSON.stringify(observer))
      + Buffer.byteLength(JSON.stringify(kwargs)) + Buffer.byteLength(JSON.stringify(out.result));
    assert.equal(out.tokens_used, Math.ceil(bytes / 4));
  });
});

void describe('invoke: hostile kwargs', () => {
  void test('deeply nested kwargs are measured without overflowing the stack', () => {
    let deep: unknown = 'bottom';
    for (let i = 0; i < 200_000; i++) deep = i % 2 === 0 ? [deep] : { d: deep };
    const out = invoke('world.house.measure', { archetype: 'architect' }, { deep });
    assert.ok(out.tokens_used > 200_000 / 4);
  });

  void test('null or missing kwargs mean no kwargs; arrays and primitives are validation errors', () => {
    assert.deepEqual(invoke('world.house', {}, null as unknown as Record<string, unknown>), invoke('world.house', {}, {}));
    assert.deepEqual(invoke('world.house', {}, undefined as unknown as Record<string, unknown>), invoke('world.house', {}, {}));
    for (const bad of [[1, 2], 'text', 3, true]) {
      const error = apiErrorFrom(() => invoke('world.house', {}, bad as unknown as Record<string, unknown>), 'ERR_VALIDATION');
      assert.equal(error.details?.field, 'kwargs');
    }
  });

  void test('cyclic kwargs are a validation error rather than a crash', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    apiErrorFrom(() => invoke('world.house.define', {}, cyclic), 'ERR_VALIDATION');
  });

  void test('shared (non-cyclic) references are fine', () => {
    const shared = { a: 1 };
    assert.ok(invoke('world.house.define', {}, { x: shared, y: shared }).tokens_used >= 1);
  });

  void test('kwargs whose JSON would exceed 16 MiB are a validation error', () => {
    const chunk = 'z'.repeat(1024 * 1024);
    const kwargs = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, chunk]));
    apiErrorFrom(() => invoke('world.house.define', {}, kwargs), 'ERR_VALIDATION');
  });

  void test('non-JSON leaves are written as JSON.stringify would, and bigint as digits', () => {
    const out = invoke('world.house.build', { archetype: 'developer' }, {
      nan: Number.NaN, inf: Number.POSITIVE_INFINITY, fn: () => 1, undef: undefined, big: 10n, list: [undefined, Symbol('s')],
    });
    assert.deepEqual((out.result as JsonObject).inputs, { big: '10', inf: null, list: [null, null], nan: null });
  });
});
