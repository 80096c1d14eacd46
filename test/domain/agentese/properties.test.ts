import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  AGENTESE_CONTEXTS, CLAUSE_KEYS, KNOWN_ARCHETYPES, PHASES, affordances, invoke, parsePath, resolve, type Observer,
} from '../../../src/domain/agentese/index.js';
import { ApiError } from '../../../src/errors/api-error.js';

/** Returns normally, or throws an ApiError whose status is a client error. */
function returnsOrClientError(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    assert.ok(error.status >= 400 && error.status < 500, `${error.code} ${error.status}`);
    return true;
  }
}

const grammarChar = fc.constantFrom(...'worldselfconceptvoidtimehouse.[]@=_-019PLANQAtrue:'.split(''));
const nameChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_-'.split(''));
const letter = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzQZ'.split(''));
const name = fc.tuple(letter, fc.string({ unit: nameChar, maxLength: 10 })).map(([first, rest]) => first + rest);
const garbage = fc.string({ unit: grammarChar, maxLength: 12 });
const segment = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('house', 'forest', 'memory', 'justice', 'entropy', 'past', 'manifest', 'renovate', 'sip', 'help') },
  { weight: 3, arbitrary: name },
  { weight: 1, arbitrary: garbage },
);
const context = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...AGENTESE_CONTEXTS) }, { weight: 1, arbitrary: segment });
const value = fc.oneof(
  fc.constantFrom(...PHASES, 'plan', 'true', 'false', '0', '0.5', '1', '1.5', 'saas_phase9', 'a.b:c'),
  name,
  garbage,
);
const clause = fc.tuple(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...CLAUSE_KEYS) }, { weight: 1, arbitrary: garbage }), value)
  .map(([key, v]) => `[${key}=${v}]`);
const annotation = fc.tuple(fc.oneof(name, garbage), value).map(([k, v]) => `@${k}=${v}`);
/** Mostly grammar-shaped strings, so the property reaches every branch of the parser, not just position 0. */
const pathLike = fc.tuple(context, fc.array(segment, { minLength: 0, maxLength: 3 }), fc.array(fc.oneof(clause, annotation), { maxLength: 4 }))
  .map(([ctx, rest, tail]) => `${[ctx, ...rest].join('.')}${tail.join('')}`);

const anyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ unit: grammarChar, maxLength: 80 }),
  pathLike,
  fc.string({ unit: 'binary-ascii', minLength: 500, maxLength: 700 }),
);

const observer: fc.Arbitrary<Observer> = fc.record({
  name: fc.string({ unit: 'binary', maxLength: 100 }),
  archetype: fc.oneof(fc.constantFrom(...KNOWN_ARCHETYPES), fc.string({ unit: 'binary', maxLength: 80 })),
  capabilities: fc.array(fc.string({ maxLength: 70 }), { maxLength: 20 }),
}, { requiredKeys: [] });

void test('any string given to parsePath, resolve, affordances or invoke returns or throws an ApiError below 500', () => {
  fc.assert(fc.property(anyString, observer, (path, obs) => {
    returnsOrClientError(() => parsePath(path));
    returnsOrClientError(() => resolve(path, obs));
    returnsOrClientError(() => affordances(path, obs));
    returnsOrClientError(() => invoke(path, obs, {}));
  }), { numRuns: 3000 });
});

void test('paths that parse keep their parts in the raw text', () => {
  fc.assert(fc.property(pathLike, (path) => {
    let parsed;
    try {
      parsed = parsePath(path);
    } catch {
      return;
    }
    assert.ok(path.startsWith(`${parsed.context}.${parsed.holon}`));
    if (parsed.aspect !== undefined) assert.ok(path.startsWith(`${parsed.context}.${parsed.holon}.${parsed.aspect}`));
  }), { numRuns: 2000 });
});

const validPath = fc.constantFrom(
  'world.house', 'world.house.renovate', 'world.river.analyze', 'world.market.forecast', 'world.garden.relate',
  'world.house.transform', 'concept.justice.refine', 'concept.forest.manifest[phase=PLAN][sprint=s9]@span=x',
  'self.memory.inspect', 'void.entropy.sip[entropy=0.3]', 'void.gratitude.tithe', 'time.past.trace',
  'time.future.forecast', 'world.lighthouse.witness', 'concept.beauty.help[minimal_output=true]',
);
const jsonKwargs = fc.oneof(
  fc.dictionary(fc.string({ unit: 'binary', maxLength: 12 }), fc.jsonValue({ maxDepth: 6 })),
  fc.dictionary(fc.constantFrom('amount', 'horizon', 'target', 'into', '__proto__', 'constructor'), fc.jsonValue({ maxDepth: 3 })),
  fc.jsonValue({ maxDepth: 8 }),
  fc.string({ unit: 'binary', maxLength: 5000 }).map((text) => ({ text })),
);

void test('random JSON kwargs on a valid path never throw anything but an ApiError below 500', () => {
  fc.assert(fc.property(validPath, fc.constantFrom(...KNOWN_ARCHETYPES), jsonKwargs, (path, archetype, kwargs) => {
    returnsOrClientError(() => {
      const out = invoke(path, { archetype }, kwargs as Record<string, unknown>);
      assert.ok(out.tokens_used >= 1);
      assert.doesNotThrow(() => JSON.stringify(out));
    });
  }), { numRuns: 3000 });
});

void test('invoke is deterministic for any JSON kwargs', () => {
  fc.assert(fc.property(validPath, fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 4 })), (path, kwargs) => {
    let first: unknown;
    try {
      first = invoke(path, { archetype: 'economist' }, kwargs);
    } catch (error) {
      assert.ok(error instanceof ApiError);
      return;
    }
    assert.deepEqual(invoke(path, { archetype: 'economist' }, structuredClone(kwargs)), first);
  }), { numRuns: 1000 });
});
