import { strict as assert } from 'node:assert';
import { Agent, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { fastHealthAllowed, fastHealthServerFactory } from '../../src/http/fast-health.js';
import { liveness, livenessText } from '../../src/http/routes/health.js';
import { testAppUnready, type TestApp } from '../harness/app.js';
import { http, type HttpResult } from '../harness/serve-process.js';

function get(port: number, path: string, headers: Record<string, string> = {}, agent?: Agent): Promise<HttpResult> {
  return http(port, path, { headers, ...(agent && { agent }) });
}

function portOf(app: FastifyInstance): number {
  const address = app.server.address();
  return typeof address === 'object' && address ? address.port : 0;
}

/** The X-Request-Id of each response to a raw request text (so headers can repeat or keep their case). */
async function rawIds(port: number, request: string): Promise<string[]> {
  const socket = connect(port, '127.0.0.1');
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (text += chunk));
  socket.write(request);
  const deadline = Date.now() + 5000;
  while (!text.includes('"uptime_s"')) {
    assert.ok(Date.now() < deadline, `a response within 5 s, got: ${text}`);
    await sleep(10);
  }
  socket.destroy();
  return [...text.matchAll(/^x-request-id: (.*)\r$/gim)].map((m) => m[1] ?? '');
}

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

describe('GET /health ahead of the router', () => {
  let t: TestApp;
  let port: number;
  /** Requests that reached Fastify's hooks (the router); the fast path never adds to it. */
  const routed: string[] = [];

  before(async () => {
    t = await testAppUnready();
    t.app.get('/test/slow', async () => {
      await sleep(150);
      return { slow: true };
    });
    t.app.addHook('onRequest', (request, _reply, done) => {
      routed.push(request.url);
      done();
    });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    port = portOf(t.app);
  });

  after(() => t.close());

  test('answers with the same status, headers and body as the Fastify route, without reaching the router', async () => {
    routed.length = 0;
    const fast = await get(port, '/health');
    const viaRouter = await get(port, '/health?via=router');
    assert.deepEqual(routed, ['/health?via=router'], 'only the request with a query string reached Fastify');
    assert.equal(fast.status, 200);
    assert.equal(viaRouter.status, 200);
    assert.deepEqual(fast.headerNames, viaRouter.headerNames);
    for (const name of ['content-type', 'content-length', 'connection', 'keep-alive']) assert.equal(fast.headers[name], viaRouter.headers[name], name);
    const a = JSON.parse(fast.body) as Record<string, unknown>;
    const b = JSON.parse(viaRouter.body) as Record<string, unknown>;
    assert.deepEqual(Object.keys(a), Object.keys(b));
    assert.equal(a.status, 'ok');
    assert.equal(a.version, b.version);
    assert.ok(Math.abs(Number(a.uptime_s) - Number(b.uptime_s)) <= 1);
  });

  test('echoes a valid X-Request-Id and gives a fresh one in place of an invalid one, as routed requests do', async () => {
    const echoed = await get(port, '/health', { 'x-request-id': 'probe-7.a:b' });
    assert.equal(echoed.headers['x-request-id'], 'probe-7.a:b');
    const replaced = await get(port, '/health', { 'x-request-id': 'bad id with spaces' });
    assert.match(String(replaced.headers['x-request-id']), /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const another = await get(port, '/health');
    assert.notEqual(another.headers['x-request-id'], replaced.headers['x-request-id']);
  });

  test('reads X-Request-Id in any letter case, and a repeated one counts as invalid, as routed requests do', async () => {
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    for (const path of ['/health', '/health?via=router']) {
      const mixed = await rawIds(port, `GET ${path} HTTP/1.1\r\nHost: x\r\nX-REQUEST-ID: Probe-Mixed\r\n\r\n`);
      assert.deepEqual(mixed, ['Probe-Mixed'], path);
      const [repeated] = await rawIds(port, `GET ${path} HTTP/1.1\r\nHost: x\r\nx-request-id: one\r\nX-Request-Id: two\r\n\r\n`);
      assert.match(String(repeated), uuid, path);
    }
  });

  test('counts each probe in the request metrics under route /health, GET, 200', async () => {
    const labels = 'route="/health",method="GET",status="200"';
    const before = metric((await t.app.inject({ url: '/metrics' })).body, 'kgents_http_requests_total', labels);
    routed.length = 0;
    for (let i = 0; i < 3; i++) await get(port, '/health');
    assert.deepEqual(routed, []);
    const text = (await t.app.inject({ url: '/metrics' })).body;
    assert.equal(metric(text, 'kgents_http_requests_total', labels) - before, 3);
    assert.ok(metric(text, 'kgents_http_request_duration_seconds_count', labels) >= 3);
  });

  test('pipelined on one connection behind a slow routed request, the probe is answered after it, in order', async () => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.write('GET /test/slow HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: second\r\n\r\n');
    const deadline = Date.now() + 5000;
    while ((text.match(/HTTP\/1\.1 200/g) ?? []).length < 2 || !text.includes('"uptime_s"')) {
      assert.ok(Date.now() < deadline, `two responses within 5 s, got: ${text}`);
      await sleep(10);
    }
    socket.destroy();
    const slowAt = text.indexOf('{"slow":true}');
    const healthAt = text.indexOf('x-request-id: second');
    assert.ok(slowAt >= 0 && healthAt > slowAt, text);
  });

  test('HEAD, a trailing slash and other paths still go to the router', async () => {
    routed.length = 0;
    const head = (await http(port, '/health', { method: 'HEAD' })).status;
    assert.equal(head, 200);
    assert.equal((await get(port, '/health/')).status, 404);
    assert.equal((await get(port, '/ready')).status, 200);
    assert.deepEqual(routed, ['/health', '/health/', '/ready']);
  });

  test('while the instance drains, keep-alive clients of the fast path are told to close', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const open = await get(port, '/health', {}, agent);
    assert.equal(open.headers.connection, 'keep-alive');
    t.lifecycle.drain();
    const draining = await get(port, '/health', {}, agent);
    assert.equal(draining.status, 200, 'liveness still ok while draining');
    assert.equal(draining.headers.connection, 'close');
    agent.destroy();
  });
});

