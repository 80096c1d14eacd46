import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ERROR_CODES } from '../src/errors/registry.js';

const repoRoot = join(import.meta.dirname, '..', '..');

function documentedCodes(): Map<string, number> {
  const doc = readFileSync(join(repoRoot, 'docs', 'errors.md'), 'utf8');
  const rows = new Map<string, number>();
  for (const match of doc.matchAll(/^\|\s*`(ERR_[A-Z_]+)`\s*\|\s*(\d{3})\s*\|/gm)) {
    rows.set(match[1] ?? '', Number(match[2]));
  }
  return rows;
}

test('every error code in the registry is documented in docs/errors.md with the same status', () => {
  const documented = documentedCodes();
  for (const [code, spec] of Object.entries(ERROR_CODES)) {
    assert.equal(documented.get(code), spec.status, `${code} should be documented with status ${spec.status}`);
  }
});

test('docs/errors.md documents no code that the registry does not have', () => {
  const extra = [...documentedCodes().keys()].filter((code) => !(code in ERROR_CODES));
  assert.deepEqual(extra, []);
});

test('every error code maps to a 4xx or 5xx status', () => {
  for (const [code, spec] of Object.entries(ERROR_CODES)) {
    assert.ok(spec.status >= 400 && spec.status < 600, code);
  }
});
