import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import {
  AGENTESE_CONTEXTS, ASPECT_DESCRIPTIONS, KNOWN_ARCHETYPES, affordances, resolve,
} from '../../../src/domain/agentese/index.js';
import { apiErrorFrom } from './helpers.js';

const BASE = ['manifest', 'witness', 'affordances', 'help'];
const WORLD = [...BASE, 'define', 'relate', 'transform'];

const WORLD_EXPECTED: Record<string, string[]> = {
  architect: [...WORLD, 'renovate', 'measure', 'blueprint', 'demolish', 'design'],
  poet: [...WORLD, 'describe', 'metaphorize', 'inhabit', 'contemplate'],
  economist: [...WORLD, 'appraise', 'forecast', 'compare', 'trade'],
  inhabitant: [...WORLD, 'enter', 'exit', 'furnish', 'repair', 'use'],
  scientist: [...WORLD, 'analyze', 'measure', 'experiment', 'hypothesize'],
  developer: [...WORLD, 'build', 'deploy', 'debug', 'test', 'refactor'],
  admin: [...WORLD, 'configure', 'monitor', 'audit', 'provision'],
  default: WORLD,
  philosopher: WORLD,
};

const CONCEPT_EXPECTED: Record<string, string[]> = {
  philosopher: [...BASE, 'refine', 'dialectic', 'synthesize', 'critique'],
  scientist: [...BASE, 'hypothesize', 'validate', 'falsify', 'model'],
  engineer: [...BASE, 'formalize', 'specify', 'optimize', 'implement'],
  artist: [...BASE, 'express', 'interpret', 'juxtapose', 'remix'],
  teacher: [...BASE, 'explain', 'exemplify', 'simplify', 'quiz'],
  default: [...BASE, 'relate'],
  architect: [...BASE, 'relate'],
  poet: [...BASE, 'relate'],
};

void describe('affordances per context and archetype', () => {
  void test('world affords the base set, define/relate/transform and the archetype\'s own aspects', () => {
    for (const [archetype, expected] of Object.entries(WORLD_EXPECTED)) {
      assert.deepEqual(affordances('world.house', { archetype }).affordances, expected, archetype);
    }
  });

  void test('concept affords the base set plus the archetype\'s aspects, or relate for other archetypes', () => {
    for (const [archetype, expected] of Object.entries(CONCEPT_EXPECTED)) {
      assert.deepEqual(affordances('concept.justice', { archetype }).affordances, expected, archetype);
    }
  });

  void test('self adds inspect, void adds sip and tithe, time adds trace and forecast, for every archetype', () => {
    for (const archetype of [...KNOWN_ARCHETYPES, 'stranger']) {
      assert.deepEqual(affordances('self.memory', { archetype }).affordances, [...BASE, 'inspect']);
      assert.deepEqual(affordances('void.entropy', { archetype }).affordances, [...BASE, 'sip', 'tithe']);
      assert.deepEqual(affordances('time.past', { archetype }).affordances, [...BASE, 'trace', 'forecast']);
    }
  });

  void test('the base set is always present, first and in order', () => {
    for (const context of AGENTESE_CONTEXTS) {
      for (const archetype of [...KNOWN_ARCHETYPES, 'stranger']) {
        assert.deepEqual(affordances(`${context}.x`, { archetype }).affordances.slice(0, 4), BASE);
      }
    }
  });

  void test('affordance lists have no duplicates and every aspect has a description', () => {
    for (const context of AGENTESE_CONTEXTS) {
      for (const archetype of KNOWN_ARCHETYPES) {
        const list = affordances(`${context}.x`, { archetype }).affordances;
        assert.equal(new Set(list).size, list.length);
        for (const aspect of list) assert.ok(Object.hasOwn(ASPECT_DESCRIPTIONS, aspect), aspect);
      }
    }
  });

  void test('an observer without an archetype is the default archetype', () => {
    const result = affordances('world.house', {});
    assert.equal(result.observer_archetype, 'default');
    assert.deepEqual(result.affordances, WORLD);
    assert.equal(affordances('world.house', { archetype: '  ' }).observer_archetype, 'default');
  });

  void test('archetypes are matched case-insensitively and reported normalised', () => {
    const result = affordances('world.house', { archetype: ' Architect ' });
    assert.equal(result.observer_archetype, 'architect');
    assert.deepEqual(result.affordances, WORLD_EXPECTED.architect);
  });

  void test('an unknown archetype is reported as given and gets the default affordances', () => {
    const result = affordances('world.house', { archetype: 'gardener' });
    assert.equal(result.observer_archetype, 'gardener');
    assert.deepEqual(result.affordances, WORLD);
  });

  void test('an archetype longer than 64 characters is a validation error', () => {
    const error = apiErrorFrom(() => affordances('world.house', { archetype: 'a'.repeat(65) }), 'ERR_VALIDATION');
    assert.equal(error.details?.field, 'observer.archetype');
  });

  void test('capabilities do not change affordances', () => {
    assert.deepEqual(
      affordances('world.house', { archetype: 'poet', capabilities: ['admin', 'build'] }).affordances,
      WORLD_EXPECTED.poet,
    );
  });

  void test('an aspect in the path does not change the affordances and the path is echoed', () => {
    const result = affordances('world.house.renovate[phase=PLAN]', { archetype: 'poet' });
    assert.equal(result.path, 'world.house.renovate[phase=PLAN]');
    assert.deepEqual(result.affordances, WORLD_EXPECTED.poet);
  });

  void test('callers get their own copy of the list', () => {
    const first = affordances('world.house', {});
    first.affordances.push('mutated');
    assert.deepEqual(affordances('world.house', {}).affordances, WORLD);
  });
});

