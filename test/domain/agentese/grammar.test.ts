import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { AGENTESE_CONTEXTS, CLAUSE_KEYS, MAX_PATH_LENGTH, PHASES, parsePath } from '../../../src/domain/agentese/index.js';
import { apiErrorFrom, positionOf } from './helpers.js';

void describe('parsePath: segments', () => {
  void test('a two-segment path has a context and a holon and no aspect property', () => {
    const parsed = parsePath('world.house');
    assert.deepEqual(parsed, { raw: 'world.house', context: 'world', holon: 'house', clauses: {}, annotations: {} });
    assert.equal(Object.hasOwn(parsed, 'aspect'), false);
  });

  void test('a three-segment path names the aspect', () => {
    const parsed = parsePath('self.memory.manifest');
    assert.equal(parsed.context, 'self');
    assert.equal(parsed.holon, 'memory');
    assert.equal(parsed.aspect, 'manifest');
  });

  void test('every one of the five contexts parses', () => {
    for (const context of AGENTESE_CONTEXTS) assert.equal(parsePath(`${context}.x`).context, context);
  });

  void test('segments may mix letters, digits, underscores and hyphens after a leading letter', () => {
    const parsed = parsePath('world.Old_house-2.re_Model-3');
    assert.equal(parsed.holon, 'Old_house-2');
    assert.equal(parsed.aspect, 're_Model-3');
  });

  void test('the seed path from the original project parses completely', () => {
    const parsed = parsePath('concept.forest.manifest[phase=PLAN][sprint=saas_phase9]@span=saas_hardening');
    assert.deepEqual(parsed, {
      raw: 'concept.forest.manifest[phase=PLAN][sprint=saas_phase9]@span=saas_hardening',
      context: 'concept',
      holon: 'forest',
      aspect: 'manifest',
      clauses: { phase: 'PLAN', sprint: 'saas_phase9' },
      annotations: { span: 'saas_hardening' },
    });
  });
});

