import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { runScenario } from '../../../src/ops/chaos/runner.js';
import { MARK_EXPORT_RESUMED, MARK_MEMORY, MARK_REFUSING, observabilityDown } from '../../../src/ops/chaos/scenarios/observability-down.js';
import { ControlError, StackClient } from '../../../src/ops/stack/control.js';
import { inProcessStackTarget } from '../../../src/ops/chaos/targets.js';
import { createStackKey } from '../../../src/ops/stack/keys.js';
import { hasOtelFaults } from '../../../src/ops/stack/otel-collector.js';
import { Stack } from '../../../src/ops/stack/stack.js';
import { tempDir } from '../../harness/servers.js';

// Budget: about 45-70 s on a loaded 2-core machine (stack start ~15 s, a 6 s collector outage,
// export resuming within seconds, the USAGE audit). Production-like settings and longer runs:
// kgents chaos observability-down on a stack started with --otel-faults (docs/chaos-baseline.md).
describe('observability-down: the OpenTelemetry collector hangs, then refuses (real stack with a stand-in collector)', () => {
  const tmp = tempDir('kgents-otel-down-');
  // Short export timings so a 6 s outage exercises the timeout, the full queue and the retries.
  const stack = new Stack({
    dir: tmp.dir, otelFaults: true,
    env: {
      RATE_LIMITS: 'free=60,pro=600,enterprise=10000000', LOG_LEVEL: 'warn',
      OTEL_BSP_SCHEDULE_DELAY: '200', OTEL_EXPORTER_OTLP_TIMEOUT: '1000', OTEL_BSP_MAX_QUEUE_SIZE: '256', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '64',
    },
  });
  let key = '';

  before(async () => {
    await stack.start();
    ({ key } = await createStackKey({ natsUrls: stack.natsUrls, replicas: 3, tenant: 'otel-down-test', tier: 'enterprise', scopes: ['read', 'write'] }));
  });

  after(async () => {
    await stack.stop();
    tmp.remove();
  });

  test('the instances export spans to the stand-in collector, whose faults the control endpoint drives', async () => {
    const client = new StackClient(stack.controlUrl ?? '', stack.controlToken);
    assert.ok(hasOtelFaults(client) && hasOtelFaults(stack));
    await fetch(`${stack.url}/health`);
    const deadline = Date.now() + 15_000;
    while ((await client.otelCollector()).spans_received === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const state = await client.otelCollector();
    assert.ok(state.spans_received > 0, 'spans arrived');
    assert.equal(state.mode, 'pass');
    assert.equal((await client.setOtelFault({ mode: 'refuse' })).mode, 'refuse');
    assert.equal((await client.setOtelFault({ mode: 'pass' })).mode, 'pass');
    const bad = await fetch(`${stack.controlUrl ?? ''}/faults/otel?mode=drop`, { method: 'POST', headers: { authorization: `Bearer ${stack.controlToken}` } });
    assert.equal(bad.status, 400);
    await assert.rejects(new StackClient(stack.controlUrl ?? '', 'wrong').otelCollector(), (e: unknown) => e instanceof ControlError && e.status === 401);
  });

  test('no request fails, memory stays bounded by the span queue, drops are counted and export resumes after healing', async (t) => {
    const lines: string[] = [];
    const result = await runScenario(observabilityDown, {
      target: inProcessStackTarget(stack), keys: [key], tenant: 'otel-down-test',
      durationMs: 14_000, warmupMs: 4000, faultMs: 6000, tailMs: 2000, rate: 40, concurrency: 8, settleMs: 60_000,
      log: (line) => lines.push(line),
    });
    const f = result.figures;
    t.diagnostic(JSON.stringify({ verdict: result.verdict, checks: result.checks, marks: f?.marks.map((m) => `${m.name}@${m.at}: ${m.detail ?? ''}`) }));
    assert.equal(result.error, undefined, lines.join('\n'));
    assert.ok(f, lines.join('\n'));
    const check = (prefix: string) => result.checks.find((c) => c.check.startsWith(prefix));
    assert.equal(check('no failed request')?.verdict, 'PASS', JSON.stringify(result.checks));
    assert.equal(check('bounded memory')?.verdict, 'PASS', JSON.stringify(result.checks));
    assert.equal(check('span export resumed')?.verdict, 'PASS', JSON.stringify(result.checks));
    // The p95 comparison is measured and reported, but not asserted here: on a shared 2-core machine
    // a 6 s window is too short to hold a 10 % latency bound (docs/chaos-baseline.md has real runs).
    assert.notEqual(check('p95 during the fault')?.verdict, 'N/A');
    assert.ok(f.marks.some((m) => m.name === MARK_REFUSING), 'the collector switched from hanging to refusing');
    assert.ok(f.marks.some((m) => m.name === MARK_EXPORT_RESUMED));
    const memory = f.marks.find((m) => m.name === MARK_MEMORY)?.detail ?? '';
    assert.match(memory, /cap 256\)/);
    assert.ok(Number(/spans dropped (\d+)/.exec(memory)?.[1]) > 0, `spans were dropped and counted: ${memory}`);
    assert.ok(Number(/failed exports (\d+)/.exec(memory)?.[1]) > 0, `failed exports were counted: ${memory}`);
    assert.equal(f.requests.failed, 0);
    assert.equal(f.events.lost, 0);
    assert.equal((await stack.otelCollector()).mode, 'pass');
  });
});
