import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { chaosText } from '../../../src/ops/chaos/report.js';
import { runScenario, type ChaosResult } from '../../../src/ops/chaos/runner.js';
import { apiKill } from '../../../src/ops/chaos/scenarios/api-kill.js';
import { natsKill } from '../../../src/ops/chaos/scenarios/nats-kill.js';
import { redisDown } from '../../../src/ops/chaos/scenarios/redis-down.js';
import { startChaosStack, type ChaosStack } from './stack-fixture.js';

// Budget: about 1.5-2 minutes on 2 shared cores (one stack for all three; each run is the short form).

function assertClean(r: ChaosResult): void {
  process.stdout.write(chaosText(r));
  assert.equal(r.error, undefined, r.error);
  assert.ok(r.figures, 'figures measured');
  assert.equal(r.figures.events.audited, true, r.figures.events.note);
  assert.ok(r.figures.events.expected > 50, `enough 2xx answers (${r.figures.events.expected})`);
  assert.equal(r.figures.events.lost, 0, `lost: ${r.figures.events.examples.lost.join(', ')}`);
  assert.equal(r.figures.events.duplicated, 0, `duplicated: ${r.figures.events.examples.duplicated.join(', ')}`);
  assert.equal(r.figures.events.stray, 0);
  assert.equal(r.verdict, 'PASS', r.checks.filter((c) => c.verdict !== 'PASS').map((c) => `${c.check}: ${c.detail}`).join('; '));
}

describe('chaos scenarios against a real local stack (3 NATS nodes, Redis, 2 API instances)', () => {
  let s: ChaosStack;
  before(async () => {
    s = await startChaosStack();
  });
  after(async () => {
    await s.stop();
  });

  test('api-kill: kill -9 of one instance; the other keeps serving, full service well within 30 s, no event lost or duplicated', async () => {
    const r = await runScenario(apiKill, { target: s.target, ...s.short });
    assertClean(r);
    const f = r.figures;
    assert.ok(f && f.recovery_ms !== null && f.recovery_ms <= 30_000);
    assert.equal(f.requests.seconds_without_success, 0);
    assert.ok(Object.keys(f.requests.by_backend).length >= 2, 'both instances answered');
  });

  test('nats-kill: kill -9 of the USAGE stream leader; publishing resumes within 60 s, zero loss, zero duplicates', async () => {
    const r = await runScenario(natsKill, { target: s.target, ...s.short });
    assertClean(r);
    assert.ok(r.figures?.marks.some((m) => m.name === 'publishing_resumed'));
    assert.notEqual(r.fault?.details?.leader, undefined);
  });

  test('redis-down: Redis stopped and started again; no request fails, every instance back on Redis', async () => {
    const r = await runScenario(redisDown, { target: s.target, ...s.short, faultMs: 5000 });
    assertClean(r);
    assert.equal(r.figures?.requests.failed, 0);
    assert.ok(r.figures?.detect_ms !== null, 'the outage shows in /health/saas');
    assert.equal(s.stack.redis().status, 'running', 'Redis was started again');
  });
});
