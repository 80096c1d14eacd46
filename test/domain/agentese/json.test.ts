import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { MAX_CANONICAL_LENGTH, canonicalJson } from '../../../src/domain/agentese/json.js';
import { ApiError } from '../../../src/errors/api-error.js';

/** The definition, for JSON values: JSON.stringify's text with each object's keys in sorted order. */
function reference(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(reference).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const record = v as Record<string, unknown>;
    return `{${Object.keys(record).sort().map((k) => `${JSON.stringify(k)}:${reference(record[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

function nested(v: unknown, depth: number): unknown {
  let out = v;
  for (let i = 0; i < depth; i++) out = i % 2 === 0 ? [out] : { k: out };
  return out;
}

function validationError(field: string, message: RegExp): (err: unknown) => boolean {
  return (err) => err instanceof ApiError && err.code === 'ERR_VALIDATION' && message.test(err.message) && err.message.includes(field);
}

describe('canonical JSON', () => {
  test('is JSON.stringify with sorted keys, and as long as JSON.stringify, for any JSON value shallow or deep', () => {
    fc.assert(fc.property(fc.jsonValue(), fc.integer({ min: 0, max: 80 }), (value, depth) => {
      const v = nested(value, depth);
      const text = canonicalJson(v, 'kwargs');
      assert.equal(text, reference(v));
      assert.equal(text.length, JSON.stringify(v).length);
    }), { numRuns: 1500 });
  });

  test('writes non-JSON leaves the way JSON.stringify does, bigint as digits', () => {
    const value = { b: [undefined, () => 1, Symbol('s'), NaN, -Infinity], a: undefined, c: 12n, d: { f: () => 1 } };
    assert.equal(canonicalJson(value, 'kwargs'), '{"b":[null,null,null,null,null],"c":12,"d":{}}');
    assert.equal(canonicalJson(undefined, 'kwargs'), 'null');
    assert.equal(canonicalJson(nested(value, 50), 'kwargs'), reference(nested(JSON.parse('{"b":[null,null,null,null,null],"c":12,"d":{}}'), 50)));
  });

  test('a value nested 100,000 deep is written without overflowing the stack', () => {
    const text = canonicalJson(nested(1, 100_000), 'kwargs');
    // 50,000 levels of [..] and 50,000 of {"k":..} around the 1
    assert.equal(text.length, 1 + 50_000 * 2 + 50_000 * 6);
    assert.ok(text.startsWith('{"k":[{"k":[') && text.endsWith(']}]}'));
  });

  test('a cycle, shallow or deep, is a validation error naming the field', () => {
    const shallow: Record<string, unknown> = { a: 1 };
    shallow.self = shallow;
    assert.throws(() => canonicalJson(shallow, 'kwargs'), validationError('kwargs', /cycle/));
    const deep: Record<string, unknown> = { a: 1 };
    deep.down = nested(deep, 60);
    assert.throws(() => canonicalJson(deep, 'observer'), validationError('observer', /cycle/));
  });

  test('a value whose JSON would pass the limit is refused, also when it is small but shares subtrees', () => {
    let shared: unknown = 'x'.repeat(64);
    for (let i = 0; i < 40; i++) shared = [shared, shared]; // 2^40 leaves if written out
    const started = performance.now();
    assert.throws(() => canonicalJson(shared, 'kwargs'), validationError('kwargs', /too large/));
    assert.ok(performance.now() - started < 10_000, 'refused without writing it all');
    assert.throws(() => canonicalJson('y'.repeat(MAX_CANONICAL_LENGTH), 'kwargs'), validationError('kwargs', /too large/));
  });
});
