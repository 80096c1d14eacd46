import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FileKeyStore } from '../../src/adapters/file/key-store.js';
import { freePort } from '../../src/adapters/local/ports.js';
import { connectNats, type NatsConnection } from '../../src/adapters/nats/connection.js';
import { NatsKvKeyStore } from '../../src/adapters/nats/key-store.js';
import { keyMatchesHash } from '../../src/domain/tenancy/api-key.js';
import { startNats, tempDir } from '../harness/servers.js';
import { captureLogger, waitFor } from '../adapters/nats/fixtures.js';

const CLI = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.js');

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

function kgents(args: readonly string[], env: Record<string, string>): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', KEY_STORE: 'auto', ...env },
      timeout: 20_000,
    }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

interface CreatedKey {
  key: string;
  prefix: string;
  tenant: string;
  tier: string;
  scopes: string[];
}

interface ListedKey {
  prefix: string;
  tenant: string;
  tier: string;
  scopes: string[];
  created_at: string;
  revoked_at: string | null;
  hash?: string;
}

function parseOne<T>(run: Run): T {
  assert.equal(run.code, 0, `exit ${run.code}: ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

/** The same end-to-end scenario against either backing store. */
async function scenario(env: Record<string, string>, service: { getKey(prefix: string): { revoked_at: string | null; hash: string } | undefined }): Promise<void> {
  const created = parseOne<CreatedKey>(await kgents(['keys', 'create', '--tenant', 'acme', '--tier', 'pro', '--scopes', 'read,write', '--json'], env));
  assert.match(created.key, /^kg_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{43}$/);
  assert.equal(created.key.slice(3, 11), created.prefix);
  assert.deepEqual({ ...created, key: undefined }, { key: undefined, prefix: created.prefix, tenant: 'acme', tier: 'pro', scopes: ['read', 'write'] });

  // the running service sees the new key, and the key the CLI printed matches what was stored
  await waitFor('key on the service', () => service.getKey(created.prefix) !== undefined, 2000);
  assert.ok(keyMatchesHash(created.key, service.getKey(created.prefix)?.hash ?? ''));

  const plain = await kgents(['keys', 'create', '--tenant', 'acme', '--scopes', 'read'], env);
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, /kg_[A-Za-z0-9]{8}_\S+/);
  assert.match(plain.stdout, /will not be shown again/);

  const listed = parseOne<ListedKey[]>(await kgents(['keys', 'list', '--json'], env));
  assert.equal(listed.length, 2);
  const mine = listed.find((k) => k.prefix === created.prefix);
  assert.ok(mine);
  assert.equal(mine.tenant, 'acme');
  assert.equal(mine.revoked_at, null);
  assert.equal(mine.hash, undefined, 'the list does not show hashes');

  const table = await kgents(['keys', 'list', '--tenant', 'acme'], env);
  assert.equal(table.code, 0);
  assert.match(table.stdout, /PREFIX\s+TENANT\s+TIER\s+SCOPES\s+CREATED\s+REVOKED/);
  assert.match(table.stdout, new RegExp(created.prefix));
  assert.doesNotMatch(table.stdout, /kg_/, 'listing never prints a key');

  const shown = parseOne<{ id: string; tier: string; subscription_status: string; name: string; keys: { prefix: string }[] }>(
    await kgents(['tenants', 'show', 'acme', '--json'], env),
  );
  assert.equal(shown.id, 'acme');
  assert.equal(shown.name, 'acme');
  assert.equal(shown.tier, 'pro');
  assert.equal(shown.subscription_status, 'none');
  assert.ok(shown.keys.some((k) => k.prefix === created.prefix));
  assert.equal(shown.keys.length, 2);

  const tenants = parseOne<{ id: string; keys: number }[]>(await kgents(['tenants', 'list', '--json'], env));
  assert.deepEqual(tenants.map((t) => [t.id, t.keys]), [['acme', 2]]);

  const revoked = await kgents(['keys', 'revoke', created.prefix], env);
  assert.equal(revoked.code, 0, revoked.stderr);
  assert.match(revoked.stdout, new RegExp(`Revoked API key ${created.prefix}`));
  await waitFor('revocation on the service', () => service.getKey(created.prefix)?.revoked_at != null, 1000, 2);

  const again = parseOne<ListedKey[]>(await kgents(['keys', 'list', '--json', '--tenant', 'acme'], env));
  assert.ok(again.find((k) => k.prefix === created.prefix)?.revoked_at);

  const unknown = await kgents(['keys', 'revoke', 'Zzzzzzz9'], env);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no API key with prefix Zzzzzzz9/);

  const missingTenant = await kgents(['tenants', 'show', 'nobody'], env);
  assert.equal(missingTenant.code, 1);
  assert.match(missingTenant.stderr, /no tenant "nobody"/);
}

void describe('kgents keys/tenants against NATS', () => {
  let server: Awaited<ReturnType<typeof startNats>>;
  let connection: NatsConnection;
  let service: NatsKvKeyStore;
  const data = tempDir('kgents-cli-nats-');

  before(async () => {
    server = await startNats();
    connection = await connectNats([server.url], { name: 'cli-test-service' });
    service = new NatsKvKeyStore(connection, { logger: captureLogger() });
    await service.start();
  });

  after(async () => {
    await service.close();
    await connection.close();
    await server.cleanup();
    data.remove();
  });

  void test('create, list, show and revoke end to end; a running service follows every change', async () => {
    const env = { NATS_URLS: server.url, DATA_DIR: data.dir };
    await scenario(env, service);
    const created = await kgents(['keys', 'create', '--tenant', 'quick', '--json'], env);
    assert.equal(created.code, 0);
    assert.equal(created.stderr, '', 'nothing on stderr when NATS is used');
    assert.ok(created.ms < 5000, `CLI took ${created.ms} ms to exit`);
  });

  void test('with NATS_URLS empty it uses the nats-server a running kgents serve recorded in DATA_DIR', async () => {
    const dir = tempDir('kgents-cli-embedded-');
    try {
      writeFileSync(join(dir.dir, 'embedded.json'), JSON.stringify({ pid: process.pid, nats_url: server.url }));
      const created = parseOne<CreatedKey>(await kgents(['keys', 'create', '--tenant', 'embedded', '--json'], { NATS_URLS: '', DATA_DIR: dir.dir }));
      await waitFor('key on the service', () => service.getKey(created.prefix) !== undefined, 2000);
      const run = await kgents(['tenants', 'list'], { NATS_URLS: '', DATA_DIR: dir.dir });
      assert.match(run.stderr, /nats-server of the running kgents serve/);
      assert.match(run.stdout, /embedded/);
      assert.equal(existsSync(join(dir.dir, 'keys.json')), false, 'the file store was not used');
    } finally {
      dir.remove();
    }
  });
});

void describe('kgents keys/tenants without NATS (file store)', () => {
  const data = tempDir('kgents-cli-file-');
  let service: FileKeyStore;

  before(async () => {
    service = new FileKeyStore({ dir: data.dir, logger: captureLogger() });
    await service.start();
  });

  after(async () => {
    await service.close();
    data.remove();
  });

  void test('with NATS_URLS empty the CLI uses DATA_DIR/keys.json, says so in one stderr line, and the service follows', async () => {
    const env = { NATS_URLS: '', DATA_DIR: data.dir };
    const notice = await kgents(['tenants', 'list'], env);
    assert.equal(notice.code, 0);
    assert.match(notice.stdout, /No tenants/);
    const lines = notice.stderr.trim().split('\n');
    assert.equal(lines.length, 1);
    assert.match(lines[0] ?? '', /file key store .*keys\.json/);
    await scenario(env, service);
  });
});

void describe('kgents keys input validation', () => {
  const env = { NATS_URLS: '', DATA_DIR: '/nonexistent/never-created' };
  const cases: [string, string[], RegExp][] = [
    ['missing --tenant', ['keys', 'create'], /--tenant is required/],
    ['invalid tenant id', ['keys', 'create', '--tenant', 'Has Spaces'], /not a valid tenant id/],
    ['unknown tier', ['keys', 'create', '--tenant', 'acme', '--tier', 'gold'], /--tier must be one of free, pro, enterprise/],
    ['unknown scope', ['keys', 'create', '--tenant', 'acme', '--scopes', 'read,root'], /unknown scope "root"/],
    ['empty scopes', ['keys', 'create', '--tenant', 'acme', '--scopes', ','], /--scopes needs at least one/],
    ['unknown option', ['keys', 'create', '--tenant', 'acme', '--bogus'], /Unknown option '--bogus'/],
    ['missing subcommand', ['keys'], /missing subcommand/],
    ['unknown subcommand', ['keys', 'rotate'], /unknown subcommand "rotate"/],
    ['revoke without a prefix', ['keys', 'revoke'], /exactly one key prefix/],
    ['revoke with a malformed prefix', ['keys', 'revoke', 'abc'], /"abc" is not a key prefix/],
    ['tenants show without an id', ['tenants', 'show'], /exactly one tenant id/],
    ['tenants with an unknown subcommand', ['tenants', 'delete'], /unknown subcommand "delete"/],
  ];
  for (const [name, args, message] of cases) {
    void test(`${name} exits 2 with a clear message and the usage`, async () => {
      const run = await kgents(args, env);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, message);
      assert.match(run.stderr, /Usage:/);
      assert.equal(run.stdout, '');
    });
  }

  void test('a mistyped full key given to revoke is never echoed back', async () => {
    const run = await kgents(['keys', 'revoke', 'kg_short_thisLooksLikeASecretValue'], env);
    assert.equal(run.code, 2);
    assert.doesNotMatch(run.stderr, /thisLooksLikeASecretValue/);
  });

  void test('an unreachable NATS_URLS exits 1 promptly with a message saying what to check', async () => {
    const port = await freePort();
    const run = await kgents(['keys', 'list'], { NATS_URLS: `nats://user:hunter22@127.0.0.1:${port}`, DATA_DIR: env.DATA_DIR });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /cannot reach NATS at nats:\/\/\*\*\*@127\.0\.0\.1:\d+ \(is nats-server running\? set NATS_URLS\)/);
    assert.doesNotMatch(run.stderr, /hunter22/);
    assert.ok(run.ms < 5000, `took ${run.ms} ms`);
  });

  void test('KEY_STORE=nats without NATS_URLS is a configuration error (exit 2)', async () => {
    const run = await kgents(['keys', 'list'], { ...env, KEY_STORE: 'nats' });
    assert.equal(run.code, 2);
    assert.match(run.stderr, /KEY_STORE.*NATS_URLS/);
  });
});
