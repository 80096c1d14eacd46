import { strict as assert } from 'node:assert';
import { Agent, createServer, request, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Balancer, upstreamFailure } from '../../../src/ops/stack/balancer.js';

/** A stand-in API instance: /ready answers per `readiness`, everything else names the instance. */
interface FakeBackend {
  readonly id: string;
  readonly port: number;
  readiness: number;
  /** When set, requests with this method get their connection closed without an answer. */
  resetMethod: string | undefined;
  /** How: `fin` (a normal close: the request may have been processed) or `rst` (reset: it was not read). */
  resetWith: 'fin' | 'rst';
  served: number;
  close(): Promise<void>;
}

async function fakeBackend(id: string): Promise<FakeBackend> {
  const sockets = new Set<Socket>();
  const state = { readiness: 200, resetMethod: undefined as string | undefined, resetWith: 'fin' as 'fin' | 'rst', served: 0 };
  const server: Server = createServer((req, res) => {
    if (req.url === '/ready') {
      res.writeHead(state.readiness, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ready: state.readiness === 200 }));
      return;
    }
    if (req.method === state.resetMethod) {
      if (state.resetWith === 'rst') req.socket.resetAndDestroy();
      else req.socket.destroy();
      return;
    }
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      state.served++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id, method: req.method, body }));
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return Object.assign(state, {
    id, port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    }),
  });
}

interface Reply { status: number; backend: string | undefined; body: string }