void describe('parsePath: clauses', () => {
  void test('every phase value is accepted and normalised to upper case', () => {
    for (const phase of PHASES) {
      assert.equal(parsePath(`world.house[phase=${phase}]`).clauses.phase, phase);
      assert.equal(parsePath(`world.house[phase=${phase.toLowerCase()}]`).clauses.phase, phase);
    }
  });

  void test('an unknown phase is a syntax error at the value, listing the allowed phases', () => {
    const error = apiErrorFrom(() => parsePath('world.house[phase=DREAM]'), 'ERR_AGENTESE_PATH_SYNTAX');
    assert.equal(error.details?.position, 18);
    assert.deepEqual(error.details?.allowed, [...PHASES]);
  });

  void test('entropy is a decimal number from 0 to 1', () => {
    assert.equal(parsePath('void.entropy[entropy=0]').clauses.entropy, 0);
    assert.equal(parsePath('void.entropy[entropy=0.07]').clauses.entropy, 0.07);
    assert.equal(parsePath('void.entropy[entropy=1]').clauses.entropy, 1);
    assert.equal(parsePath('void.entropy[entropy=1.0]').clauses.entropy, 1);
  });

  void test('entropy outside 0..1 or not a plain decimal is a syntax error at the value', () => {
    for (const bad of ['1.5', '2', '-0.1', '.5', '1.', '0x1', '1e-2', 'NaN', 'abc', '0.1.2']) {
      assert.equal(positionOf(() => parsePath(`void.entropy[entropy=${bad}]`)), 21, bad);
    }
  });

  void test('law_check, rollback and minimal_output are booleans', () => {
    const parsed = parsePath('world.house[law_check=true][rollback=false][minimal_output=true]');
    assert.deepEqual(parsed.clauses, { law_check: true, rollback: false, minimal_output: true });
  });

  void test('a boolean clause with another value is a syntax error', () => {
    for (const key of ['law_check', 'rollback', 'minimal_output']) {
      const error = apiErrorFrom(() => parsePath(`world.house[${key}=yes]`), 'ERR_AGENTESE_PATH_SYNTAX');
      assert.equal(error.details?.position, 13 + key.length);
      assert.equal(error.details?.key, key);
    }
  });

  void test('span and sprint are identifier-like strings', () => {
    const parsed = parsePath('concept.forest[span=saas_hardening][sprint=phase-9.2:b]');
    assert.deepEqual(parsed.clauses, { span: 'saas_hardening', sprint: 'phase-9.2:b' });
  });

  void test('a span value must start with a letter or digit', () => {
    assert.equal(positionOf(() => parsePath('concept.forest[span=_x]')), 20);
  });

  void test('every clause key is accepted together, in any order', () => {
    const parsed = parsePath('time.past[minimal_output=false][sprint=s1][rollback=true][span=a][law_check=false][entropy=0.5][phase=QA]');
    assert.deepEqual(Object.keys(parsed.clauses).sort(), [...CLAUSE_KEYS].sort());
  });

  void test('an unknown clause key is a syntax error naming it at its position', () => {
    const error = apiErrorFrom(() => parsePath('world.house[colour=red]'), 'ERR_AGENTESE_PATH_SYNTAX');
    assert.equal(error.details?.position, 12);
    assert.equal(error.details?.key, 'colour');
    assert.match(error.message, /unknown clause key "colour"/);
    assert.deepEqual(error.details?.known, [...CLAUSE_KEYS]);
  });

  void test('clause keys are case-sensitive', () => {
    assert.equal(apiErrorFrom(() => parsePath('world.house[Phase=PLAN]'), 'ERR_AGENTESE_PATH_SYNTAX').details?.key, 'Phase');
  });

  void test('a repeated clause key is a syntax error at the second occurrence', () => {
    assert.equal(positionOf(() => parsePath('world.house[phase=PLAN][phase=QA]')), 24);
  });

  void test('malformed clauses report the position of the offending character', () => {
    const cases: [string, number][] = [
      ['world.house[', 12], // end of input where the key should start
      ['world.house[]', 12], // ']' where the key should start
      ['world.house[phase]', 17], // ']' where '=' should be
      ['world.house[phase=]', 18], // empty value
      ['world.house[phase=PLAN', 22], // unterminated
      ['world.house[phase=PLAN x]', 22], // space inside the clause
      ['world.house[span=a]]', 19], // stray ']'
      ['world.house[span=a b]', 18],
    ];
    for (const [path, position] of cases) assert.equal(positionOf(() => parsePath(path)), position, path);
  });

  void test('a clause value longer than 128 characters is a syntax error at the 129th character', () => {
    const value = `a${'b'.repeat(200)}`;
    assert.equal(positionOf(() => parsePath(`world.house[span=${value}]`)), 17 + 128);
  });
});

void describe('parsePath: annotations', () => {
  void test('annotations are free-form key=value strings after the segments', () => {
    const parsed = parsePath('world.house@span=saas_hardening@owner=kent@ticket=KG-42');
    assert.deepEqual(parsed.annotations, { span: 'saas_hardening', owner: 'kent', ticket: 'KG-42' });
  });

  void test('clauses and annotations may be interleaved', () => {
    const parsed = parsePath('world.house@a=1[phase=PLAN]@b=two[entropy=0.2]');
    assert.deepEqual(parsed.annotations, { a: '1', b: 'two' });
    assert.deepEqual(parsed.clauses, { phase: 'PLAN', entropy: 0.2 });
  });

  void test('a malformed annotation reports the offending position', () => {
    const cases: [string, number][] = [
      ['world.house@', 12],
      ['world.house@1=a', 12],
      ['world.house@span', 16],
      ['world.house@span=', 17],
      ['world.house@span=a b', 18],
      ['world.house@span=a@span=b', 19],
    ];
    for (const [path, position] of cases) assert.equal(positionOf(() => parsePath(path)), position, path);
  });

  void test('more than 8 annotations is a syntax error at the ninth', () => {
    const eight = Array.from({ length: 8 }, (_, i) => `@k${i}=v`).join('');
    assert.equal(Object.keys(parsePath(`world.house${eight}`).annotations).length, 8);
    assert.equal(positionOf(() => parsePath(`world.house${eight}@k8=v`)), 11 + eight.length);
  });

  void test('annotation keys that exist on Object.prototype stay ordinary data', () => {
    const parsed = parsePath('world.house@constructor=x@toString=y');
    assert.deepEqual(parsed.annotations, { constructor: 'x', toString: 'y' });
  });
});

