import { strict as assert } from 'node:assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runScenario } from '../../../src/ops/chaos/runner.js';
import { MARK_BREAKER_OPEN, networkPartition, peakDepth } from '../../../src/ops/chaos/scenarios/network-partition.js';
import type { ChaosContext } from '../../../src/ops/chaos/scenario.js';
import { inProcessStackTarget, k8sTarget } from '../../../src/ops/chaos/targets.js';
import { ControlError, StackClient } from '../../../src/ops/stack/control.js';
import { hasNatsFaults } from '../../../src/ops/stack/faults.js';
import { createStackKey } from '../../../src/ops/stack/keys.js';
import { Stack } from '../../../src/ops/stack/stack.js';
import { readState } from '../../../src/ops/stack/state.js';
import { installFakeKubectl } from '../../harness/fake-kubectl.js';
import { tempDir } from '../../harness/servers.js';

// Budget: about 60-90 s on a loaded 2-core machine (stack start ~15 s, a 8 s partition, recovery
// under 1 s thanks to the breaker's early stream-info probe, the USAGE audit). Longer runs: kgents chaos
// network-partition --duration ... (docs/chaos-baseline.md).
describe('network-partition: the API cut off from NATS by hanging connections (real stack with NATS fault proxies)', () => {
  const tmp = tempDir('kgents-partition-');
  const stack = new Stack({ dir: tmp.dir, natsFaults: true, env: { RATE_LIMITS: 'free=60,pro=600,enterprise=10000000', LOG_LEVEL: 'warn' } });
  let key = '';

  before(async () => {
    await stack.start();
    ({ key } = await createStackKey({ natsUrls: stack.natsUrls, replicas: 3, tenant: 'partition-test', tier: 'enterprise', scopes: ['read', 'write'] }));
  });

  after(async () => {
    await stack.stop();
    tmp.remove();
  });

  test('the instances reach NATS only through the proxies, which the control endpoint and StackClient drive', async () => {
    const client = new StackClient(stack.controlUrl ?? '', stack.controlToken);
    assert.ok(hasNatsFaults(client) && hasNatsFaults(stack));
    const proxies = await client.natsFaults();
    assert.deepEqual(proxies.map((p) => [p.node, p.mode]), [['nats-1', 'pass'], ['nats-2', 'pass'], ['nats-3', 'pass']]);
    assert.ok(proxies.reduce((n, p) => n + p.connections_open, 0) >= 2, 'each instance holds a connection through a proxy');
    assert.deepEqual(readState(tmp.dir)?.nats_proxies?.map((p) => p.proxy_url), proxies.map((p) => p.proxy_url));

    const slowed = await client.setNatsFault({ mode: 'latency', latencyMs: 20 }, 'nats-2');
    assert.deepEqual(slowed.map((p) => [p.mode, p.latency_ms]), [['pass', 0], ['latency', 20], ['pass', 0]]);
    await client.setNatsFault({ mode: 'pass' });
    await assert.rejects(client.setNatsFault({ mode: 'pass' }, 'nats-9'), (e: unknown) => e instanceof ControlError && e.status === 404);
    const bad = await fetch(`${stack.controlUrl ?? ''}/faults/nats?mode=drop`, { method: 'POST', headers: { authorization: `Bearer ${stack.controlToken}` } });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /pass, hang, refuse, latency/);
  });

  test('breaker opens and the fallback queue fills during the partition; after healing the queue drains and the breaker closes within 90 s, with no event lost or duplicated', async (t) => {
    const lines: string[] = [];
    const result = await runScenario(networkPartition, {
      target: inProcessStackTarget(stack), keys: [key], tenant: 'partition-test',
      durationMs: 15_000, warmupMs: 3000, faultMs: 8000, tailMs: 2000, rate: 40, concurrency: 8, settleMs: 60_000,
      log: (line) => lines.push(line),
    });
    const f = result.figures;
    t.diagnostic(JSON.stringify({
      verdict: result.verdict, detect_ms: f?.detect_ms, detected_by: f?.detected_by, recovery_after_heal_ms: f?.recovery_after_heal_ms,
      requests: f && { total: f.requests.total, ok: f.requests.ok, failed: f.requests.failed }, events: f?.events, peak: f && peakDepth(f),
      marks: f?.marks.map((m) => `${m.name}@${m.at}`),
    }));
    assert.equal(result.error, undefined, lines.join('\n'));
    assert.ok(f, lines.join('\n'));
    assert.ok(f.marks.some((m) => m.name === MARK_BREAKER_OPEN), 'breaker opened');
    assert.ok(peakDepth(f) > 0, 'the fallback queue filled');
    assert.ok(f.recovery_after_heal_ms !== null && f.recovery_after_heal_ms <= 90_000, `recovered ${String(f.recovery_after_heal_ms)} ms after healing`);
    assert.ok(f.events.audited, f.events.note);
    assert.equal(f.events.lost, 0, JSON.stringify(f.events.examples));
    assert.equal(f.events.duplicated, 0, JSON.stringify(f.events.examples));
    assert.equal(f.events.stray, 0);
    assert.ok(f.requests.ok > 100);
    assert.equal(result.verdict, 'PASS', JSON.stringify(result.checks));
    // healed for good: every proxy passes traffic again
    assert.ok((await stack.natsFaults()).every((p) => p.mode === 'pass'));
  });
});