function send(port: number, options: { method?: string; path?: string; headers?: Record<string, string>; body?: string; agent?: Agent } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: options.path ?? '/work', method: options.method ?? 'GET', headers: options.headers, agent: options.agent ?? false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, backend: res.headers['x-kgents-backend'] as string | undefined, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

async function withBalancer(n: number, fn: (lb: Balancer, backends: FakeBackend[]) => Promise<void>): Promise<void> {
  const backends = await Promise.all(Array.from({ length: n }, (_, i) => fakeBackend(`b${i + 1}`)));
  const lb = new Balancer({ probeIntervalMs: 50, probeTimeoutMs: 300 });
  await lb.start();
  try {
    for (const b of backends) lb.add({ id: b.id, port: b.port });
    for (const b of backends) await lb.waitInRotation(b.id, 5000);
    await fn(lb, backends);
  } finally {
    await lb.stop(500);
    await Promise.all(backends.map((b) => b.close()));
  }
}

describe('stack load balancer', () => {
  test('round-robins requests evenly across the ready instances, even on one kept-alive client connection', async () => {
    await withBalancer(3, async (lb) => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const seen: Record<string, number> = {};
      for (let i = 0; i < 30; i++) {
        const r = await send(lb.port, { agent });
        assert.equal(r.status, 200);
        seen[r.backend ?? '?'] = (seen[r.backend ?? '?'] ?? 0) + 1;
      }
      agent.destroy();
      assert.deepEqual(seen, { b1: 10, b2: 10, b3: 10 });
    });
  });

  test('an instance whose /ready turns 503 (draining) leaves rotation within a probe interval and gets no new requests', async () => {
    await withBalancer(2, async (lb, [b1, b2]) => {
      assert.ok(b1 && b2);
      b1.readiness = 503;
      await sleep(200);
      assert.equal(lb.inRotation('b1'), false);
      const before = b1.served;
      const agent = new Agent({ keepAlive: true, maxSockets: 2 });
      const replies = await Promise.all(Array.from({ length: 20 }, () => send(lb.port, { agent })));
      agent.destroy();
      assert.deepEqual(new Set(replies.map((r) => r.backend)), new Set(['b2']));
      assert.equal(b1.served, before, 'the draining instance got nothing new');
      b1.readiness = 200;
      await lb.waitInRotation('b1', 2000);
    });
  });

  test('a dead instance costs no failed request: refused connections are retried on another instance', async () => {
    await withBalancer(3, async (lb, [b1]) => {
      assert.ok(b1);
      const agent = new Agent({ keepAlive: true, maxSockets: 4 });
      // warm kept-alive connections to every backend, then kill one without a probe noticing first
      await Promise.all(Array.from({ length: 12 }, () => send(lb.port, { agent })));
      await b1.close();
      const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => send(lb.port, { agent, method: i % 2 ? 'GET' : 'HEAD' })));
      agent.destroy();
      assert.deepEqual(replies.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.body}`), []);
      assert.ok(replies.every((r) => r.backend !== 'b1'));
      assert.equal(lb.inRotation('b1'), false);
    });
  });

  test('down() (the supervisor saw the process exit) takes an instance out at once, with its kept-alive connections, until a probe succeeds again', async () => {
    await withBalancer(2, async (lb, [b1]) => {
      assert.ok(b1);
      const agent = new Agent({ keepAlive: true, maxSockets: 4 });
      await Promise.all(Array.from({ length: 8 }, () => send(lb.port, { agent })));
      // Keep /ready failing so that only down() can explain the change, then let it recover.
      b1.readiness = 503;
      lb.down('b1', 'process exited');
      assert.equal(lb.inRotation('b1'), false, 'out of rotation before any probe');
      const replies = await Promise.all(Array.from({ length: 10 }, () => send(lb.port, { agent, method: 'POST', body: '{}' })));
      assert.ok(replies.every((r) => r.status === 200 && r.backend === 'b2'));
      b1.readiness = 200;
      await lb.waitInRotation('b1', 2000);
      const after = await Promise.all(Array.from({ length: 10 }, () => send(lb.port, { agent })));
      agent.destroy();
      assert.ok(after.some((r) => r.backend === 'b1'), 'back in rotation, on new connections');
    });
  });

  test('a reset connection is retried elsewhere for a POST with an Idempotency-Key, but never for a plain POST', async () => {
    await withBalancer(2, async (lb, [b1, b2]) => {
      assert.ok(b1 && b2);
      b1.resetMethod = 'POST';
      b1.readiness = 200;
      // POST with Idempotency-Key: b1 resets, b2 answers; the body arrives intact
      let keyed: Reply | undefined;
      for (let i = 0; i < 2; i++) {
        // whichever backend round-robin picks first, every keyed POST succeeds
        keyed = await send(lb.port, { method: 'POST', headers: { 'idempotency-key': `k${i}`, 'content-type': 'application/json' }, body: '{"x":1}' });
        assert.equal(keyed.status, 200);
        assert.equal(keyed.backend, 'b2');
        assert.equal((JSON.parse(keyed.body) as { body: string }).body, '{"x":1}');
        await lb.waitInRotation('b1', 2000);
      }
      // A plain POST that reaches b1 is answered 503 (it may have been processed) and not sent twice.
      let plain: Reply | undefined;
      for (let i = 0; i < 4 && plain?.status !== 503; i++) {
        await lb.waitInRotation('b1', 2000);
        plain = await send(lb.port, { method: 'POST', body: 'once' });
      }
      assert.equal(plain?.status, 503);
      assert.match(plain?.body ?? '', /ERR_SERVICE_UNAVAILABLE/);
      assert.ok(lb.stats().failed >= 1);
    });
  });

  test('a connection reset (RST: the request was never read) is retried elsewhere even for a plain POST', async () => {
    await withBalancer(2, async (lb, [b1, b2]) => {
      assert.ok(b1 && b2);
      b1.resetMethod = 'POST';
      b1.resetWith = 'rst';
      for (let i = 0; i < 4; i++) {
        await lb.waitInRotation('b1', 2000);
        const r = await send(lb.port, { method: 'POST', body: `plain-${i}` });
        assert.equal(r.status, 200, r.body);
        assert.equal(r.backend, 'b2');
      }
      assert.ok(lb.stats().retries >= 1);
      assert.equal(lb.stats().failed, 0);
    });
  });

  test('with no instance ready it answers 503 ERR_SERVICE_UNAVAILABLE with Retry-After, and recovers when one returns', async () => {
    await withBalancer(1, async (lb, [b1]) => {
      assert.ok(b1);
      b1.readiness = 503;
      await sleep(200);
      const r = await send(lb.port);
      assert.equal(r.status, 503);
      assert.match(r.body, /ERR_SERVICE_UNAVAILABLE/);
      assert.equal(lb.stats().no_backend, 1);
      b1.readiness = 200;
      await lb.waitInRotation('b1', 2000);
      assert.equal((await send(lb.port)).status, 200);
    });
  });

  test('remove() takes an instance out at once and waits for its in-flight requests', async () => {
    await withBalancer(2, async (lb) => {
      await lb.remove('b1');
      assert.equal(lb.has('b1'), false);
      const replies = await Promise.all(Array.from({ length: 6 }, () => send(lb.port)));
      assert.deepEqual(new Set(replies.map((r) => r.backend)), new Set(['b2']));
    });
  });
});

void test('a failed upstream request is retried elsewhere only when the instance cannot have run it, or running it twice is safe', () => {
  const verdict = (code: string, syscall: string | undefined, method = 'POST', key = false): string => {
    const v = upstreamFailure({ code, syscall }, method, key);
    return `${v.instanceGone ? 'gone' : 'up'} ${v.retry ? 'retry' : 'fail'}`;
  };
  // Nothing reached the application: any method goes to another instance.
  assert.equal(verdict('ECONNREFUSED', 'connect'), 'gone retry');
  assert.equal(verdict('ECONNRESET', 'connect'), 'gone retry', 'reset while connecting (the instance died with the connection queued)');
  assert.equal(verdict('ECONNRESET', 'read'), 'gone retry');
  assert.equal(verdict('EPIPE', 'write'), 'gone retry');
  // "socket hang up": the instance may have processed it; only replayable requests are sent again.
  assert.equal(verdict('ECONNRESET', undefined), 'gone fail');
  assert.equal(verdict('ECONNRESET', undefined, 'GET'), 'gone retry');
  assert.equal(verdict('ECONNRESET', undefined, 'POST', true), 'gone retry');
  // A slow answer says nothing about whether it ran, nor that the instance is gone.
  assert.equal(verdict('ETIMEDOUT_UPSTREAM', undefined), 'up fail');
  assert.equal(verdict('ETIMEDOUT_UPSTREAM', undefined, 'GET'), 'up fail');
});
