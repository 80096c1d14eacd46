import { strict as assert } from 'node:assert';
import { createServer, request, type Server } from 'node:http';
import { test } from 'node:test';
import { Balancer } from '../../../src/ops/stack/balancer.js';

// Budget: about 1 s.

/** A stand-in instance: /ready 200 (until told otherwise); other requests get 200, or 503 as shed load when `shedding`. */
async function instance(id: string): Promise<{ id: string; port: number; shedding: boolean; ready: number; server: Server }> {
  const state = { id, port: 0, shedding: false, ready: 200, server: undefined as unknown as Server };
  state.server = createServer((req, res) => {
    if (req.url === '/ready') {
      res.writeHead(state.ready).end();
      return;
    }
    req.resume();
    if (state.shedding) {
      res.writeHead(503, { 'retry-after': '2', 'x-kgents-shed': 'heap', 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'ERR_OVERLOADED' } }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id }));
  });
  await new Promise<void>((resolve) => state.server.listen(0, '127.0.0.1', resolve));
  const addr = state.server.address();
  state.port = typeof addr === 'object' && addr ? addr.port : 0;
  return state;
}

function post(port: number): Promise<{ status: number; body: string; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/v1/agentese/invoke', method: 'POST', headers: { 'content-type': 'application/json' }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, retryAfter: res.headers['retry-after'] }));
    });
    req.on('error', reject);
    req.end('{"path":"world.house.manifest"}');
  });
}

test('the balancer passes a shed request (503 X-Kgents-Shed, nothing was done) to another instance, even a POST, and takes the shedding one out of rotation; with none left the 503 reaches the client', async () => {
  const a = await instance('a');
  const b = await instance('b');
  const lb = new Balancer({ probeIntervalMs: 50, probeTimeoutMs: 300 });
  await lb.start();
  try {
    lb.add({ id: 'a', port: a.port });
    lb.add({ id: 'b', port: b.port });
    await lb.waitInRotation('a', 5000);
    await lb.waitInRotation('b', 5000);
    a.shedding = true;
    a.ready = 503;
    for (let i = 0; i < 4; i++) {
      const r = await post(lb.port);
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body), { id: 'b' });
    }
    assert.equal(lb.inRotation('a'), false);
    b.shedding = true;
    const last = await post(lb.port);
    assert.equal(last.status, 503);
    assert.equal(last.retryAfter, '2');
    assert.match(last.body, /ERR_OVERLOADED/);
  } finally {
    await lb.stop(500);
    a.server.close();
    b.server.close();
  }
});