describe('the fast-path server factory', () => {
  function serve(active: boolean): { routed: string[]; answered: string[]; listener: (req: IncomingMessage, res: ServerResponse) => void } {
    const routed: string[] = [];
    const answered: string[] = [];
    const factory = fastHealthServerFactory({ path: '/health', active: () => active, requestId: () => 'id', body: () => '{}', observe: () => undefined });
    const server = factory((req) => routed.push(`${req.method ?? ''} ${req.url ?? ''}`), { keepAliveTimeout: 1234, requestTimeout: 0, connectionTimeout: 0 });
    assert.equal(server.keepAliveTimeout, 1234, 'built from Fastify\'s options');
    const listener = server.listeners('request')[0] as (req: IncomingMessage, res: ServerResponse) => void;
    return { routed, answered, listener };
  }

  function fakeExchange(method: string, url: string, answered: string[]): [IncomingMessage, ServerResponse] {
    const req = { method, url, headers: {} } as unknown as IncomingMessage;
    const res = {
      writeHead: (status: number) => answered.push(`${method} ${url} ${status}`),
      end: () => undefined,
    } as unknown as ServerResponse;
    return [req, res];
  }

  test('passes every request to Fastify once the instance is closing, so /health gets the router\'s 503', () => {
    const closing = serve(false);
    closing.listener(...fakeExchange('GET', '/health', closing.answered));
    assert.deepEqual(closing.routed, ['GET /health']);
    assert.deepEqual(closing.answered, []);
    const open = serve(true);
    open.listener(...fakeExchange('GET', '/health', open.answered));
    open.listener(...fakeExchange('POST', '/health', open.answered));
    open.listener(...fakeExchange('GET', '/healthz', open.answered));
    assert.deepEqual(open.answered, ['GET /health 200']);
    assert.deepEqual(open.routed, ['POST /health', 'GET /healthz']);
  });

  test('is left out when tracing, per-request logging or the test retention hook must see every request', () => {
    const base = { LOG_REQUESTS: 'errors', TEST_RETAIN_BYTES_PER_REQUEST: 0 } as const;
    assert.equal(fastHealthAllowed(base, false), true);
    assert.equal(fastHealthAllowed(base, true), false);
    assert.equal(fastHealthAllowed({ ...base, LOG_REQUESTS: 'all' }, false), false);
    assert.equal(fastHealthAllowed({ ...base, LOG_REQUESTS: 'none' }, false), true);
    assert.equal(fastHealthAllowed({ ...base, TEST_RETAIN_BYTES_PER_REQUEST: 64 }, false), false);
  });

  test('with LOG_REQUESTS=all a /health probe over a socket is routed and logged', async () => {
    const t = await testAppUnready({ LOG_REQUESTS: 'all' });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const res = await get(portOf(t.app), '/health', { 'x-request-id': 'logged-probe' });
    assert.equal(res.status, 200);
    await t.close();
    assert.ok(t.logs.lines.some((l) => l.includes('"route":"/health"') && l.includes('logged-probe')), t.logs.text);
  });
});

test('the fast path\'s body text is the JSON of the route\'s answer, whatever the version string', () => {
  fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (version) => {
    const text = livenessText(version)();
    const expected = JSON.stringify(liveness(version));
    const strip = (s: string): string => s.replace(/"uptime_s":\d+\}$/, '');
    assert.equal(strip(text), strip(expected));
    assert.deepEqual(Object.keys(JSON.parse(text) as object), ['status', 'version', 'uptime_s']);
  }));
});