void describe('parsePath: syntax errors and their positions', () => {
  void test('fewer than two segments is a syntax error where the dot was expected', () => {
    assert.equal(positionOf(() => parsePath('world')), 5);
    assert.equal(positionOf(() => parsePath('world[phase=PLAN]')), 5);
    assert.equal(positionOf(() => parsePath('')), 0);
  });

  void test('an empty segment is reported at the character where it should start', () => {
    assert.equal(positionOf(() => parsePath('.house')), 0);
    assert.equal(positionOf(() => parsePath('world..house')), 6);
    assert.equal(positionOf(() => parsePath('world.')), 6);
    assert.equal(positionOf(() => parsePath('world.house.')), 12);
  });

  void test('a segment must start with a letter', () => {
    assert.equal(positionOf(() => parsePath('world.1house')), 6);
    assert.equal(positionOf(() => parsePath('world.house._x')), 12);
    assert.equal(positionOf(() => parsePath('9world.house')), 0);
  });

  void test('a fourth segment is a syntax error at the dot that starts it', () => {
    const error = apiErrorFrom(() => parsePath('world.house.manifest.extra'), 'ERR_AGENTESE_PATH_SYNTAX');
    assert.equal(error.details?.position, 20);
    assert.match(error.message, /at most three segments/);
  });

  void test('characters outside the grammar are reported where they occur', () => {
    assert.equal(positionOf(() => parsePath('world.ho use')), 8);
    assert.equal(positionOf(() => parsePath(' world.house')), 0);
    assert.equal(positionOf(() => parsePath('world.house ')), 11);
    assert.equal(positionOf(() => parsePath('world.hoüse')), 8);
    assert.equal(positionOf(() => parsePath('world.house/x')), 11);
  });

  void test('a segment longer than 64 characters is a syntax error at the 65th character', () => {
    assert.equal(parsePath(`world.${'h'.repeat(64)}`).holon.length, 64);
    assert.equal(positionOf(() => parsePath(`world.${'h'.repeat(65)}`)), 6 + 64);
  });

  void test('a path longer than 512 characters is a syntax error at position 512', () => {
    const value = 'x'.repeat(128);
    const ok = `world.house@a=${value}@b=${value}@c=${value}@d=${'x'.repeat(105)}`;
    assert.equal(ok.length, MAX_PATH_LENGTH);
    assert.equal(positionOf(() => parsePath(`${ok}x`)), 512);
  });

  void test('the message quotes the character found, or says the input ended', () => {
    assert.match(apiErrorFrom(() => parsePath('world.ho$'), 'ERR_AGENTESE_PATH_SYNTAX').message, /found "\$"/);
    assert.match(apiErrorFrom(() => parsePath('world'), 'ERR_AGENTESE_PATH_SYNTAX').message, /found end of input/);
  });

  void test('syntax errors are 400s', () => {
    assert.equal(apiErrorFrom(() => parsePath('world'), 'ERR_AGENTESE_PATH_SYNTAX').status, 400);
  });

  void test('a non-string path is a syntax error at position 0', () => {
    assert.equal(positionOf(() => parsePath(42 as unknown as string)), 0);
  });
});

void describe('parsePath: contexts', () => {
  void test('an unknown context is not found and the error lists the five contexts', () => {
    const error = apiErrorFrom(() => parsePath('heaven.gate'), 'ERR_AGENTESE_PATH_NOT_FOUND');
    assert.equal(error.status, 404);
    assert.deepEqual(error.details?.contexts, ['world', 'self', 'concept', 'void', 'time']);
    assert.match(error.message, /"heaven"/);
    assert.match(error.message, /world, self, concept, void, time/);
  });

  void test('contexts are case-sensitive', () => {
    apiErrorFrom(() => parsePath('World.house'), 'ERR_AGENTESE_PATH_NOT_FOUND');
  });

  void test('syntax is checked before the context, so a malformed path with a bad context is a syntax error', () => {
    apiErrorFrom(() => parsePath('heaven.gate[colour=red]'), 'ERR_AGENTESE_PATH_SYNTAX');
  });
});
