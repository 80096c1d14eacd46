import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { uniqueId } from '../../src/domain/unique-id.js';

const UUID_V8 = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

void test('ids are version-8 UUIDs, never repeat within a process, and share a random prefix that differs between processes', () => {
  const ids = Array.from({ length: 100_000 }, () => uniqueId());
  for (const id of [ids[0], ids[1], ids[99_999]]) assert.match(id ?? '', UUID_V8);
  assert.equal(new Set(ids).size, ids.length);
  const prefix = (id: string): string => id.slice(0, 24);
  assert.equal(new Set(ids.map(prefix)).size, 1);
  const url = pathToFileURL(new URL('../../src/domain/unique-id.js', import.meta.url).pathname).href;
  const other = execFileSync(process.execPath, ['--input-type=module', '-e', `import { uniqueId } from '${url}'; process.stdout.write(uniqueId());`], { encoding: 'utf8' });
  assert.match(other, UUID_V8);
  assert.notEqual(prefix(other), prefix(ids[0] ?? ''));
});
