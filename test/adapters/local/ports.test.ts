import { strict as assert } from 'node:assert';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { freePort } from '../../../src/adapters/local/ports.js';

void test('free ports are bindable, never handed out twice, and (on Linux) below the ephemeral range outgoing connections use', async () => {
  const ports = await Promise.all(Array.from({ length: 200 }, () => freePort()));
  assert.equal(new Set(ports).size, ports.length);
  const range = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').catch(() => undefined);
  const low = range === undefined ? undefined : Number(range.trim().split(/\s+/)[0]);
  if (low !== undefined && low > 11_024) assert.ok(ports.every((p) => p < low), `all below ${low}`);
  const port = ports[0] ?? 0;
  await new Promise<void>((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve()));
  });
});
