import { strict as assert } from 'node:assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { UsageError } from '../../../src/cli/command.js';
import { compareEvents, type EventAudit } from '../../../src/ops/chaos/audit.js';
import { buildChaosPlan } from '../../../src/ops/chaos/execute.js';
import type { RequestRecord } from '../../../src/ops/chaos/load.js';
import { measure } from '../../../src/ops/chaos/measure.js';
import { parseHealth, type HealthSample } from '../../../src/ops/chaos/monitor.js';
import { parseJsz, pickView } from '../../../src/ops/chaos/nats-leader.js';
import { SCENARIOS } from '../../../src/ops/chaos/registry.js';
import { runScenario } from '../../../src/ops/chaos/runner.js';
import { ScenarioUnsupportedError, type ChaosContext, type ChaosTarget, type Scenario } from '../../../src/ops/chaos/scenario.js';
import { apiKill } from '../../../src/ops/chaos/scenarios/api-kill.js';
import { natsKill } from '../../../src/ops/chaos/scenarios/nats-kill.js';
import { redisDown } from '../../../src/ops/chaos/scenarios/redis-down.js';
import { k8sTarget, urlTarget } from '../../../src/ops/chaos/targets.js';
import { installFakeKubectl } from '../../harness/fake-kubectl.js';

// Budget: well under a second; no servers.

const rec = (id: string, start: number, end: number, status: number, backend?: string): RequestRecord => ({ id, start, end, status, ...(backend !== undefined && { backend }) });
const audit: EventAudit = { audited: true, expected: 0, lost: 0, duplicated: 0, unacknowledged: 0, stray: 0, events: 0, examples: { lost: [], duplicated: [], stray: [] }, settle_ms: 0 };

describe('chaos figures', () => {
  test('detection is the first failed or slow request or unhealthy sample after the fault; recovery waits for the last failure', () => {
    const t0 = 10_000;
    const records = [
      rec('r-0', 9000, 9010, 200, 'api-1'), rec('r-1', 9500, 9510, 200, 'api-2'),
      rec('r-2', 9990, 10_400, 503, 'api-1'), // in flight at the fault, failed
      rec('r-3', 10_500, 10_510, 200, 'api-2'), rec('r-4', 11_500, 11_510, 200, 'api-2'),
      rec('r-5', 12_000, 14_500, 200, 'api-2'), // slow
      rec('r-6', 14_600, 14_610, 200, 'api-1'),
    ];
    const samples: HealthSample[] = [
      { at: 9000, endpoint: 'http://a', ok: true, status: 'ok' },
      { at: 10_600, endpoint: 'http://a', ok: false, status: 'unreachable' },
      { at: 13_000, endpoint: 'http://a', ok: true, status: 'ok' },
    ];
    const m = measure({ records, samples, marks: [], injectedAt: t0, healedAt: null, recoveredAt: 13_000, audit, slowMs: 1000 });
    assert.equal(m.detect_ms, 400);
    assert.match(m.detected_by ?? '', /failed request \(503\)/);
    assert.equal(m.recovery_ms, 3000);
    assert.equal(m.requests.failed, 1);
    assert.equal(m.requests.failed_during_fault, 1);
    assert.equal(m.requests.in_flight_at_fault, 1);
    assert.equal(m.requests.seconds_without_success, 1, 'no 2xx answered between 12 s and 13 s');
    assert.deepEqual(m.requests.by_backend, { 'api-1': 3, 'api-2': 4 });
    assert.deepEqual(m.health.transitions.map((h) => [h.at, h.state]), [[-1000, 'ok'], [600, 'unreachable'], [3000, 'ok']]);
  });

  test('a slow request detects before the health check, and a later failure pushes recovery out', () => {
    const records = [rec('a', 900, 3000, 200), rec('b', 1000, 1005, 200), rec('c', 5000, 6000, 0)];
    const m = measure({ records, samples: [], marks: [{ name: 'detected', at: 2500, detail: 'scenario' }], injectedAt: 1000, healedAt: 2000, recoveredAt: 4000, audit, slowMs: 1000 });
    assert.equal(m.detect_ms, 900);
    assert.equal(m.recovery_ms, 5000, 'the failure answered at 6000 ends the fault');
    assert.equal(m.recovery_after_heal_ms, 4000);
    assert.equal(m.requests.seconds_without_success, 3, 'of the five seconds to 6000, only 1000-2000 and 3000-4000 had a 2xx');
  });

  test('no recovery within the timeout: recovery is null and the SLA check fails', () => {
    const m = measure({ records: [rec('a', 0, 10, 200)], samples: [], marks: [], injectedAt: 5, healedAt: null, recoveredAt: null, audit, slowMs: 1000 });
    assert.equal(m.recovery_ms, null);
    const checks = apiKill.judge(m);
    assert.equal(checks[0]?.verdict, 'FAIL');
  });

  test('the event audit counts lost, duplicated, unanswered and stray events by request id', () => {
    const records = [rec('p-1', 0, 1, 200), rec('p-2', 0, 1, 200), rec('p-3', 0, 1, 503), rec('p-4', 0, 1, 0), rec('p-5', 0, 1, 201)];
    const counts = new Map([['p-1', 1], ['p-2', 2], ['p-3', 1], ['p-9', 1]]);
    const c = compareEvents(records, counts);
    assert.equal(c.expected, 3);
    assert.equal(c.lost, 1);
    assert.deepEqual(c.examples.lost, ['p-5']);
    assert.equal(c.duplicated, 1);
    assert.equal(c.unacknowledged, 1, 'p-3 was recorded but answered 503');
    assert.equal(c.stray, 1);
    assert.equal(c.events, 5);
  });
});

