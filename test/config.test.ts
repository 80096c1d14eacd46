import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config/load.js';
import { CONFIG_VARS } from '../src/config/schema.js';

const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');

function readmeConfigTable(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const m of readme.matchAll(/^\|\s*`([A-Z][A-Z0-9_]+)`\s*\|\s*`([^`]*)`\s*\|/gm)) rows.set(m[1] ?? '', m[2] ?? '');
  return rows;
}

test('the README documents every configuration variable with its real default', () => {
  const table = readmeConfigTable();
  for (const [name, spec] of Object.entries(CONFIG_VARS)) {
    assert.ok(table.has(name), `README is missing ${name}`);
    assert.equal(table.get(name), spec.default, `README default for ${name}`);
  }
});

test('the README documents no configuration variable the schema does not read', () => {
  const unknown = [...readmeConfigTable().keys()].filter((name) => !(name in CONFIG_VARS));
  assert.deepEqual(unknown, []);
});

test('defaults parse into the documented values', () => {
  const config = loadConfig({});
  assert.equal(config.PORT, 8000);
  assert.equal(config.HOST, '0.0.0.0');
  assert.deepEqual(config.NATS_URLS, []);
  assert.equal(config.REDIS_URL, undefined);
  assert.equal(config.SHUTDOWN_DELAY_MS, 5000);
  assert.deepEqual(config.RATE_LIMITS, { free: 60, pro: 600, enterprise: 6000 });
  assert.ok(config.INSTANCE_ID.length > 0);
});

test('the parsed configuration is frozen', () => {
  const config = loadConfig({});
  assert.ok(Object.isFrozen(config));
  assert.ok(Object.isFrozen(config.RATE_LIMITS));
});

test('NATS_URLS accepts a comma-separated list', () => {
  const config = loadConfig({ NATS_URLS: 'nats://a:4222, nats://b:4222,c:4222' });
  assert.deepEqual(config.NATS_URLS, ['nats://a:4222', 'nats://b:4222', 'c:4222']);
});

test('bad values are all reported at once with the variable names', () => {
  assert.throws(() => loadConfig({ PORT: 'eighty', RATE_LIMITS: 'free=1,gold=2', LOG_LEVEL: 'loud', REDIS_URL: 'http://x' }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    const text = err.message;
    for (const name of ['PORT', 'RATE_LIMITS', 'LOG_LEVEL', 'REDIS_URL']) assert.match(text, new RegExp(name));
    return true;
  });
});

test('a rate-limit table must name every tier', () => {
  assert.throws(() => loadConfig({ RATE_LIMITS: 'free=1,pro=2' }), /missing a value for tier "enterprise"/);
});

test('a bad config makes `kgents serve` exit non-zero with a clear message', async () => {
  const { spawnSync } = await import('node:child_process');
  const cli = join(import.meta.dirname, '..', 'src', 'cli', 'main.js');
  const run = spawnSync(process.execPath, [cli, 'serve'], { env: { ...process.env, PORT: '99999' }, encoding: 'utf8', timeout: 20_000 });
  assert.notEqual(run.status, 0);
  assert.match(run.stderr, /PORT/);
});
