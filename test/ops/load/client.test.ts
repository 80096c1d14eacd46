import { strict as assert } from 'node:assert';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LoadClient, type Outcome } from '../../../src/ops/load/client.js';
import { startServer, type TestServer } from './servers.js';

function send(client: LoadClient, request: Buffer): Promise<Outcome> {
  return new Promise((resolve) => client.send(request, resolve));
}

/** A raw TCP server: `reply(socket, requestNumber)` writes whatever bytes the test wants. */
async function rawServer(reply: (socket: Socket, n: number) => void): Promise<{ url: string; server: Server; connections: () => number }> {
  let n = 0;
  let connections = 0;
  const server = createNetServer((socket) => {
    connections += 1;
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      while (buffered.includes('\r\n\r\n')) {
        buffered = buffered.slice(buffered.indexOf('\r\n\r\n') + 4);
        reply(socket, n++);
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, connections: () => connections };
}

describe('load client (raw HTTP/1.1)', () => {
  const closers: (() => unknown)[] = [];
  after(() => {
    for (const c of closers) c();
  });

  test('reuses one keep-alive connection and reads Content-Length, chunked and empty bodies', async () => {
    const raw = await rawServer((socket, n) => {
      const kind = n % 3;
      if (kind === 0) {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel');
        setTimeout(() => socket.write('lo'), 5);
      } else if (kind === 1) {
        // chunked, split at awkward places, with a chunk extension and a trailer
        socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r');
        setTimeout(() => socket.write('\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: 1\r'), 5);
        setTimeout(() => socket.write('\n\r\n'), 10);
      } else {
        socket.write('HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n');
      }
    });
    closers.push(() => raw.server.close());
    const client = new LoadClient(raw.url, 1, 5000);
    const req = client.prepare('GET', '/', {}, undefined);
    for (let i = 0; i < 6; i++) {
      const o = await send(client, req);
      assert.equal(o.status, i % 3 === 2 ? 204 : 200, `request ${i}: ${JSON.stringify(o)}`);
    }
    assert.equal(raw.connections(), 1);
    client.close();
  });

  test('reads the API error code from error bodies, also when chunked', async () => {
    const body = JSON.stringify({ error: { code: 'ERR_QUOTA_EXCEEDED', message: 'm' } });
    const raw = await rawServer((socket, n) => {
      if (n === 0) socket.write(`HTTP/1.1 429 Too Many Requests\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      else socket.write(`HTTP/1.1 503 Unavailable\r\ntransfer-encoding: chunked\r\n\r\n${(10).toString(16)}\r\n${body.slice(0, 10)}\r\n${(body.length - 10).toString(16)}\r\n${body.slice(10)}\r\n0\r\n\r\n`);
    });
    closers.push(() => raw.server.close());
    const client = new LoadClient(raw.url, 1, 5000);
    const req = client.prepare('GET', '/', {}, undefined);
    const head = `HTTP/1.1 429 Too Many Requests\r\ncontent-length: ${body.length}\r\n\r\n`;
    assert.deepEqual(await send(client, req), { status: 429, code: 'ERR_QUOTA_EXCEEDED', bytes: head.length + body.length });
    const second = await send(client, req);
    assert.deepEqual([second.status, second.code], [503, 'ERR_QUOTA_EXCEEDED']);
    client.close();
  });

  test('a response without length ends with the connection; "Connection: close" opens a new one next time', async () => {
    const raw = await rawServer((socket, n) => {
      if (n === 0) socket.end('HTTP/1.0 200 OK\r\n\r\nuntil close');
      else socket.end('HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok');
    });
    closers.push(() => raw.server.close());
    const client = new LoadClient(raw.url, 1, 5000);
    const req = client.prepare('GET', '/', {}, undefined);
    assert.equal((await send(client, req)).status, 200);
    assert.equal((await send(client, req)).status, 200);
    assert.equal((await send(client, req)).status, 200);
    assert.equal(raw.connections(), 3);
    client.close();
  });

  test('a connection the server closed while idle is replaced, not reported as a failure', async () => {
    let server: TestServer | undefined = await startServer();
    server.server.keepAliveTimeout = 100;
    closers.push(() => void server?.close());
    const client = new LoadClient(server.url, 2, 5000);
    const req = client.prepare('POST', '/x', { 'content-type': 'application/json' }, '{"a":1}');
    assert.equal((await send(client, req)).status, 200);
    await sleep(300); // the server closes the idle connection
    assert.equal((await send(client, req)).status, 200);
    assert.equal(server.paths.get('/x'), 2);
    client.close();
    await server.close();
    server = undefined;
  });

  test('a request past its deadline ends as TIMEOUT; after close, as STOPPED', async () => {
    const raw = await rawServer(() => undefined);
    closers.push(() => raw.server.close());
    const client = new LoadClient(raw.url, 2, 300);
    const req = client.prepare('GET', '/', {}, undefined);
    const started = Date.now();
    const o = await send(client, req);
    assert.deepEqual([o.status, o.code], [0, 'TIMEOUT']);
    assert.ok(Date.now() - started < 1000);
    const pending = send(client, req);
    client.close();
    assert.equal((await pending).code, 'STOPPED');
  });
});
