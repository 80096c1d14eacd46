import { strict as assert } from 'node:assert';
import { request } from 'node:http';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { MemoryIdempotencyStore } from '../../src/adapters/memory/idempotency-store.js';
import { MemoryLimitStore } from '../../src/adapters/memory/limit-store.js';
import { loadConfig } from '../../src/config/load.js';
import type { ConfigVarName } from '../../src/config/schema.js';
import { MeteringUnavailableError, type RecordOutcome, type UsageMeter } from '../../src/domain/metering/ports.js';
import type { UsageEvent } from '../../src/domain/metering/usage-event.js';
import { buildApp } from '../../src/http/app.js';
import { createKey } from '../harness/fixtures.js';
import { LogCapture } from '../harness/app.js';
import { MemoryKeyStore } from '../harness/memory-key-store.js';
import { http, type HttpResult } from '../harness/serve-process.js';

const INVOKE = '/v1/agentese/invoke';

/** Records events; `failing` makes record() refuse as a meter with an open breaker and a full queue does. */
class RecordingMeter implements UsageMeter {
  readonly events: UsageEvent[] = [];
  failing = false;
  /** How long record() takes: a request held in flight. */
  delayMs = 0;
  async record(event: UsageEvent): Promise<RecordOutcome> {
    if (this.delayMs > 0) await sleep(this.delayMs);
    if (this.failing) throw new MeteringUnavailableError('The usage pipeline is unavailable.', 7);
    this.events.push(event);
    return 'published';
  }
}

interface Side {
  readonly app: FastifyInstance;
  readonly port: number;
  readonly meter: RecordingMeter;
  readonly limits: MemoryLimitStore;
  readonly logs: LogCapture;
  /** Requests that reached Fastify's router (its onRequest hooks); the fast path never adds to it. */
  readonly routed: string[];
  close(): Promise<void>;
}

/** One API on a socket, on in-memory stores, with keys made from the same seeds as its twin. */
async function side(env: Partial<Record<ConfigVarName, string>>, keys: MemoryKeyStore): Promise<Side> {
  const config = loadConfig({}, { LOG_LEVEL: 'info', INSTANCE_ID: 'test', RATE_LIMITS: 'free=3,pro=600,enterprise=6000', TOKEN_QUOTAS: 'free=100000,pro=40,enterprise=1000000000', ...env });
  const limits = new MemoryLimitStore();
  const idempotency = new MemoryIdempotencyStore();
  const meter = new RecordingMeter();
  const logs = new LogCapture();
  const app = buildApp(config, { keys, limits, idempotency, meter, logDestination: logs });
  const routed: string[] = [];
  app.addHook('onRequest', (req, _reply, done) => {
    routed.push(`${req.method} ${req.url}`);
    done();
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    app, port, meter, limits, logs, routed,
    close: async () => {
      await app.close();
      limits.close();
      idempotency.close();
    },
  };
}

function post(port: number, body: string, headers: Record<string, string>, path = INVOKE): Promise<HttpResult> {
  return http(port, path, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers }, body });
}

/** What must be the same on both paths: status, body (request id aside) and the headers an API client reads. */
function comparable(r: HttpResult, exactRemaining = false): Record<string, unknown> {
  const pick = ['content-type', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'retry-after', 'www-authenticate', 'allow'];
  // Times in seconds may tick between the two requests, and a fast key's remaining allowance refills
  // between them: only their presence must match (the slow free-tier key's allowance is compared exactly).
  const timed = new Set(['ratelimit-reset', 'retry-after', ...(exactRemaining ? [] : ['ratelimit-remaining'])]);
  return {
    status: r.status,
    body: r.body.replace(/"request_id":"[^"]*"/, '"request_id":"-"').replace(/retry in \d+ s/, 'retry in N s').replace(/"retry_after_s":\d+/, '"retry_after_s":N'),
    headers: Object.fromEntries(pick.filter((h) => r.headers[h] !== undefined).map((h) => [h, timed.has(h) ? 'present' : r.headers[h]])),
  };
}

