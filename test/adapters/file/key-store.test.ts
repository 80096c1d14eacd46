import { strict as assert } from 'node:assert';
import { existsSync, readdirSync, readFileSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FileKeyStore } from '../../../src/adapters/file/key-store.js';
import { tempDir } from '../../harness/servers.js';
import { captureLogger, makeKey, makeTenant, record, waitFor } from '../nats/fixtures.js';

const dirs: { remove: () => void }[] = [];
const stores: FileKeyStore[] = [];
after(async () => {
  for (const s of stores) await s.close();
  for (const d of dirs) d.remove();
});

function newDir(): string {
  const d = tempDir('kgents-filestore-');
  dirs.push(d);
  return d.dir;
}

async function open(dir: string, logger = captureLogger()): Promise<FileKeyStore> {
  const store = new FileKeyStore({ dir, logger });
  stores.push(store);
  await store.start();
  return store;
}

void test('stores tenants and keys in DATA_DIR/keys.json and a new instance reads them back', async () => {
  const dir = newDir();
  const store = await open(dir);
  assert.equal(store.kind, 'file');
  assert.equal(store.listKeys().length, 0);
  const tenant = makeTenant('acme', 'enterprise');
  const key = makeKey('acme', ['admin']);
  await store.putTenant(tenant);
  await store.putKey(record(key));
  assert.deepEqual(store.getTenant('acme'), tenant);
  assert.deepEqual(store.getKey(key.prefix), record(key));

  const doc = JSON.parse(readFileSync(join(dir, 'keys.json'), 'utf8')) as { tenants: Record<string, unknown>; keys: Record<string, unknown> };
  assert.deepEqual(doc.tenants.acme, tenant);
  assert.deepEqual(doc.keys[key.prefix], record(key));
  assert.doesNotMatch(JSON.stringify(doc), new RegExp(key.key), 'the secret key is never stored');

  const reopened = await open(dir);
  assert.deepEqual(reopened.getKey(key.prefix), record(key));
  assert.deepEqual(reopened.listTenants(), [tenant]);
});

void test('writes are atomic: a concurrent reader only ever sees complete JSON, and no temp or lock files remain', async () => {
  const dir = newDir();
  const store = await open(dir);
  await store.putTenant(makeTenant('acme'));
  let reads = 0;
  let stop = false;
  const reader = (async () => {
    while (!stop) {
      const text = readFileSync(join(dir, 'keys.json'), 'utf8');
      JSON.parse(text); // throws on a torn write
      reads++;
      await new Promise((r) => setImmediate(r));
    }
  })();
  for (let i = 0; i < 60; i++) await store.putKey(record(makeKey('acme')));
  stop = true;
  await reader;
  assert.ok(reads > 10, `reader ran ${reads} times`);
  assert.equal(store.listKeys().length, 60);
  assert.deepEqual(readdirSync(dir).sort(), ['keys.json']);
});

void test('a change made through one instance (another process, like the CLI) is followed by the other within a second', async () => {
  const dir = newDir();
  const service = await open(dir);
  const cli = await open(dir);
  const key = makeKey('acme');
  await cli.putTenant(makeTenant('acme'));
  await cli.putKey(record(key));
  await waitFor('key on the service', () => service.getKey(key.prefix) !== undefined, 2000);

  const started = performance.now();
  assert.equal(await cli.revokeKey(key.prefix), true);
  await waitFor('revocation on the service', () => service.getKey(key.prefix)?.revoked_at != null, 2000, 2);
  const elapsed = performance.now() - started;
  console.log(`file store: revocation followed in ${elapsed.toFixed(1)} ms`);
  assert.ok(elapsed < 1000, `took ${elapsed} ms`);
  assert.deepEqual(service.getTenant('acme'), cli.getTenant('acme'));
});

