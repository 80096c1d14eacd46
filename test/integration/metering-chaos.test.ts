import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { LocalNatsCluster, LocalNatsServer } from '../../src/adapters/local/nats-server.js';
import { connectNats } from '../../src/adapters/nats/connection.js';
import { openKeyStore } from '../../src/adapters/nats/key-store-factory.js';
import { USAGE_STREAM } from '../../src/adapters/nats/streams.js';
import { loadConfig } from '../../src/config/load.js';
import { startApi } from '../harness/api-instance.js';
import { createKey } from '../harness/fixtures.js';
import { http, spawnServe } from '../harness/serve-process.js';
import { startNats, startNatsCluster, tempDir } from '../harness/servers.js';
import { readAllUsage, tally } from '../harness/usage.js';

/**
 * Loss and duplicate accounting for a crash: a call the client saw answered 2xx must have exactly
 * one event; a call that died with the process has no answer, so its event may or may not exist,
 * but never twice; and no event may exist for a call the client never made.
 */
function assertNoLossNoDuplicates(label: string, answered: readonly string[], unanswered: readonly string[], events: readonly { data: { request_id: string } }[]): void {
  const ids = events.map((e) => e.data.request_id);
  const { duplicates } = tally(ids);
  const present = new Set(ids);
  const missing = answered.filter((id) => !present.has(id));
  const unknownOutcome = new Set(unanswered);
  const strays = ids.filter((id) => !answered.includes(id) && !unknownOutcome.has(id));
  console.log(`# ${label}: ${answered.length} answered 2xx, ${unanswered.length} cut off by the crash (${ids.filter((id) => unknownOutcome.has(id)).length} of those were recorded), ${events.length} events, ${duplicates.length} duplicated, ${missing.length} missing`);
  assert.deepEqual(duplicates, []);
  assert.deepEqual(missing, []);
  assert.deepEqual(strays, []);
}


/** The cluster node that leads the USAGE stream now. */
async function usageLeader(cluster: LocalNatsCluster): Promise<{ leader: LocalNatsServer; leaderName: string | undefined }> {
  const nc = await connect({ servers: cluster.urls });
  const info = await (await jetstreamManager(nc)).streams.info(USAGE_STREAM);
  await nc.close();
  const leaderName = info.cluster?.leader;
  const leader = cluster.servers.find((s) => s.name === leaderName);
  assert.ok(leader, `USAGE leader ${leaderName} is one of ours`);
  return { leader, leaderName };
}

