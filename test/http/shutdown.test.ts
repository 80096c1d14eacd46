import { strict as assert } from 'node:assert';
import { request as httpRequest, Agent } from 'node:http';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { gracefulShutdown } from '../../src/runtime/shutdown.js';
import { testAppUnready } from '../harness/app.js';

function get(port: number, path: string, agent?: Agent): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: agent ?? false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('SIGTERM sequence: /ready turns 503, in-flight requests finish with Connection: close, then the listener closes', async () => {
  const t = await testAppUnready({ SHUTDOWN_DELAY_MS: '300' });
  // A slow route stands in for a long AGENTESE call that is in flight when the signal arrives.
  t.app.get('/test/slow', async () => {
    await sleep(800);
    return { done: true };
  });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const address = t.app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  assert.equal((await get(port, '/ready', agent)).status, 200);

  const inFlight = [get(port, '/test/slow', agent), get(port, '/test/slow', agent), get(port, '/test/slow')];
  await sleep(50);
  let dependenciesClosed = false;
  const shutdown = gracefulShutdown(t.app, t.lifecycle, { delayMs: t.config.SHUTDOWN_DELAY_MS, timeoutMs: 5000 }, () => {
    dependenciesClosed = true;
    return Promise.resolve();
  });

  await sleep(100);
  const during = await get(port, '/ready');
  assert.equal(during.status, 503);
  assert.deepEqual(JSON.parse(during.body), { ready: false, reason: 'draining' });
  assert.equal((await get(port, '/health')).status, 200, 'still serving during the delay');

  const results = await Promise.all(inFlight);
  for (const r of results) {
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { done: true });
  }
  assert.ok(results.some((r) => r.headers.connection === 'close'), 'keep-alive clients are told to close');
  assert.equal(await shutdown, 'clean');
  assert.ok(dependenciesClosed);
  await assert.rejects(get(port, '/health'), /ECONNREFUSED/);
  agent.destroy();
  await t.dispose();
});
