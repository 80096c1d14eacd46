import { strict as assert } from 'node:assert';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import { startApi } from '../harness/api-instance.js';
import { createKey } from '../harness/fixtures.js';
import { CLI } from '../harness/serve-process.js';
import { startNats, tempDir } from '../harness/servers.js';

/** Async, so an API instance inside this test process can answer while the CLI runs. */
async function kgentsAsync(args: string[], env: Record<string, string>): Promise<{ status: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
    return { status: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { status: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

function kgents(args: string[], env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
}

describe('kgents bus and the admin probe endpoint', () => {
  test('bus init creates the streams once and is a no-op the second time; bus status lists them', async () => {
    const nats = await startNats();
    const dir = tempDir();
    try {
      const env = { NATS_URLS: nats.url, DATA_DIR: dir.dir };
      const first = kgents(['bus', 'init', '--json'], env);
      assert.equal(first.status, 0, first.stderr);
      assert.deepEqual((JSON.parse(first.stdout) as { name: string; action: string }[]).map((r) => `${r.name}:${r.action}`), ['USAGE:created', 'EVENTS:created', 'USAGE_DLQ:created']);
      const second = kgents(['bus', 'init', '--json'], env);
      assert.deepEqual((JSON.parse(second.stdout) as { action: string }[]).map((r) => r.action), ['unchanged', 'unchanged', 'unchanged']);
      const changed = kgents(['bus', 'init', '--json'], { ...env, USAGE_RETENTION_DAYS: '40' });
      assert.equal((JSON.parse(changed.stdout) as { name: string; action: string }[])[0]?.action, 'updated');
      const status = kgents(['bus', 'status'], env);
      assert.equal(status.status, 0, status.stderr);
      assert.match(status.stdout, /USAGE\s+0/);
      assert.equal(kgents(['bus', 'frobnicate'], env).status, 2);
    } finally {
      await nats.cleanup();
      dir.remove();
    }
  });

  test('bus reset-circuit makes every connected instance probe now; the admin endpoint does the same for one', async () => {
    const nats = await startNats();
    const dir = tempDir();
    const a = await startApi({ NATS_URLS: nats.url, DATA_DIR: dir.dir, BREAKER_RESET_TIMEOUT_MS: '3600000' }, 'api-1');
    const { app, services } = a;
    try {
      services.meter.breaker.trip('test: pretend JetStream failed');
      assert.equal(services.meter.status().circuit, 'open');
      const run = await kgentsAsync(['bus', 'reset-circuit', '--json', '--wait-ms', '500'], { NATS_URLS: nats.url, DATA_DIR: dir.dir });
      assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);
      const replies = JSON.parse(run.stdout) as { instance: string; circuit: string }[];
      assert.equal(replies.length, 1);
      assert.equal(replies[0]?.instance, 'api-1');
      assert.notEqual(replies[0]?.circuit, 'open');
      const deadline = Date.now() + 10_000;
      while (services.meter.status().circuit !== 'closed') {
        assert.ok(Date.now() < deadline, 'probes close the breaker');
        await new Promise((r) => setTimeout(r, 50));
      }

      services.meter.breaker.trip('again');
      const admin = (await createKey(services.keys, 'ops', 'enterprise', ['admin'])).key;
      const writer = (await createKey(services.keys, 'acme', 'pro', ['write'])).key;
      const denied = await app.inject({ method: 'POST', url: '/v1/admin/bus/probe', headers: { 'x-api-key': writer } });
      assert.equal(denied.statusCode, 403);
      const res = await app.inject({ method: 'POST', url: '/v1/admin/bus/probe', headers: { 'x-api-key': admin } });
      assert.equal(res.statusCode, 200);
      assert.equal(res.json<{ instance: string; circuit: string }>().circuit, 'half_open');
    } finally {
      await a.close();
      await nats.cleanup();
      dir.remove();
    }
  });
});
