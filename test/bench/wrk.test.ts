import { strict as assert } from 'node:assert';
import type { ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { headerLines, parseWrkOutput, runWrkLoad, wrkInstalled, wrkSummary } from '../../bench/lib/wrk.js';

const RESULT = 'KGENTS_WRK {"requests":1000,"duration_us":2000000,"connect":0,"read":1,"write":0,"status":10,"timeout":2,'
  + '"p50":1500,"p90":2500,"p97_5":3000,"p99":4000,"p99_9":9000,"max":12000,"mean":1612.5}';

test('the wrk result line is read from among wrk\'s own output', () => {
  const figures = parseWrkOutput(`Running 2s test @ http://x/\n  1 threads and 8 connections\n${RESULT}\n`);
  assert.equal(figures.requests, 1000);
  assert.equal(figures.p99, 4000);
});

test('wrk output without a result line, or with a field missing, is an error that shows the output', () => {
  assert.throws(() => parseWrkOutput('unable to connect to 127.0.0.1:1 Connection refused\n'), /no result line[\s\S]*Connection refused/);
  assert.throws(() => parseWrkOutput(RESULT.replace('"p99":4000,', '')), /lacks p99/);
});

test('wrk figures become the bench summary: req/s over the measured time, latencies in ms, answers >= 400 as non-2xx', () => {
  const summary = wrkSummary(parseWrkOutput(RESULT), 42.5);
  assert.equal(summary.generator, 'wrk');
  assert.equal(summary.rps, 500);
  assert.equal(summary.durationS, 2);
  assert.deepEqual(summary.latency, { p50: 1.5, p90: 2.5, p97_5: 3, p99: 4, p99_9: 9, max: 12, mean: 1.613 });
  assert.equal(summary.status2xx, 990);
  assert.equal(summary.non2xx, 10);
  assert.deepEqual(summary.statusCounts, { '>=400': 10 });
  assert.equal(summary.errors, 1);
  assert.equal(summary.timeouts, 2);
  assert.equal(summary.generatorCpuPct, 42.5);
});

test('headers reach the script one per line, and a header that would break a line is refused', () => {
  assert.equal(headerLines({ 'x-api-key': 'kg_a_b', 'content-type': 'application/json' }), 'x-api-key: kg_a_b\ncontent-type: application/json');
  assert.throws(() => headerLines({ 'x-evil': 'a\nb: c' }), /cannot be passed/);
});

test('a wrk run sends the job\'s method, headers and body and counts the answers', {
  skip: wrkInstalled() ? false : 'wrk is not installed (apt-get install -y wrk; .ci/run installs it)',
}, async () => {
  const seen: { method?: string; key?: string; type?: string; body?: string } = {};
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (seen.method === undefined) {
        seen.method = req.method;
        seen.key = req.headers['x-api-key'] as string | undefined;
        seen.type = req.headers['content-type'];
        seen.body = Buffer.concat(chunks).toString('utf8');
      }
      res.statusCode = req.url === '/missing' ? 404 : 200;
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const live = new Set<ChildProcess>();
  try {
    const body = JSON.stringify({ path: 'world.house.manifest', kwargs: { note: 'it\'s "quoted"' } });
    const ok = await runWrkLoad({
      url: `http://127.0.0.1:${port}/`, method: 'POST', headers: { 'x-api-key': 'kg_test_secret', 'content-type': 'application/json' },
      body, connections: 4, durationS: 1, timeoutS: 5,
    }, live);
    assert.ok(ok.requests > 0 && ok.rps > 0, `requests ${ok.requests}`);
    assert.equal(ok.non2xx, 0);
    assert.equal(ok.errors + ok.timeouts, 0);
    assert.ok(ok.latency.p50 > 0 && ok.latency.p50 <= ok.latency.p99);
    assert.deepEqual(seen, { method: 'POST', key: 'kg_test_secret', type: 'application/json', body });

    const missing = await runWrkLoad({ url: `http://127.0.0.1:${port}/missing`, method: 'GET', headers: {}, connections: 2, durationS: 1, timeoutS: 5 }, live);
    assert.ok(missing.requests > 0);
    assert.equal(missing.non2xx, missing.requests);
    assert.equal(live.size, 0);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