void test('two instances writing at the same time lose none of each other\'s writes', async () => {
  const dir = newDir();
  const a = await open(dir);
  const b = await open(dir);
  const fromA = Array.from({ length: 15 }, () => makeKey('acme'));
  const fromB = Array.from({ length: 15 }, () => makeKey('other'));
  await Promise.all([
    ...fromA.map((k) => a.putKey(record(k))),
    ...fromB.map((k) => b.putKey(record(k))),
  ]);
  const all = [...fromA, ...fromB];
  await waitFor('all keys on both', () => all.every((k) => a.getKey(k.prefix) && b.getKey(k.prefix)), 3000);
  const onDisk = JSON.parse(readFileSync(join(dir, 'keys.json'), 'utf8')) as { keys: Record<string, unknown> };
  assert.equal(Object.keys(onDisk.keys).length, 30);
});

void test('a file replaced by hand is picked up; invalid entries are skipped with a warning', async () => {
  const dir = newDir();
  const logger = captureLogger();
  const store = await open(dir, logger);
  const good = makeKey('acme');
  const doc = {
    version: 1,
    tenants: { acme: makeTenant('acme'), 'Bad Id': makeTenant('x') },
    keys: { [good.prefix]: record(good), Broken12: { prefix: 'Broken12' } },
  };
  writeFileSync(join(dir, 'edit.tmp'), JSON.stringify(doc));
  renameSync(join(dir, 'edit.tmp'), join(dir, 'keys.json'));
  await waitFor('edited key', () => store.getKey(good.prefix) !== undefined, 2000);
  assert.equal(store.getKey('Broken12'), undefined);
  assert.equal(store.listTenants().length, 1);
  assert.ok(logger.warnings.some((w) => /invalid key/.test(w.message)));
  assert.ok(logger.warnings.some((w) => /invalid tenant/.test(w.message)));
});

void test('a corrupt file keeps the last good state in memory and refuses writes instead of overwriting it', async () => {
  const dir = newDir();
  const logger = captureLogger();
  const store = await open(dir, logger);
  const key = makeKey('acme');
  await store.putKey(record(key));
  writeFileSync(join(dir, 'keys.json'), '{"version": 1, "keys": {');
  await waitFor('corruption warning', () => logger.warnings.some((w) => /not valid JSON/.test(w.message)), 3000);
  assert.deepEqual(store.getKey(key.prefix), record(key));
  await assert.rejects(store.putKey(record(makeKey('acme'))), /not valid JSON; fix or move it/);
  assert.equal(readFileSync(join(dir, 'keys.json'), 'utf8'), '{"version": 1, "keys": {');

  // a fresh instance on the corrupt file starts (empty) rather than crashing
  const fresh = await open(dir, captureLogger());
  assert.equal(fresh.listKeys().length, 0);
});

void test('revokeKey answers false for an unknown prefix and keeps the first revocation time', async () => {
  const dir = newDir();
  const store = await open(dir);
  assert.equal(await store.revokeKey('Unknown1'), false);
  assert.equal(existsSync(join(dir, 'keys.json')), false, 'a no-op does not create the file');
  const key = makeKey('acme');
  await store.putKey(record(key));
  const first = new Date('2030-01-01T00:00:00.000Z');
  assert.equal(await store.revokeKey(key.prefix, first), true);
  assert.equal(await store.revokeKey(key.prefix, new Date()), true);
  assert.equal(store.getKey(key.prefix)?.revoked_at, first.toISOString());
});

void test('a stale lock left by a crashed writer does not block writes forever', async () => {
  const dir = newDir();
  const logger = captureLogger();
  const store = await open(dir, logger);
  writeFileSync(join(dir, 'keys.json.lock'), '999999\n');
  const old = new Date(Date.now() - 60_000);
  utimesSync(join(dir, 'keys.json.lock'), old, old);
  await store.putTenant(makeTenant('acme'));
  assert.ok(store.getTenant('acme'));
  assert.ok(logger.warnings.some((w) => /stale/.test(w.message)));
  assert.equal(existsSync(join(dir, 'keys.json.lock')), false);
});
