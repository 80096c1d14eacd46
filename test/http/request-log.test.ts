import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { testApp } from '../harness/app.js';

// Budget: well under a second (in-process app, memory stores).

interface LogLine { level?: string; msg?: string; request_id?: string; status?: number; route?: string; instance?: string }

const parse = (lines: readonly string[]): LogLine[] => lines.map((l) => JSON.parse(l) as LogLine);

void test('with LOG_REQUESTS=errors only failed requests leave a completion line, carrying their request id', async () => {
  const t = await testApp({ LOG_REQUESTS: 'errors' });
  try {
    const ok = await t.app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'ok-1' } });
    assert.equal(ok.statusCode, 200);
    const missing = await t.app.inject({ method: 'GET', url: '/nope', headers: { 'x-request-id': 'missing-1' } });
    assert.equal(missing.statusCode, 404);
    const completed = parse(t.logs.lines).filter((l) => l.msg === 'request completed');
    assert.deepEqual(completed.map((l) => [l.request_id, l.status, l.route, l.instance]), [['missing-1', 404, 'unmatched', 'test']]);
  } finally {
    await t.close();
  }
});

void test('with LOG_REQUESTS=all every request leaves one completion line with its own request id', async () => {
  const t = await testApp({ LOG_REQUESTS: 'all' });
  try {
    for (const id of ['a-1', 'a-2', 'a-3']) await t.app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': id } });
    const completed = parse(t.logs.lines).filter((l) => l.msg === 'request completed');
    assert.deepEqual(completed.map((l) => [l.request_id, l.level, l.status]), [['a-1', 'info', 200], ['a-2', 'info', 200], ['a-3', 'info', 200]]);
  } finally {
    await t.close();
  }
});

void test('with LOG_REQUESTS=none and LOG_LEVEL=warn a request logs nothing', async () => {
  const t = await testApp({ LOG_REQUESTS: 'none', LOG_LEVEL: 'warn' });
  try {
    await t.app.inject({ method: 'GET', url: '/nope' });
    await t.app.inject({ method: 'GET', url: '/health' });
    assert.deepEqual(parse(t.logs.lines).filter((l) => l.request_id !== undefined), []);
  } finally {
    await t.close();
  }
});
