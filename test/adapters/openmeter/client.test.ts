import { strict as assert } from 'node:assert';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../../src/adapters/local/ports.js';
import { MAX_RETRY_AFTER_MS, OpenMeterClient, ingestUrl, parseRetryAfter } from '../../../src/adapters/openmeter/client.js';
import { startOpenMeterStandIn, type OpenMeterStandIn } from '../../harness/openmeter-standin.js';
import { API_KEY, makeEvent } from './fixtures.js';

const batch = (n = 2): string[] => Array.from({ length: n }, () => JSON.stringify(makeEvent()));

void describe('OpenMeterClient classifies what OpenMeter answers', () => {
  let standIn: OpenMeterStandIn;
  let client: OpenMeterClient;
  before(async () => {
    standIn = await startOpenMeterStandIn({ apiKey: API_KEY });
    client = new OpenMeterClient({ url: `${standIn.url}/`, apiKey: API_KEY, timeoutMs: 500 });
  });
  after(async () => {
    await standIn.close();
  });

  void test('2xx is ok, and the batch goes to /api/v1/events as cloudevents-batch+json with the bearer token', async () => {
    const events = batch(3);
    const result = await client.postBatch(events);
    assert.deepEqual(result, { kind: 'ok', status: 204 });
    assert.equal(standIn.received().length, 3);
    assert.equal((await client.postOne(events[0] ?? '')).kind, 'ok');
    assert.equal(standIn.received().length, 3, 'the re-sent event is de-duplicated');
    assert.equal(ingestUrl('https://om.example/'), 'https://om.example/api/v1/events');
  });

  void test('429 is retryable and carries Retry-After in milliseconds', async () => {
    standIn.failFor(60_000, 429, { retryAfter: '2' });
    const result = await client.postBatch(batch());
    standIn.failFor(0);
    assert.equal(result.kind, 'retryable');
    assert.ok(result.kind === 'retryable');
    assert.equal(result.reason, 'rate_limited');
    assert.equal(result.status, 429);
    assert.equal(result.retryAfterMs, 2000);
  });

  void test('5xx is retryable', async () => {
    for (const status of [500, 502, 503]) {
      standIn.failFor(60_000, status);
      const result = await client.postBatch(batch());
      assert.equal(result.kind, 'retryable', `status ${status}`);
      assert.ok(result.kind === 'retryable' && result.reason === 'server_error' && result.status === status);
      assert.match(result.detail, new RegExp(`HTTP ${status}`));
    }
    standIn.failFor(0);
  });

  void test('no answer within the timeout is retryable (timeout)', async () => {
    standIn.hangFor(1500);
    const started = performance.now();
    const result = await client.postBatch(batch());
    const took = performance.now() - started;
    standIn.hangFor(0);
    assert.ok(result.kind === 'retryable' && result.reason === 'timeout', JSON.stringify(result));
    assert.ok(took < 1400, `gave up after the 500 ms timeout (took ${took.toFixed(0)} ms)`);
  });

  void test('a refused connection is retryable (network)', async () => {
    const port = await freePort();
    const offline = new OpenMeterClient({ url: `http://127.0.0.1:${port}`, apiKey: API_KEY, timeoutMs: 1000 });
    const result = await offline.postBatch(batch());
    assert.ok(result.kind === 'retryable' && result.reason === 'network', JSON.stringify(result));
  });

  void test('400 is invalid, with the problem+json reason', async () => {
    const bad = makeEvent();
    standIn.rejectIds([bad.id]);
    const result = await client.postBatch([JSON.stringify(makeEvent()), JSON.stringify(bad)]);
    assert.ok(result.kind === 'invalid', JSON.stringify(result));
    assert.equal(result.status, 400);
    assert.equal(result.reason, 'bad_request');
    assert.match(result.detail, /^HTTP 400: Bad Request: event .* rejected by the stand-in/);
  });

  void test('401 is retryable (unauthorized), never invalid: a wrong key must not dead-letter events', async () => {
    const wrongKey = new OpenMeterClient({ url: standIn.url, apiKey: 'not-the-key', timeoutMs: 1000 });
    const result = await wrongKey.postBatch(batch());
    assert.ok(result.kind === 'retryable' && result.reason === 'unauthorized' && result.status === 401, JSON.stringify(result));
  });

  void test('parseRetryAfter reads seconds and HTTP dates, and clamps', () => {
    assert.equal(parseRetryAfter('5'), 5000);
    assert.equal(parseRetryAfter('0.5'), 500);
    assert.equal(parseRetryAfter(new Date(1_000_000 + 3000).toUTCString(), 1_000_000), 3000);
    assert.equal(parseRetryAfter('999999'), MAX_RETRY_AFTER_MS);
    assert.equal(parseRetryAfter(null), undefined);
    assert.equal(parseRetryAfter('soon'), undefined);
  });
});

void describe('OpenMeterClient against odd servers', () => {
  let server: Server;
  let url: string;
  let answer: { status: number; body: string; type: string } = { status: 200, body: '', type: 'text/plain' };
  before(async () => {
    server = createServer((req, res) => {
      // echoes the Authorization header back, as a careless proxy might
      res.writeHead(answer.status, { 'content-type': answer.type });
      res.end(answer.body.replace('$AUTH', req.headers.authorization ?? ''));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  void test('the API key never appears in a result, even when the server echoes it', async () => {
    const client = new OpenMeterClient({ url, apiKey: API_KEY, timeoutMs: 1000 });
    for (const status of [400, 403, 500]) {
      answer = { status, body: 'you sent $AUTH', type: 'text/plain' };
      const result = await client.postBatch(batch());
      assert.notEqual(result.kind, 'ok');
      assert.doesNotMatch(JSON.stringify(result), new RegExp(API_KEY));
      assert.match(JSON.stringify(result), /\[redacted\]/);
    }
  });

  void test('a long error body is truncated; 413 and 422 are invalid; 404 is retryable (a wrong URL)', async () => {
    const client = new OpenMeterClient({ url, apiKey: API_KEY, timeoutMs: 1000, maxDetailChars: 100 });
    answer = { status: 422, body: 'x'.repeat(10_000), type: 'text/plain' };
    const long = await client.postBatch(batch());
    assert.ok(long.kind === 'invalid' && long.detail.length <= 100, JSON.stringify(long).slice(0, 200));
    answer = { status: 413, body: '', type: 'text/plain' };
    const tooLarge = await client.postBatch(batch());
    assert.ok(tooLarge.kind === 'invalid' && tooLarge.reason === 'too_large');
    answer = { status: 404, body: 'not here', type: 'text/plain' };
    const notFound = await client.postBatch(batch());
    assert.ok(notFound.kind === 'retryable' && notFound.reason === 'endpoint');
    answer = { status: 202, body: '{"ok":true}', type: 'application/json' };
    assert.equal((await client.postBatch(batch())).kind, 'ok');
  });
});
