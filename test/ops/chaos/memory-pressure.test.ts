import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { chaosText } from '../../../src/ops/chaos/report.js';
import { runScenario } from '../../../src/ops/chaos/runner.js';
import { memoryPressure } from '../../../src/ops/chaos/scenarios/memory-pressure.js';
import { inProcessStackTarget } from '../../../src/ops/chaos/targets.js';
import { createStackKey } from '../../../src/ops/stack/keys.js';
import { Stack } from '../../../src/ops/stack/stack.js';
import { tempDir } from '../../harness/servers.js';

// Budget: about 60 s on 2 shared cores (a 1-node NATS stack with 2 API instances, one short run).

test('memory-pressure: an instance driven toward its 64 MiB heap limit sheds with 503 + Retry-After before it dies, and is ready again after the pressure', async () => {
  const tmp = tempDir('kgents-chaos-mem-');
  const stack = new Stack({
    dir: tmp.dir, natsNodes: 1, apiInstances: 2,
    env: {
      RATE_LIMITS: 'free=60,pro=600,enterprise=10000000', LOG_LEVEL: 'warn',
      NODE_OPTIONS: '--max-old-space-size=64', TEST_RETAIN_BYTES_PER_REQUEST: '50000', TEST_RETAIN_MS: '10000',
    },
  });
  try {
    await stack.start();
    const tenant = 'chaos-mem';
    const key = (await createStackKey({ natsUrls: stack.natsUrls, replicas: 1, tenant, tier: 'enterprise', scopes: ['read', 'write'] })).key;
    const r = await runScenario(memoryPressure, {
      target: inProcessStackTarget(stack), durationMs: 8000, warmupMs: 3000, tailMs: 2000, rate: 20, concurrency: 4, keys: [key], tenant,
      settleMs: 60_000, faultMs: 8000, log: (line) => { if (process.env.CHAOS_TEST_VERBOSE) process.stderr.write(`${line}\n`); },
    });
    process.stdout.write(chaosText(r));
    assert.equal(r.error, undefined, r.error);
    const shed = r.figures?.marks.find((m) => m.name === 'shedding');
    assert.ok(shed, 'the instance shed load');
    assert.match(shed.detail ?? '', /Retry-After 2\)/);
    assert.equal(r.verdict, 'PASS', r.checks.filter((c) => c.verdict !== 'PASS').map((c) => `${c.check}: ${c.detail}`).join('; '));
  } finally {
    await stack.stop();
    tmp.remove();
  }
});
