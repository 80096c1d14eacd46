import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { freePort } from '../../../src/adapters/local/ports.js';
import { connectNats, NatsUnreachableError, redactUrl, type NatsHealth } from '../../../src/adapters/nats/connection.js';
import { startNats } from '../../harness/servers.js';
import { waitFor } from './fixtures.js';

void test('connectNats fails fast with a message naming the URL and what to do when no server listens', async () => {
  const port = await freePort();
  const started = Date.now();
  await assert.rejects(connectNats([`nats://127.0.0.1:${port}`], { name: 'unreachable', timeoutMs: 2000 }), (err: unknown) => {
    assert.ok(err instanceof NatsUnreachableError);
    assert.match(err.message, new RegExp(`cannot reach NATS at nats://127\\.0\\.0\\.1:${port} \\(is nats-server running\\? set NATS_URLS\\)`));
    return true;
  });
  assert.ok(Date.now() - started < 3000, 'should not wait for a server to appear');
});

void test('credentials in NATS URLs never appear in error messages', async () => {
  const port = await freePort();
  await assert.rejects(connectNats([`nats://alice:s3cretpw@127.0.0.1:${port}`, `nats://tok3nvalue@127.0.0.1:${port}`], { name: 'secret', timeoutMs: 1000 }), (err: unknown) => {
    assert.ok(err instanceof Error);
    assert.doesNotMatch(err.message, /s3cretpw|tok3nvalue|alice/);
    assert.match(err.message, /nats:\/\/\*\*\*@127\.0\.0\.1/);
    return true;
  });
  assert.equal(redactUrl('nats://u:p@host:4222'), 'nats://***@host:4222');
  assert.equal(redactUrl('nats://host:4222'), 'nats://host:4222');
});

void test('connectNats with no URLs refuses with the same clear message', async () => {
  await assert.rejects(connectNats([], { name: 'none' }), /set NATS_URLS/);
});

void test('the connection reports down while nats-server is stopped and ok once it is back, notifying listeners', async () => {
  const server = await startNats();
  const connection = await connectNats([server.url], { name: 'status-test', reconnectTimeWaitMs: 100 });
  const changes: NatsHealth[] = [];
  const off = connection.onStatusChange((h) => changes.push(h));
  try {
    assert.equal(connection.health().status, 'ok');
    assert.equal(connection.isUp, true);

    await server.stop();
    await waitFor('down', () => connection.health().status === 'down', 5000);
    const down = connection.health();
    assert.ok(down.last_error, 'a down state says why');
    assert.ok(!Number.isNaN(Date.parse(down.since)));

    await server.start();
    await waitFor('ok again', () => connection.health().status === 'ok', 10_000, 20);
    assert.deepEqual(changes.map((c) => c.status), ['down', 'ok']);
    assert.ok(Date.parse(connection.health().since) >= Date.parse(down.since));
  } finally {
    off();
    await connection.close();
    await server.cleanup();
  }
  assert.equal(connection.isClosed, true);
});

void test('close() resolves promptly even while the server is down', async () => {
  const server = await startNats();
  const connection = await connectNats([server.url], { name: 'close-test' });
  await server.stop();
  await waitFor('down', () => !connection.isUp, 5000);
  const started = Date.now();
  await connection.close(500);
  assert.ok(Date.now() - started < 2000);
  assert.equal(connection.isClosed, true);
  assert.equal(connection.health().status, 'down');
  await server.cleanup();
});