describe('chaos parsing', () => {
  test('reads the stream leader, meta leader, replicas and last sequence from /jsz?streams=true', () => {
    const body = JSON.stringify({
      meta_cluster: { name: 't', leader: 'n2', cluster_size: 3 },
      account_details: [{ name: '$G', stream_detail: [
        { name: 'EVENTS', cluster: { leader: 'n1' }, state: { last_seq: 3 } },
        { name: 'USAGE', cluster: { leader: 'n3', replicas: [{ name: 'n1', current: true }, { name: 'n2', current: false }] }, state: { last_seq: 1401 } },
      ] }],
    });
    assert.deepEqual(parseJsz(body), { metaLeader: 'n2', streamLeader: 'n3', replicas: [{ name: 'n1', current: true }, { name: 'n2', current: false }], lastSeq: 1401 });
    assert.equal(parseJsz(JSON.stringify({ meta_cluster: { leader: '' } })).streamLeader, null);
  });

  test('the cluster view is the stream leader\'s own: followers report their peers as not current', () => {
    const follower = { server: 'n1', metaLeader: 'n2', streamLeader: 'n2', replicas: [{ name: 'n2', current: true }, { name: 'n3', current: false }], lastSeq: 5 };
    const leader = { server: 'n2', metaLeader: 'n2', streamLeader: 'n2', replicas: [{ name: 'n1', current: true }, { name: 'n3', current: true }], lastSeq: 5 };
    assert.equal(pickView([follower, leader]), leader);
    assert.equal(pickView([follower]), follower);
    assert.equal(pickView([]), undefined);
  });

  test('health samples: ok only for 200 with status ok; circuit, queue depth and Redis mode are kept', () => {
    const ok = parseHealth('u', 1, 200, JSON.stringify({ status: 'ok', components: { nats: { circuit: 'closed', fallback_queue_depth: 0 }, redis: { mode: 'redis' } } }));
    assert.deepEqual(ok, { at: 1, endpoint: 'u', ok: true, status: 'ok', circuit: 'closed', queue_depth: 0, redis_mode: 'redis' });
    assert.equal(parseHealth('u', 1, 200, JSON.stringify({ status: 'degraded' })).ok, false);
    assert.equal(parseHealth('u', 1, 503, '<html>').status, 'http 503');
    assert.equal(parseHealth('u', 1, undefined, undefined, 'ECONNREFUSED').status, 'unreachable (ECONNREFUSED)');
  });
});

describe('kgents chaos command line', () => {
  test('defaults to the local stack; all runs every scenario in registry order', () => {
    const plan = buildChaosPlan(['all'], {}, new Date('2026-11-30T23:00:00Z'));
    assert.deepEqual(plan.scenarios.map((s) => s.name), SCENARIOS.map((s) => s.name));
    assert.deepEqual(plan.target, { kind: 'stack', dir: '.stack' });
    assert.equal(plan.outDir, join('data', 'chaos', '20261130T230000Z'));
    assert.equal(plan.rate, 40);
  });

  test('bad input is a usage error with a clear message', () => {
    assert.throws(() => buildChaosPlan([], {}), UsageError);
    assert.throws(() => buildChaosPlan(['nope'], {}), /unknown scenario "nope"/);
    assert.throws(() => buildChaosPlan(['api-kill'], { target: 'k8s' }), /needs --url/);
    assert.throws(() => buildChaosPlan(['api-kill'], { target: 'k8s', url: 'http://api.example' }), /--key KEY, or --nats/);
    assert.throws(() => buildChaosPlan(['api-kill'], { duration: 'soon' }), /--duration must be a positive duration/);
    assert.throws(() => buildChaosPlan(['api-kill'], { target: 'ftp://x' }), /--target must be stack, k8s or an http\(s\) URL/);
  });

  test('a scenario that cannot drive the target reports INCOMPLETE without touching it', async () => {
    const r = await runScenario(apiKill, { target: urlTarget('http://127.0.0.1:9', []), durationMs: 1000, rate: 1, concurrency: 1, keys: ['k'] });
    assert.equal(r.verdict, 'INCOMPLETE');
    assert.match(r.error ?? '', /does not support a url target/);
  });
});