describe('network-partition --target k8s: the kubectl commands (a fake kubectl on PATH records its arguments)', () => {
  const { dir, log } = installFakeKubectl('kgents-partition-kubectl-', (d) => `  *"get networkpolicy"*) cat "${join(d, 'policy.json')}" ;;`);
  const policyFile = join(dir, 'policy.json');
  const natsRule = { to: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'nats' } } }], ports: [{ protocol: 'TCP', port: 4222 }] };
  const redisRule = { to: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'redis' } } }], ports: [{ protocol: 'TCP', port: 6379 }] };
  const policy = (egress: unknown[]): string => JSON.stringify({ kind: 'NetworkPolicy', metadata: { name: 'kgents-api-egress' }, spec: { egress } });
  const ctx: ChaosContext = {
    target: k8sTarget('http://api.staging.example', [], { context: 'staging' }), faultMs: 1000, log: () => undefined, mark: () => undefined, signal: new AbortController().signal,
    health: () => [{ at: Date.now(), endpoint: 'http://api.staging.example', ok: true, status: 'ok', circuit: 'closed', queue_depth: 0 }],
  };
  const calls = (): string[] => readFileSync(log, 'utf8').trim().split('\n').filter((l) => l !== '');

  test('removes only the egress rule to NATS (port 4222) with a tested JSON patch, and adds the same rule back at the same place', async () => {
    writeFileSync(policyFile, policy([natsRule, redisRule]));
    const fault = await networkPartition.inject(ctx);
    assert.equal(fault.details?.rule_index, 0);
    writeFileSync(policyFile, policy([redisRule]));
    assert.equal(await networkPartition.recovered(ctx, fault), false, 'not recovered while the rule is missing');
    await networkPartition.heal?.(ctx, fault);
    writeFileSync(policyFile, policy([natsRule, redisRule]));
    assert.equal(await networkPartition.recovered(ctx, fault), true);
    const get = '--context staging get networkpolicy kgents-api-egress -n kgents-api -o json';
    assert.deepEqual(calls(), [
      get,
      `--context staging patch networkpolicy kgents-api-egress -n kgents-api --type=json -p ${JSON.stringify([{ op: 'test', path: '/spec/egress/0', value: natsRule }, { op: 'remove', path: '/spec/egress/0' }])}`,
      get,
      get,
      `--context staging patch networkpolicy kgents-api-egress -n kgents-api --type=json -p ${JSON.stringify([{ op: 'add', path: '/spec/egress/0', value: natsRule }])}`,
      get,
    ]);
  });

  test('refuses a cluster whose API egress policy has no rule to NATS', async () => {
    writeFileSync(policyFile, policy([redisRule]));
    await assert.rejects(networkPartition.inject(ctx), /no egress rule to port 4222/);
  });
});
