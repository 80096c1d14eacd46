import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  AGENTESE_CONTEXTS, CLAUSE_KEYS, KNOWN_ARCHETYPES, PHASES, affordances, catalogHolons, parsePath,
} from '../../../src/domain/agentese/index.js';
import { positionOf } from './helpers.js';

// Compiled to dist/test/domain/agentese; the docs stay at the repository root.
const doc = readFileSync(join(import.meta.dirname, '..', '..', '..', '..', 'docs', 'agentese.md'), 'utf8');

void test('docs/agentese.md lists every catalog holon', () => {
  for (const context of AGENTESE_CONTEXTS) {
    for (const holon of catalogHolons(context)) assert.ok(doc.includes(`\`${context}.${holon}\``), `${context}.${holon}`);
  }
});

void test('docs/agentese.md names every clause key, phase, archetype and afforded aspect', () => {
  for (const key of CLAUSE_KEYS) assert.ok(doc.includes(`\`${key}\``), key);
  for (const phase of PHASES) assert.ok(doc.includes(`\`${phase}\``), phase);
  for (const archetype of KNOWN_ARCHETYPES) assert.ok(doc.includes(`\`${archetype}\``), archetype);
  for (const context of AGENTESE_CONTEXTS) {
    for (const archetype of KNOWN_ARCHETYPES) {
      for (const aspect of affordances(`${context}.x`, { archetype }).affordances) assert.ok(doc.includes(`\`${aspect}\``), aspect);
    }
  }
});

void test('the syntax error examples in docs/agentese.md report the documented positions', () => {
  const section = doc.slice(doc.indexOf('Examples of syntax errors'));
  const rows = [...section.matchAll(/^\| `([^`]+)` \| (\d+) \|/gm)];
  assert.ok(rows.length >= 6);
  for (const [, path = '', position = ''] of rows) {
    assert.equal(positionOf(() => parsePath(path)), Number(position), path);
  }
});