describe('a scenario the deployment cannot run', () => {
  test('is SKIPPED when its inject throws ScenarioUnsupportedError, after a healthy check and no fault', async () => {
    const server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(req.url === '/health/saas' ? '{"status":"ok"}' : '{}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const unsupported: Scenario = {
        name: 'needs-proxies', summary: 's', sla: 's', targets: ['url'], recoveryTimeoutMs: 1000,
        inject: () => Promise.reject(new ScenarioUnsupportedError('needs-proxies', 'url', 'no fault proxies')),
        recovered: () => Promise.resolve(true), judge: () => [],
      };
      const r = await runScenario(unsupported, { target: urlTarget(`http://127.0.0.1:${port}`, []), durationMs: 300, warmupMs: 100, tailMs: 0, rate: 10, concurrency: 1, keys: ['k'] });
      assert.equal(r.verdict, 'SKIPPED');
      assert.equal(r.fault, null);
      assert.match(r.error ?? '', /no fault proxies/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('--target k8s: the kubectl commands (a fake kubectl on PATH records its arguments)', () => {
  const { log } = installFakeKubectl('kgents-chaos-kubectl-', (d, l) => {
    writeFileSync(join(d, 'jsz.json'), JSON.stringify({ meta_cluster: { leader: 'nats-0' }, account_details: [{ stream_detail: [{ name: 'USAGE', cluster: { leader: 'nats-1', replicas: [{ name: 'nats-0', current: true }, { name: 'nats-2', current: true }] }, state: { last_seq: 10 } }] }] }));
    return `  *"delete pod kgents-api"*) touch "${l}.deleted" ;;
  *"get pods -n kgents-api"*) if [ -f "${l}.deleted" ]; then printf 'kgents-api-b-2 kgents-api-c-3'; else printf 'kgents-api-b-2 kgents-api-a-1'; fi ;;
  *"get pods -n kgents-agents"*) printf 'nats-0 nats-1 nats-2' ;;
  *" exec "*) cat "${join(d, 'jsz.json')}" ;;
  *"get deployment/kgents-api"*) printf '2/2' ;;
  *"get statefulset/"*) printf '1/1' ;;
  *"get pod nats-1"*) printf 'uid-1' ;;`;
  });
  const target: ChaosTarget = k8sTarget('http://api.staging.example', [], { context: 'staging' });
  const ctx: ChaosContext = { target, faultMs: 1000, log: () => undefined, mark: () => undefined, health: () => [], signal: new AbortController().signal };
  const calls = (): string[] => readFileSync(log, 'utf8').trim().split('\n').filter((l) => l !== '');

  test('api-kill force-deletes the first API pod by name and waits for the Deployment to be fully ready', async () => {
    writeFileSync(log, '');
    const fault = await apiKill.inject(ctx);
    assert.equal(fault.details?.pod, 'kgents-api-a-1');
    assert.equal(await apiKill.recovered(ctx, fault), true, 'a-1 gone, c-3 is its replacement, 2/2 ready');
    const list = '--context staging get pods -n kgents-api -l app.kubernetes.io/name=kgents-api -o jsonpath={.items[*].metadata.name}';
    assert.deepEqual(calls(), [
      list,
      '--context staging delete pod kgents-api-a-1 -n kgents-api --grace-period=0 --force --wait=false',
      list,
      '--context staging get deployment/kgents-api -n kgents-api -o jsonpath={.status.readyReplicas}/{.spec.replicas}',
    ]);
  });

  test('nats-kill finds the USAGE leader through kubectl exec to the monitor port, then force-deletes that pod', async () => {
    writeFileSync(log, '');
    const fault = await natsKill.inject(ctx);
    assert.equal(fault.details?.leader, 'nats-1');
    const c = calls();
    assert.equal(c[0], '--context staging get pods -n kgents-agents -l app.kubernetes.io/name=nats -o jsonpath={.items[*].metadata.name}');
    for (const [i, pod] of ['nats-0', 'nats-1', 'nats-2'].entries()) {
      assert.equal(c[1 + i], `--context staging exec -n kgents-agents ${pod} -c nats -- wget -q -O - http://127.0.0.1:8222/jsz?streams=true`);
    }
    assert.equal(c[4], '--context staging get pod nats-1 -n kgents-agents -o jsonpath={.metadata.uid}');
    assert.equal(c[5], '--context staging delete pod nats-1 -n kgents-agents --grace-period=0 --force --wait=false');
    // the same pod name with the same uid is not a replacement yet
    assert.equal(await natsKill.recovered(ctx, fault), false);
  });

  test('redis-down scales the Redis StatefulSet to 0 and back to 1', async () => {
    writeFileSync(log, '');
    const fault = await redisDown.inject(ctx);
    await redisDown.heal?.(ctx, fault);
    assert.equal(await redisDown.recovered(ctx, fault), true);
    assert.deepEqual(calls(), [
      '--context staging scale statefulset/redis -n kgents-agents --replicas=0',
      '--context staging scale statefulset/redis -n kgents-agents --replicas=1',
      '--context staging get statefulset/redis -n kgents-agents -o jsonpath={.status.readyReplicas}/{.spec.replicas}',
    ]);
  });
});
