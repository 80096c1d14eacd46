import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pingRedis } from '../../src/adapters/local/redis-server.js';
import { tempDir } from '../harness/servers.js';
import { CLI, http, spawnServe, type HttpResult, type ServeProcess } from '../harness/serve-process.js';

async function serve(env: Record<string, string>): Promise<ServeProcess> {
  return spawnServe(env);
}

function get(port: number, path: string, agent?: Agent): Promise<HttpResult> {
  return http(port, path, agent ? { agent } : {});
}

describe('kgents serve (the real process)', () => {
  test('with nothing configured it starts its own nats-server and redis-server, says so, and stops them on SIGTERM', async () => {
    const dir = tempDir();
    try {
      const s = await serve({ DATA_DIR: dir.dir, SHUTDOWN_DELAY_MS: '300', NATS_URLS: '', REDIS_URL: '', EMBEDDED_SERVICES: 'auto' });
      assert.match(s.output(), /started a local nats-server \(JetStream\) at nats:\/\/127\.0\.0\.1:\d+/);
      assert.match(s.output(), /started a local redis-server at redis:\/\/127\.0\.0\.1:\d+/);
      assert.match(s.output(), /the key store is empty: create the first API key with: npm run kgents -- keys create/);
      const health = JSON.parse((await get(s.port, '/health/saas')).body) as { status: string; components: { nats: { mode: string }; redis: { mode: string } } };
      assert.equal(health.status, 'ok');
      assert.equal(health.components.nats.mode, 'jetstream');
      assert.equal(health.components.redis.mode, 'redis');
      const state = JSON.parse(spawnSync('cat', [join(dir.dir, 'embedded.json')], { encoding: 'utf8' }).stdout) as { redis_url: string };
      const redisPort = Number(new URL(state.redis_url).port);

      // Keys made with the CLI while it runs reach the running service without any configuration.
      const created = spawnSync(process.execPath, [CLI, 'keys', 'create', '--tenant', 'dev', '--tier', 'pro', '--scopes', 'read,write', '--json'],
        { env: { ...process.env, DATA_DIR: dir.dir, NATS_URLS: '' }, encoding: 'utf8', timeout: 20_000 });
      assert.equal(created.status, 0, created.stderr);
      const { key } = JSON.parse(created.stdout) as { key: string };
      let status = 0;
      for (let i = 0; i < 50 && status !== 200; i++) {
        status = await new Promise<number>((resolve, reject) => {
          const req = request({ host: '127.0.0.1', port: s.port, path: '/v1/agentese/resolve?path=world.house', headers: { 'x-api-key': key } }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          });
          req.on('error', reject);
          req.end();
        });
        if (status !== 200) await sleep(20);
      }
      assert.equal(status, 200);

      // SIGTERM while keep-alive traffic runs. A readiness watcher plays the load balancer: it takes the
      // endpoint out of rotation when /ready turns 503, as Kubernetes does. Zero requests may fail.
      const agent = new Agent({ keepAlive: true, maxSockets: 8 });
      let routable = true;
      const failures: string[] = [];
      let answered = 0;
      const watcher = (async () => {
        while (routable) {
          const r = await get(s.port, '/ready').catch(() => ({ status: 0, body: '' }));
          if (r.status !== 200) routable = false;
          else await sleep(50);
        }
      })();
      const load = Promise.all(Array.from({ length: 8 }, async () => {
        while (routable) {
          try {
            const r = await get(s.port, '/health', agent);
            if (r.status === 200) answered++;
            else failures.push(String(r.status));
          } catch (err) {
            failures.push((err as Error).message);
          }
        }
      }));
      await sleep(200);
      s.child.kill('SIGTERM');
      await watcher;
      await load;
      const code = await s.exited;
      agent.destroy();
      assert.equal(code, 0, s.output());
      assert.deepEqual(failures, []);
      assert.ok(answered > 10, `answered ${answered}`);
      assert.match(s.output(), /shutdown: done/);
      assert.equal(existsSync(join(dir.dir, 'embedded.json')), false);
      assert.equal(await pingRedis(redisPort), false, 'embedded redis-server stopped');
    } finally {
      dir.remove();
    }
  });

  test('with neither configured nor embedded it serves on fallbacks and warns that it is degraded', async () => {
    const dir = tempDir();
    try {
      const s = await serve({ DATA_DIR: dir.dir, SHUTDOWN_DELAY_MS: '0', NATS_URLS: '', REDIS_URL: '', EMBEDDED_SERVICES: 'off' });
      assert.match(s.output(), /DEGRADED/);
      const health = JSON.parse((await get(s.port, '/health/saas')).body) as { status: string };
      assert.equal(health.status, 'degraded');
      s.child.kill('SIGINT');
      assert.equal(await s.exited, 0);
    } finally {
      dir.remove();
    }
  });
});
