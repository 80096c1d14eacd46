import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { callgrindTotal, parseAnnotate, parsePerfMap, resolveAddress, subtractCosts } from '../../bench/lib/callgrind.js';

const PERF_MAP = [
  '1000 100 JS:*routeHandler /app/node_modules/fastify/lib/route.js:465:25',
  '2000 40 JS:~old /app/x.js:1:1',
  'not a map line',
  // V8 collected `old` and put new code in the same place: the later entry names it.
  '2000 80 JS:*replacement /app/y.js:2:2',
].join('\n');

void test('a perf map resolves an address to the last code that covered it, and nothing outside every entry', () => {
  const map = parsePerfMap(PERF_MAP);
  assert.equal(map.length, 3);
  assert.equal(resolveAddress(map, 0x1000), 'JS:*routeHandler /app/node_modules/fastify/lib/route.js:465:25');
  assert.equal(resolveAddress(map, 0x10ff), 'JS:*routeHandler /app/node_modules/fastify/lib/route.js:465:25');
  assert.equal(resolveAddress(map, 0x1100), undefined);
  assert.equal(resolveAddress(map, 0x2010), 'JS:*replacement /app/y.js:2:2');
  assert.equal(resolveAddress(map, 0x2070), 'JS:*replacement /app/y.js:2:2');
});

void test('the total of a callgrind file is its totals line, else its summary line, and a file without either is an error', () => {
  assert.equal(callgrindTotal('version: 1\ncreator: callgrind-3.19.0\nsummary: 1328418607\n'), 1328418607);
  assert.equal(callgrindTotal('events: Ir\ntotals: 42\n'), 42);
  // The first dump after instrumentation went off and on again: a wrapped-around summary, right totals.
  assert.equal(callgrindTotal('summary: 18446744073517515392\nfn=(1) main\n0 208707501\ntotals: 208707501\n'), 208707501);
  assert.throws(() => callgrindTotal('events: Ir\n'), /no "totals:" or "summary:" line/);
});

void test('callgrind_annotate lines become instructions by function: generated code named from the perf map, symbols without file and object', () => {
  const annotate = [
    '--------------------------------------------------------------------------------',
    '1,728,520,307 (100.0%)  PROGRAM TOTALS',
    '--------------------------------------------------------------------------------',
    'Ir                   file:function',
    '91,133,174 ( 5.27%)  ???:Builtins_KeyedLoadIC_Megamorphic [/usr/bin/node]',
    '51,689,678 ( 2.99%)  ./string/../sysdeps/x86_64/multiarch/memset-vec-unaligned-erms.S:__memset_avx2_unaligned_erms [/usr/lib/x86_64-linux-gnu/libc.so.6]',
    '38,912,677 ( 2.25%)  ???:0x0000000000001040 [???]',
    '1,000 ( 0.00%)  ???:0x0000000000001080 [???]',
    '500 ( 0.00%)  ???:0x0000000000009999 [???]',
    '19,680,000 ( 1.14%)  ???:v8::Object::Get(v8::Local<v8::Context>, unsigned int) [/usr/bin/node]',
  ].join('\n');
  const costs = parseAnnotate(annotate, parsePerfMap(PERF_MAP));
  assert.deepEqual(Object.fromEntries(costs), {
    'Builtins_KeyedLoadIC_Megamorphic': 91_133_174,
    '__memset_avx2_unaligned_erms': 51_689_678,
    // Two addresses in one function add up.
    'JS *routeHandler /app/node_modules/fastify/lib/route.js:465:25': 38_913_677,
    '(generated code, unnamed)': 500,
    'v8::Object::Get(v8::Local<v8::Context>, unsigned int)': 19_680_000,
  });
});

void test('subtracting costs keeps functions that only one side ran', () => {
  const diff = subtractCosts(new Map([['a', 10], ['b', 5]]), new Map([['a', 4], ['c', 3]]));
  assert.deepEqual(Object.fromEntries(diff), { a: 6, b: 5, c: -3 });
});
