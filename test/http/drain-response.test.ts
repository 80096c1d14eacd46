import { strict as assert } from 'node:assert';
import { IncomingMessage, createServer, request as httpRequest, Agent } from 'node:http';
import { Socket, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { drainAwareResponse } from '../../src/http/drain-response.js';

void test('a response keeps the connection alive as Node decides, until draining starts; then it asks the client to close', () => {
  let draining = false;
  const Response = drainAwareResponse(() => draining);
  const req = new IncomingMessage(new Socket());
  req.httpVersionMajor = 1;
  req.httpVersionMinor = 1;
  const res = new Response(req);
  assert.equal(res.shouldKeepAlive, true);
  assert.equal(Object.getOwnPropertyDescriptor(res, 'shouldKeepAlive'), undefined, 'the accessor is in effect');
  draining = true;
  assert.equal(res.shouldKeepAlive, false);
  draining = false;
  res.shouldKeepAlive = false;
  assert.equal(res.shouldKeepAlive, false, 'Node\'s own "no keep-alive" still holds');
});

void test('on a socket: keep-alive before draining, Connection: close for a request already in flight when draining starts', async () => {
  let draining = false;
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const server = createServer({ ServerResponse: drainAwareResponse(() => draining) }, (req, res) => {
    const answer = (): void => {
      res.setHeader('content-type', 'text/plain');
      res.end('ok');
    };
    if (req.url === '/slow') void held.then(answer);
    else answer();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const get = (path: string): Promise<string | undefined> => new Promise((resolve, reject) => {
    httpRequest({ host: '127.0.0.1', port, path, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.headers.connection));
    }).on('error', reject).end();
  });
  try {
    assert.equal(await get('/'), 'keep-alive');
    const slow = get('/slow');
    await new Promise((resolve) => setTimeout(resolve, 50));
    draining = true;
    release();
    assert.equal(await slow, 'close');
  } finally {
    agent.destroy();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});
