import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { StackClient } from '../../../src/ops/stack/control.js';
import { checkStack } from '../../../src/ops/stack/health.js';
import { createStackKey } from '../../../src/ops/stack/keys.js';
import { liveness } from '../../../src/ops/stack/processes.js';
import { Stack } from '../../../src/ops/stack/stack.js';
import { readState } from '../../../src/ops/stack/state.js';
import { tempDir } from '../../harness/servers.js';
import { eventually, startLoad } from './load.js';

interface Saas { status: string; components: { nats: { mode: string }; redis: { mode: string }; key_store: { backend: string } } }

describe('the local stack (programmatic, real nats-server, redis-server and kgents serve)', () => {
  const tmp = tempDir('kgents-stack-');
  const stack = new Stack({
    dir: tmp.dir,
    // light test load runs at a few hundred requests per second on one key
    env: { RATE_LIMITS: 'free=60,pro=600,enterprise=10000000', LOG_LEVEL: 'warn' },
  });
  let key = '';

  before(async () => {
    await stack.start();
    ({ key } = await createStackKey({ natsUrls: stack.natsUrls, replicas: 3, tenant: 'stack-test', tier: 'enterprise', scopes: ['read', 'write'] }));
  });

  after(async () => {
    await stack.stop();
    tmp.remove();
  });

  test('starts a 3-node NATS cluster, Redis and 2 API instances, and serves /health/saas ok through its one port', async () => {
    assert.equal(stack.natsServers().length, 3);
    assert.ok(stack.natsServers().every((s) => s.status === 'running' && s.pid !== null));
    assert.equal(stack.redis().status, 'running');
    const instances = stack.instances();
    assert.deepEqual(instances.map((i) => [i.id, i.status, i.in_rotation]), [['api-1', 'running', true], ['api-2', 'running', true]]);

    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${stack.url}/health/saas`);
      assert.equal(res.status, 200);
      const body = await res.json() as Saas;
      assert.equal(body.status, 'ok');
      assert.equal(body.components.nats.mode, 'jetstream');
      assert.equal(body.components.redis.mode, 'redis');
      assert.equal(body.components.key_store.backend, 'nats');
      seen.add(res.headers.get('x-kgents-backend') ?? '');
    }
    assert.deepEqual(seen, new Set(['api-1', 'api-2']), 'round-robin over both instances');

    // stack.json lets another process find every part
    const state = readState(tmp.dir);
    assert.equal(state?.status, 'running');
    assert.equal(state?.url, stack.url);
    assert.deepEqual(state?.parts.map((p) => p.id), ['nats-1', 'nats-2', 'nats-3', 'redis', 'api-1', 'api-2']);
    for (const p of state?.parts ?? []) assert.ok(p.process && liveness(p.process) === 'alive', `${p.id} recorded and alive`);
    // and the streams were created with 3 replicas
    const jsz = await (await fetch(`http://127.0.0.1:${stack.natsServers()[0]?.ports.monitor ?? 0}/jsz?streams=true`)).json() as { account_details?: { stream_detail?: { name: string; config?: { num_replicas: number } }[] }[] };
    const usage = jsz.account_details?.flatMap((a) => a.stream_detail ?? []).find((s) => s.name === 'USAGE');
    if (usage?.config) assert.equal(usage.config.num_replicas, 3);
  });

  test('an authenticated invoke works through the balancer with a key made by createStackKey', async () => {
    let status = 0;
    let body = '';
    await eventually('the new key reaches both instances', async () => {
      const res = await fetch(`${stack.url}/v1/agentese/invoke`, {
        method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify({ path: 'world.house.manifest' }),
      });
      status = res.status;
      body = await res.text();
      return status === 200;
    }, 5000);
    assert.equal(status, 200, body);
    assert.match(body, /tokens_used/);
  });

  test('killing an API instance with SIGKILL under load: reads never fail, only a POST it was already processing can, and the supervisor restarts it within seconds', async (t) => {
    const load = startLoad(stack.url, key, { workers: 4 });
    await eventually('load runs', () => load.answered() > 50, 5000);
    const killed = stack.instances()[0];
    assert.ok(killed?.pid);
    await stack.killInstance(1, 'SIGKILL');
    const downMs = Date.now();
    await eventually('api-1 restarted', () => {
      const i = stack.instances()[0];
      return i?.restarts === 1 && i.status === 'running' && i.in_rotation && i.pid !== killed.pid;
    }, 20_000);
    const backInMs = Date.now() - downMs;
    const servedBefore = load.answered();
    await eventually('the restarted instance serves', () => load.answered() > servedBefore + 50, 5000);
    const result = await load.stop();
    const { get, keyed, plain } = result.failures;
    t.diagnostic(`kill -9 of api-1: back in rotation after ${backInMs} ms; ${result.ok} requests ok; failed: ${get.length} GET, ${keyed.length} keyed POST, ${plain.length} plain POST ${JSON.stringify([...keyed, ...plain])}`);
    // Reads are retried on the other instance: none fails.
    assert.deepEqual(get, []);
    // Only a POST the killed instance had already read can fail (at most one per worker): with an
    // Idempotency-Key the retry finds the key locked by the dead request (409, retry shortly);
    // without one the balancer answers 503 rather than risk a double charge.
    assert.ok(keyed.every((f) => f.startsWith('keyed 409')), keyed.join('\n'));
    assert.ok(plain.every((f) => f.startsWith('plain 503') && f.includes('socket hang up')), plain.join('\n'));
    assert.ok(keyed.length + plain.length <= 4, 'only requests in flight at the kill');
    assert.ok(backInMs < 10_000, `restarted within seconds (${backInMs} ms)`);
    assert.equal(liveness({ pid: killed.pid, start_ticks: null, match: '' }), 'gone');

    const health = await checkStack(stack.snapshot());
    assert.equal(health.status, 'healthy', JSON.stringify(health.parts.filter((p) => !p.healthy)));
    assert.equal(health.parts.find((p) => p.id === 'api-1')?.restarts, 1);
    assert.equal(health.parts.find((p) => p.id === 'api-2')?.restarts, 0);
  });

  test('replacing both instances one at a time under load loses zero requests, plain POSTs included', async (t) => {
    const load = startLoad(stack.url, key, { workers: 4 });
    await eventually('load runs', () => load.answered() > 50, 5000);
    const oldPids = stack.instances().map((i) => i.pid);
    const replaced = [await stack.replaceInstance('api-1'), await stack.replaceInstance(2)];
    const served = load.answered();
    await eventually('the new instances serve', () => load.answered() > served + 50, 5000);
    const result = await load.stop();
    const failed = [...result.failures.get, ...result.failures.keyed, ...result.failures.plain];
    t.diagnostic(`rolling replacement: ${result.ok} requests ok, ${failed.length} failed; ${replaced.map((r) => `${r.id} ready ${r.ready_ms} ms, done ${r.duration_ms} ms`).join(', ')}`);
    assert.deepEqual(failed, []);
    assert.deepEqual(replaced.map((r) => [r.old.exit?.code, r.new.instance_id]), [[0, 'api-1.g2'], [0, 'api-2.g2']]);
    assert.ok((result.byBackend['api-1.g2'] ?? 0) > 0 && (result.byBackend['api-2.g2'] ?? 0) > 0, JSON.stringify(result.byBackend));
    for (const pid of oldPids) assert.equal(liveness({ pid: pid ?? 0, start_ticks: null, match: '' }), 'gone');
    assert.deepEqual(stack.instances().map((i) => [i.instance_id, i.in_rotation, i.generation]), [['api-1.g2', true, 2], ['api-2.g2', true, 2]]);
    assert.deepEqual(readState(tmp.dir)?.retiring, []);
  });

  test('through the control endpoint, SIGSTOP takes an instance out of rotation and SIGCONT brings it back', async () => {
    const state = readState(tmp.dir);
    assert.ok(state?.control.url);
    const client = StackClient.open(tmp.dir);
    await client.signal('api-2', 'SIGSTOP');
    try {
      await eventually('api-2 out of rotation', async () => (await client.state()).parts.find((p) => p.id === 'api-2')?.in_rotation === false, 5000);
      const answers = await Promise.all(Array.from({ length: 6 }, () => fetch(`${stack.url}/health`).then((r) => r.headers.get('x-kgents-backend'))));
      assert.deepEqual(new Set(answers), new Set(['api-1.g2']));
    } finally {
      await client.signal('api-2', 'SIGCONT');
    }
    await eventually('api-2 back in rotation', () => stack.instances()[1]?.in_rotation === true, 5000);
    assert.equal(stack.instances()[1]?.restarts, 0, 'a paused process is not restarted');
    // a wrong token is refused; an unknown part is a 404
    const denied = await fetch(`${state.control.url}/state`, { headers: { authorization: 'Bearer nope' } });
    assert.equal(denied.status, 401);
    await assert.rejects(client.signal('api-9', 'SIGKILL'), /no part "api-9"/);
    await sleep(10);
  });
});