void describe('resolve', () => {
  void test('a catalog holon resolves to its handle, description and the observer\'s affordances', () => {
    assert.deepEqual(resolve('world.house', { archetype: 'architect' }), {
      path: 'world.house',
      handle: 'world.house',
      context: 'world',
      holon: 'house',
      aspect: null,
      description: 'A dwelling: rooms, walls and the people who live in them.',
      generic: false,
      affordances: WORLD_EXPECTED.architect,
    });
  });

  void test('the handle includes the aspect but not clauses or annotations', () => {
    const result = resolve('concept.forest.manifest[phase=PLAN][sprint=saas_phase9]@span=saas_hardening', {});
    assert.equal(result.handle, 'concept.forest.manifest');
    assert.equal(result.aspect, 'manifest');
    assert.equal(result.path, 'concept.forest.manifest[phase=PLAN][sprint=saas_phase9]@span=saas_hardening');
    assert.match(result.description, /forest of plans/);
  });

  void test('an unknown holon in a valid context resolves to a generic node', () => {
    const result = resolve('world.lighthouse', { archetype: 'poet' });
    assert.equal(result.generic, true);
    assert.equal(result.handle, 'world.lighthouse');
    assert.match(result.description, /uncatalogued holon in the world context/);
    assert.deepEqual(result.affordances, WORLD_EXPECTED.poet);
  });

  void test('holon names that exist on Object.prototype are generic nodes, not prototype members', () => {
    for (const holon of ['constructor', 'toString', 'hasOwnProperty']) {
      assert.equal(resolve(`world.${holon}`, {}).generic, true);
    }
  });

  void test('resolve does not check the aspect against the affordances; invoke does', () => {
    assert.equal(resolve('world.house.renovate', { archetype: 'poet' }).aspect, 'renovate');
  });

  void test('resolve results are plain JSON data', () => {
    const result = resolve('time.past.trace', { archetype: 'scientist' });
    assert.deepEqual(JSON.parse(JSON.stringify(result)), result);
  });

  void test('resolve reports syntax and context errors from the parser', () => {
    apiErrorFrom(() => resolve('world', {}), 'ERR_AGENTESE_PATH_SYNTAX');
    apiErrorFrom(() => resolve('heaven.gate', {}), 'ERR_AGENTESE_PATH_NOT_FOUND');
  });
});