describe('POST /v1/agentese/invoke ahead of the router (FAST_INVOKE)', () => {
  const keys = new MemoryKeyStore();
  let fast: Side;
  let routedSide: Side;
  let writer: string;
  let reader: string;
  let freeKey: string;
  let proKey: string;

  before(async () => {
    writer = (await createKey(keys, 'acme', 'enterprise', ['read', 'write'])).key;
    reader = (await createKey(keys, 'acme', 'enterprise', ['read'])).key;
    freeKey = (await createKey(keys, 'smallco', 'free', ['write'])).key;
    proKey = (await createKey(keys, 'quota-co', 'pro', ['write'])).key;
    fast = await side({ FAST_INVOKE: 'on' }, keys);
    routedSide = await side({ FAST_INVOKE: 'off' }, keys);
  });
  after(async () => {
    await fast.close();
    await routedSide.close();
  });

  /** Sends the same request to both APIs; returns both answers and whether the fast one went through Fastify. */
  async function both(body: string, headers: Record<string, string>): Promise<{ f: HttpResult; r: HttpResult; routed: boolean }> {
    const before = fast.routed.length;
    const f = await post(fast.port, body, headers);
    const r = await post(routedSide.port, body, headers);
    return { f, r, routed: fast.routed.length > before };
  }

  test('a valid call is answered by the fast path with the same status, body and rate-limit headers as the Fastify route', async () => {
    const body = JSON.stringify({ path: 'world.house.manifest', observer: { archetype: 'architect' }, kwargs: { depth: 2 } });
    const { f, r, routed } = await both(body, { 'x-api-key': writer, 'x-request-id': 'same-id-1' });
    assert.equal(routed, false, 'the fast path answered');
    assert.equal(routedSide.routed.at(-1), `POST ${INVOKE}`, 'FAST_INVOKE=off: Fastify answered');
    assert.equal(f.status, 200, f.body);
    assert.deepEqual(comparable(f), comparable(r));
    assert.equal(f.body, r.body, 'byte-identical answer');
    assert.equal(f.headers['x-request-id'], 'same-id-1');
    assert.equal(f.headers['content-length'], String(Buffer.byteLength(f.body)));
  });

  test('the fast path bills as the route does: one usage event with the same fields, tokens charged to the quota', async () => {
    const body = JSON.stringify({ path: 'world.house.manifest', observer: { archetype: 'architect' } });
    const eventsBefore = [fast.meter.events.length, routedSide.meter.events.length];
    const { f, routed } = await both(body, { authorization: `Bearer ${writer}`, 'x-request-id': 'billing-1' });
    assert.equal(routed, false);
    const fe = fast.meter.events.slice(eventsBefore[0]);
    const re = routedSide.meter.events.slice(eventsBefore[1]);
    assert.equal(fe.length, 1);
    assert.equal(re.length, 1);
    const strip = (e: UsageEvent | undefined): unknown => {
      const copy = JSON.parse(JSON.stringify(e)) as { id: string; time: string; data: Record<string, unknown> };
      return { ...copy, id: typeof copy.id, time: typeof copy.time, data: { ...copy.data, latency_ms: typeof copy.data.latency_ms } };
    };
    assert.deepEqual(strip(fe[0]), strip(re[0]));
    assert.equal((fe[0]?.data as { request_id?: string }).request_id, 'billing-1');
    const tokens = (JSON.parse(f.body) as { tokens_used: number }).tokens_used;
    assert.ok(tokens > 0);
    const metrics = await fast.app.inject({ method: 'GET', url: '/metrics' });
    assert.match(metrics.body, /kgents_http_requests_total\{[^}]*route="\/v1\/agentese\/invoke"[^}]*status="200"[^}]*\} [1-9]/);
  });

  test('bad bodies get the route\'s own 400s from the fast path, and use no rate-limit token', async () => {
    const bodies = [
      '{"path": "world.house"',
      '{"path":"world.house","kwargs":{"__proto__":{"polluted":true}}}',
      '{"path":"world.house","kwargs":{"constructor":{"prototype":{"polluted":true}}}}',
      '[]',
      '"text"',
      '{}',
      '{"path":""}',
      '{"path":"world.house","extra":1}',
      '{"path":"world.house","observer":{"archetype":"Not Valid"}}',
      '{"path":"world.house","observer":{"capabilities":"all"}}',
      '{"path":"world.house","kwargs":[]}',
      '{"path":"x"}',
      '{"path":"nowhere.house"}',
      '{"path":"world.house.fly"}',
    ];
    for (const body of bodies) {
      const { f, r, routed } = await both(body, { 'x-api-key': freeKey });
      assert.equal(routed, false, body);
      assert.ok(f.status >= 400 && f.status < 500, `${body}: ${f.status}`);
      assert.deepEqual(comparable(f), comparable(r), body);
    }
    // JSON and schema errors happen before admission; the domain's (path) errors after it, as on the route.
    const ok = await both('{"path":"world.house"}', { 'x-api-key': freeKey });
    assert.deepEqual(comparable(ok.f), comparable(ok.r));
  });

  test('rate limit and quota refusals are the same 429s, with Retry-After and the rate-limit headers', async () => {
    const results: [HttpResult, HttpResult][] = [];
    for (let i = 0; i < 4; i += 1) {
      const { f, r } = await both('{"path":"world.house"}', { 'x-api-key': freeKey });
      results.push([f, r]);
    }
    const last = results.at(-1);
    assert.ok(last);
    assert.equal(last[0].status, 429);
    assert.match(last[0].body, /ERR_RATE_LIMITED/);
    assert.deepEqual(comparable(last[0], true), comparable(last[1], true));
    // pro quota is 40 tokens: a few calls use it up.
    let quota: [HttpResult, HttpResult] | undefined;
    for (let i = 0; i < 20 && !quota; i += 1) {
      const { f, r } = await both('{"path":"world.house.manifest"}', { 'x-api-key': proKey });
      assert.deepEqual(comparable(f), comparable(r));
      if (f.status === 429) quota = [f, r];
    }
    assert.ok(quota, 'the quota ran out');
    assert.match(quota[0].body, /ERR_QUOTA_EXCEEDED/);
    assert.ok(quota[0].headers['retry-after']);
  });

  test('a meter that cannot record gives the same 503 ERR_METERING_UNAVAILABLE and charges nothing', async () => {
    fast.meter.failing = true;
    routedSide.meter.failing = true;
    try {
      const { f, r, routed } = await both('{"path":"world.house.manifest"}', { 'x-api-key': writer, 'x-request-id': 'meter-down' });
      assert.equal(routed, false);
      assert.equal(f.status, 503);
      assert.equal(f.headers['retry-after'], '7');
      assert.deepEqual(comparable(f), comparable(r));
      const logged = fast.logs.lines.find((l) => l.includes('meter-down') && l.includes('request completed'));
      assert.ok(logged, 'an error answer gets its request line (LOG_REQUESTS=errors)');
      assert.match(logged, /"tenant":"acme"/);
      assert.ok(!fast.logs.text.includes(writer.slice(12)), 'the key\'s secret is never logged');
    } finally {
      fast.meter.failing = false;
      routedSide.meter.failing = false;
    }
  });

  test('requests the fast path does not take reach Fastify unchanged, with the route\'s answers', async () => {
    const body = '{"path":"world.house.manifest"}';
    const cases: { name: string; headers: Record<string, string>; body?: string; path?: string }[] = [
      { name: 'no key', headers: {} },
      { name: 'a wrong key', headers: { 'x-api-key': `${writer.slice(0, -4)}AAAA` } },
      { name: 'a key without write', headers: { 'x-api-key': reader } },
      { name: 'an Idempotency-Key', headers: { 'x-api-key': writer, 'idempotency-key': 'fast-invoke-idem-1' } },
      { name: 'another content type', headers: { 'x-api-key': writer, 'content-type': 'text/plain' } },
      { name: 'a JSON content type with another parameter', headers: { 'x-api-key': writer, 'content-type': 'application/json; charset=utf-8; x=1' } },
      { name: 'an empty body', headers: { 'x-api-key': writer }, body: '' },
      { name: 'a body over BODY_LIMIT_BYTES', headers: { 'x-api-key': writer }, body: JSON.stringify({ path: 'world.house', kwargs: { pad: 'x'.repeat(70_000) } }) },
      { name: 'a query string', headers: { 'x-api-key': writer }, path: `${INVOKE}?x=1` },
    ];
    for (const c of cases) {
      const before = fast.routed.length;
      const payload = c.body ?? body;
      const f = await post(fast.port, payload, c.headers, c.path);
      const r = await post(routedSide.port, payload, c.headers, c.path);
      assert.equal(fast.routed.length, before + 1, `${c.name}: Fastify answered`);
      assert.deepEqual(comparable(f), comparable(r), c.name);
    }
    // A chunked body (no Content-Length) too.
    const before = fast.routed.length;
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: fast.port, path: INVOKE, method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': writer }, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.write('{"path":');
      req.end('"world.house"}');
    });
    assert.equal(chunked, 200);
    assert.equal(fast.routed.length, before + 1);
  });

  test('a client that goes away mid-body leaves the server serving', async () => {
    const socket = connect(fast.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(`POST ${INVOKE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\nX-API-Key: ${writer}\r\n\r\n{"path":`);
    await sleep(50);
    socket.destroy();
    await sleep(50);
    const { f } = await both('{"path":"world.house"}', { 'x-api-key': writer });
    assert.equal(f.status, 200);
  });

  test('a body that arrives in pieces, split inside a multi-byte character, is read as one text', async () => {
    const body = Buffer.from(JSON.stringify({ path: 'world.house', observer: { name: 'Zoë 東京 🚀' } }), 'utf8');
    const cut = body.indexOf(Buffer.from('東', 'utf8')) + 1;
    const before = fast.routed.length;
    const socket = connect(fast.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    const answer = new Promise<string>((resolve) => {
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        text += chunk;
        if (/\r\n\r\n[\s\S]*\}$/.test(text)) resolve(text);
      });
    });
    socket.write(`POST ${INVOKE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nX-API-Key: ${writer}\r\n\r\n`);
    socket.write(body.subarray(0, cut));
    await sleep(30);
    socket.write(body.subarray(cut, cut + 3));
    await sleep(30);
    socket.write(body.subarray(cut + 3));
    const text = await answer;
    socket.destroy();
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.ok(text.includes('"name":"Zoë 東京 🚀"'), text);
    assert.equal(fast.routed.length, before, 'answered by the fast path');
  });

  test('random bodies get the same answer on both paths, and never a 5xx', async () => {
    const value = fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 8 }), fc.string(), { maxKeys: 3 }));
    const bodyArb = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.record({ path: fc.oneof(fc.constantFrom('world.house', 'self.memory.manifest', 'concept.justice.relate', 'void.x', 'world', 'world.house[phase=QA]'), fc.string({ maxLength: 30 })), observer: fc.option(fc.dictionary(fc.constantFrom('name', 'archetype', 'capabilities', 'other'), value, { maxKeys: 3 }), { nil: undefined }), kwargs: fc.option(value, { nil: undefined }) }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
    );
    await fc.assert(fc.asyncProperty(bodyArb, async (body) => {
      if (body === '') return;
      const { f, r } = await both(body, { 'x-api-key': writer });
      assert.ok(f.status < 500, `${body}: ${f.status} ${f.body}`);
      assert.deepEqual(comparable(f), comparable(r), body);
    }), { numRuns: 60 });
  });

  test('shutdown waits for a fast-path invoke in flight: it is billed and answered before close() resolves', async () => {
    const own = await side({ FAST_INVOKE: 'on' }, keys);
    own.meter.delayMs = 300;
    const pending = post(own.port, '{"path":"world.house.manifest"}', { 'x-api-key': writer });
    await sleep(100);
    let closed = false;
    const closing = own.close().then(() => {
      closed = true;
    });
    const res = await pending;
    assert.equal(res.status, 200, res.body);
    assert.equal(own.meter.events.length, 1);
    await closing;
    assert.ok(closed);
    assert.equal(own.routed.length, 0, 'the fast path answered it');
  });
});