describe('metering through crashes and leader elections', () => {
  test('proof 3: kill -9 the API while NATS is down, restart it: every 2xx call has exactly one event', async () => {
    const nats = await startNats();
    const dir = tempDir();
    const env = { NATS_URLS: nats.url, DATA_DIR: dir.dir, EMBEDDED_SERVICES: 'off', REDIS_URL: '', PUBLISH_TIMEOUT_MS: '300', BREAKER_RESET_TIMEOUT_MS: '1000', SHUTDOWN_DELAY_MS: '0', RATE_LIMITS: 'free=1,pro=1,enterprise=10000000' };
    const conn = await connectNats([nats.url], { name: 'proof3-admin' });
    const store = await openKeyStore(loadConfig({}, { KEY_STORE: 'nats' }), { natsConnection: conn });
    const { key } = await createKey(store, 'acme', 'enterprise', ['write']);
    await store.close();
    await conn.close();
    let api = await spawnServe(env);
    const answered: string[] = [];
    const unanswered: string[] = [];
    let running = true;
    let n = 0;
    const load = Promise.all(Array.from({ length: 6 }, async (_, w) => {
      while (running) {
        const id = `p3-${w}-${n++}`;
        try {
          const res = await http(api.port, '/v1/agentese/invoke', { method: 'POST', headers: { 'x-api-key': key, 'x-request-id': id, 'content-type': 'application/json' }, body: '{"path":"world.house.manifest"}' });
          if (res.status === 200) answered.push(id);
          else assert.fail(`unexpected ${res.status} ${res.body}`);
        } catch {
          unanswered.push(id);
          await sleep(50);
        }
      }
    }));
    try {
      await sleep(500);
      await nats.stop();
      await sleep(Number(process.env.METERING_OUTAGE_MS ?? 5000));
      const health = JSON.parse((await http(api.port, '/health/saas')).body) as { components: { nats: { fallback_queue_depth: number } } };
      assert.ok(health.components.nats.fallback_queue_depth > 0, 'events are queued on disk');
      api.child.kill('SIGKILL');
      await api.exited;
      await sleep(300);
      // Restarted while NATS is still down: it waits for NATS instead of exiting.
      const restarted = spawnServe(env, api.port);
      await sleep(1500);
      await nats.start();
      api = await restarted;
      const deadline = Date.now() + 60_000;
      for (;;) {
        const h = JSON.parse((await http(api.port, '/health/saas')).body) as { components: { nats: { fallback_queue_depth: number; circuit: string } } };
        if (h.components.nats.fallback_queue_depth === 0 && h.components.nats.circuit === 'closed') break;
        assert.ok(Date.now() < deadline, 'queue drains after restart');
        await sleep(100);
      }
      running = false;
      await load;
      await sleep(200);
      assertNoLossNoDuplicates('proof 3', answered, unanswered, await readAllUsage(nats.url));
    } finally {
      running = false;
      api.child.kill('SIGKILL');
      await api.exited;
      await nats.cleanup();
      dir.remove();
    }
  });

  test('proof 4: killing the USAGE stream leader of a 3-node cluster under load loses and duplicates nothing', async () => {
    const cluster = await startNatsCluster(3);
    const dir = tempDir();
    const a = await startApi({ NATS_URLS: cluster.urls.join(','), NATS_REPLICAS: '3', DATA_DIR: dir.dir, PUBLISH_TIMEOUT_MS: '2000', BREAKER_RESET_TIMEOUT_MS: '1000', RATE_LIMITS: 'free=1,pro=1,enterprise=10000000' }, 'p4');
    const { app, services } = a;
    try {
      const { key } = await createKey(services.keys, 'acme', 'enterprise', ['write']);
      const answered: string[] = [];
      const latencies: { at: number; ms: number }[] = [];
      let running = true;
      let n = 0;
      const load = Promise.all(Array.from({ length: 8 }, async (_, w) => {
        while (running) {
          const id = `p4-${w}-${n++}`;
          const started = performance.now();
          const res = await app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': key, 'x-request-id': id }, payload: { path: 'world.house.manifest' } });
          latencies.push({ at: started, ms: performance.now() - started });
          assert.equal(res.statusCode, 200, res.body);
          answered.push(id);
          await sleep(2);
        }
      }));
      await sleep(1000);
      const { leader, leaderName } = await usageLeader(cluster);
      const killedAt = performance.now();
      await leader.kill();
      await sleep(Number(process.env.LEADER_KILL_OBSERVE_MS ?? 8000));
      running = false;
      await load;
      assert.ok(await services.meter.drained(60_000));
      const after = latencies.filter((l) => l.at >= killedAt - 100);
      const stall = Math.max(0, ...after.map((l) => l.ms));
      const queued = (await app.inject('/metrics')).body.match(/kgents_usage_events_total\{[^}]*outcome="queued"[^}]*\} (\d+)/)?.[1] ?? '0';
      console.log(`# proof 4: leader ${leaderName} killed; longest call after the kill took ${stall.toFixed(0)} ms; ${queued} events went through the fallback queue`);
      assertNoLossNoDuplicates('proof 4', answered, [], await readAllUsage(cluster.servers.filter((s) => s !== leader).map((s) => s.url)));
      await leader.start();
    } finally {
      await a.close();
      await cluster.cleanup();
      dir.remove();
    }
  });

  test('proof 4b: after a USAGE leader kill the breaker probes early (new leader), not after its 30 s timer', async () => {
    const cluster = await startNatsCluster(3);
    const dir = tempDir();
    // Default BREAKER_RESET_TIMEOUT_MS (30 s) and PUBLISH_TIMEOUT_MS: recovery must not wait for the timer.
    const a = await startApi({ NATS_URLS: cluster.urls.join(','), NATS_REPLICAS: '3', DATA_DIR: dir.dir, RATE_LIMITS: 'free=1,pro=1,enterprise=10000000' }, 'p5');
    const { app, services } = a;
    const transitions: { at: number; to: string; reason: string; early?: string }[] = [];
    const off = services.meter.breaker.onTransition((t) => transitions.push({ at: performance.now(), to: t.to, reason: t.reason, ...(t.earlyProbe !== undefined && { early: t.earlyProbe }) }));
    try {
      const { key } = await createKey(services.keys, 'acme', 'enterprise', ['write']);
      const answered: string[] = [];
      let running = true;
      let n = 0;
      const load = Promise.all(Array.from({ length: 6 }, async (_, w) => {
        while (running) {
          const id = `p5-${w}-${n++}`;
          const res = await app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': key, 'x-request-id': id }, payload: { path: 'world.house.manifest' } });
          assert.equal(res.statusCode, 200, res.body);
          answered.push(id);
          await sleep(5);
        }
      }));
      // Live publishes (circuit closed) are what "publishing resumed" means; sampled from the metric.
      const publishedCount = async (): Promise<number> => Number((await app.inject('/metrics')).body.match(/kgents_usage_events_total\{[^}]*outcome="published"[^}]*\} (\d+)/)?.[1] ?? '0');
      await sleep(1000);
      const { leader, leaderName } = await usageLeader(cluster);
      const killedAt = performance.now();
      await leader.kill();
      let resumedAt: number | undefined;
      let last = await publishedCount();
      const deadline = killedAt + 40_000;
      while (performance.now() < deadline) {
        await sleep(100);
        const now = await publishedCount();
        const opened = transitions.some((t) => t.to === 'open');
        if (opened && services.meter.breaker.state === 'closed' && now > last) {
          resumedAt = performance.now();
          break;
        }
        last = now;
      }
      running = false;
      await load;
      assert.ok(await services.meter.drained(60_000));
      const openedAt = transitions.find((t) => t.to === 'open')?.at;
      const early = transitions.filter((t) => t.early !== undefined).map((t) => `${t.early}@${((t.at - killedAt) / 1000).toFixed(1)}s`);
      const probes = (await app.inject('/metrics')).body.match(/kgents_circuit_early_probes_total\{[^}]*\} \d+/g) ?? [];
      console.log(`# proof 4b: leader ${leaderName} killed; breaker opened after ${openedAt === undefined ? 'never' : `${((openedAt - killedAt) / 1000).toFixed(1)} s`}; events published to JetStream again after ${resumedAt === undefined ? 'never' : `${((resumedAt - killedAt) / 1000).toFixed(1)} s`} (breaker timer: 30 s); early probes: ${early.join(', ') || 'none'}; ${probes.join(', ')}`);
      console.log(`# proof 4b transitions: ${transitions.map((t) => `${((t.at - killedAt) / 1000).toFixed(1)}s ${t.to} (${t.reason})`).join('; ')}`);
      assert.ok(openedAt !== undefined, 'the leader kill opened the breaker (otherwise this proves nothing)');
      assert.ok(resumedAt !== undefined && resumedAt - killedAt < 20_000, 'publishing resumed well before the 30 s timer');
      assert.ok(early.length > 0, 'an early probe closed the circuit');
      assertNoLossNoDuplicates('proof 4b', answered, [], await readAllUsage(cluster.servers.filter((s) => s !== leader).map((s) => s.url)));
      await leader.start();
    } finally {
      off();
      await a.close();
      await cluster.cleanup();
      dir.remove();
    }
  });
});
