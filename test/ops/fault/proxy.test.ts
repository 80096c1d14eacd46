import { strict as assert } from 'node:assert';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FaultModeError, FaultProxy, parseFaultSetting } from '../../../src/ops/fault/proxy.js';

/** An echo server that records what reaches it: connections, bytes, ends. */
class Upstream {
  readonly server: Server;
  connections = 0;
  received = '';
  ends = 0;
  readonly sockets = new Set<Socket>();

  constructor() {
    this.server = createServer({ allowHalfOpen: true }, (s) => {
      this.connections++;
      this.sockets.add(s);
      s.on('data', (c: Buffer) => {
        this.received += c.toString();
        s.write(c);
      });
      s.on('end', () => {
        this.ends++;
        s.end();
      });
      s.on('error', () => undefined);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

interface Client {
  readonly socket: Socket;
  text(): string;
  /** 'open', 'end' (FIN), or the error code that closed it. */
  outcome(): string;
}

async function dial(port: number): Promise<Client> {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  let text = '';
  let outcome = 'open';
  socket.on('data', (c: Buffer) => (text += c.toString()));
  socket.on('end', () => (outcome = outcome === 'open' ? 'end' : outcome));
  socket.on('error', (e: NodeJS.ErrnoException) => (outcome = e.code ?? e.message));
  socket.on('close', () => (outcome = outcome === 'open' ? 'closed' : outcome));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, text: () => text, outcome: () => outcome };
}

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(10);
  }
}

describe('fault proxy (real sockets)', () => {
  const upstream = new Upstream();
  let proxy: FaultProxy;

  before(async () => {
    proxy = new FaultProxy({ upstreamPort: await upstream.listen(), name: 'echo' });
    await proxy.start();
  });

  after(async () => {
    await proxy.stop();
    await upstream.close();
  });

  test('pass forwards both ways and a half-close, and counts bytes', async () => {
    proxy.set({ mode: 'pass' });
    const c = await dial(proxy.port);
    c.socket.write('hello');
    await until('echo', () => c.text() === 'hello');
    c.socket.end();
    await until('FIN crosses both ways', () => c.outcome() === 'end' || c.outcome() === 'closed');
    assert.ok(upstream.ends >= 1);
    const s = proxy.stats();
    assert.ok(s.bytes_up >= 5 && s.bytes_down >= 5, JSON.stringify(s));
    assert.equal(s.mode, 'pass');
  });

  test('hang stalls open connections both ways and hides new ones from the upstream; pass delivers what was held', async () => {
    proxy.set({ mode: 'pass' });
    const early = await dial(proxy.port);
    early.socket.write('a');
    await until('echo before the hang', () => early.text() === 'a');
    const before = upstream.connections;

    proxy.set({ mode: 'hang' });
    early.socket.write('b');
    // accepted at once (the client cannot tell a black hole from a slow server)...
    const late = await dial(proxy.port);
    late.socket.write('c');
    late.socket.end();
    await sleep(400);
    // ...but nothing crosses: no echo, no new upstream connection, no FIN
    assert.equal(early.text(), 'a');
    assert.equal(early.outcome(), 'open');
    assert.equal(late.outcome(), 'open');
    assert.equal(upstream.connections, before, 'the upstream never saw the connection made during the hang');
    assert.ok(!upstream.received.includes('b') && !upstream.received.includes('c'));
    assert.equal(proxy.stats().mode, 'hang');
    assert.ok(proxy.stats().connections_open >= 2);

    proxy.set({ mode: 'pass' });
    await until('held data crosses after healing', () => early.text() === 'ab' && late.text() === 'c');
    await until('the held FIN crosses too', () => late.outcome() === 'end' || late.outcome() === 'closed');
    assert.equal(upstream.connections, before + 1);
    early.socket.destroy();
  });

  test('refuse resets open connections and every new one', async () => {
    proxy.set({ mode: 'pass' });
    const open = await dial(proxy.port);
    open.socket.write('x');
    await until('echo', () => open.text() === 'x');
    const resetsBefore = proxy.stats().connections_reset;
    proxy.set({ mode: 'refuse' });
    await until('the open connection is reset', () => open.outcome() !== 'open');
    assert.match(open.outcome(), /ECONNRESET|closed|end/);
    const fresh = await dial(proxy.port).catch((e: NodeJS.ErrnoException) => e.code ?? 'error');
    if (typeof fresh !== 'string') await until('the new connection is reset', () => fresh.outcome() !== 'open');
    assert.ok(proxy.stats().connections_reset >= resetsBefore + 2);
    proxy.set({ mode: 'pass' });
    const again = await dial(proxy.port);
    again.socket.write('y');
    await until('pass works again', () => again.text() === 'y');
    again.socket.destroy();
  });

  test('latency delays each direction by the setting, in order', async () => {
    proxy.set({ mode: 'latency', latencyMs: 150 });
    const c = await dial(proxy.port);
    const started = Date.now();
    c.socket.write('1');
    c.socket.write('2');
    c.socket.write('3');
    await until('echo', () => c.text() === '123');
    const rtt = Date.now() - started;
    assert.ok(rtt >= 290, `round trip ${rtt} ms includes 2 × 150 ms`);
    assert.equal(proxy.stats().latency_ms, 150);
    proxy.set({ mode: 'pass' });
    c.socket.destroy();
  });

  test('a client of a proxy whose upstream is down sees its connection reset', async () => {
    const dead = new Upstream();
    const port = await dead.listen();
    await dead.close();
    const p = new FaultProxy({ upstreamPort: port });
    await p.start();
    try {
      const c = await dial(p.port);
      await until('closed', () => c.outcome() !== 'open');
    } finally {
      await p.stop();
    }
  });

  test('modes parse from control-endpoint text, with clear errors', () => {
    assert.deepEqual(parseFaultSetting('HANG'), { mode: 'hang' });
    assert.deepEqual(parseFaultSetting('latency', '250'), { mode: 'latency', latencyMs: 250 });
    assert.throws(() => parseFaultSetting('drop'), FaultModeError);
    assert.throws(() => parseFaultSetting('latency', 'x'), FaultModeError);
    assert.throws(() => parseFaultSetting(undefined), FaultModeError);
  });
});
