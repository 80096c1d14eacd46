import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { RolloutReport } from '../../../src/ops/rollout/report.js';
import { Stack } from '../../../src/ops/stack/stack.js';
import { CLI } from '../../harness/serve-process.js';
import { tempDir } from '../../harness/servers.js';

// Budget: about 60 s on a loaded 2-core machine (stack start ~20 s, two replacements, 2 s settles).

function kgents(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NATS_URLS: '' }, timeout: 240_000, maxBuffer: 16 * 1024 * 1024,
    }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

describe('kgents rollout on the local stack (real nats-server, redis-server and kgents serve)', () => {
  const tmp = tempDir('kgents-rollout-');
  const stack = new Stack({ dir: join(tmp.dir, 'stack'), apiInstances: 2, env: { LOG_LEVEL: 'warn' } });

  before(async () => {
    await stack.start();
  });

  after(async () => {
    await stack.stop();
    tmp.remove();
  });

  test('replaces both API instances one at a time under mixed authenticated load with zero failed requests, and reports it', async (t) => {
    const out = join(tmp.dir, 'report');
    const r = await kgents(['rollout', '--dir', join(tmp.dir, 'stack'), '--load-rate', '30', '--settle', '2s', '--out', out, '--json']);
    assert.equal(r.code, 0, `${r.stderr}\n${r.stdout.slice(0, 4000)}`);
    const report = JSON.parse(r.stdout) as RolloutReport;
    t.diagnostic(`rollout of 2 instances: ${report.rollout.took_s} s (${report.rollout.steps.map((s) => `${s.id} ${s.took_s} s`).join(', ')}); `
      + `${report.load.total.failed} of ${report.load.total.requests} failed; p95 ${report.latency.before_p95_ms} → ${report.latency.during_p95_ms} ms`);

    assert.equal(report.verdict, 'PASS', report.reasons.join('; '));
    assert.equal(report.mode, 'stack');
    assert.equal(report.load.total.failed, 0, JSON.stringify(report.load.total.failed_by_code));
    assert.deepEqual(report.load.total.failed_by_status, {});
    // the mix reached the authenticated endpoints with the run's own key
    assert.equal(report.settings.keys, 1);
    assert.deepEqual(report.load.mix.map((m) => m.name), ['health', 'resolve', 'invoke']);

    assert.deepEqual(report.rollout.steps.map((s) => [s.id, s.from, s.to, s.ok, s.failed]), [['api-1', 'api-1', 'api-1.g2', true, 0], ['api-2', 'api-2', 'api-2.g2', true, 0]]);
    for (const s of report.rollout.steps) {
      assert.ok(s.took_s > 0 && (s.ready_s ?? 0) > 0 && (s.ready_s ?? 0) <= s.took_s, JSON.stringify(s));
      assert.ok(s.end_s > s.at_s);
    }
    const sum = report.rollout.steps.reduce((a, s) => a + s.took_s, 0);
    assert.ok(report.rollout.took_s >= sum - 0.01 && report.rollout.took_s < sum + 5, `total ${report.rollout.took_s} s vs steps ${sum} s`);

    assert.deepEqual(report.load.phases.map((p) => p.phase), ['before', 'during', 'after']);
    for (const p of report.load.phases) assert.ok(p.requests > 0 && p.latency_ms.p95 > 0, `${p.phase}: ${p.requests} requests`);
    assert.equal(report.load.phases.reduce((a, p) => a + p.requests, 0), report.load.total.requests);
    // an open model at 30/s: the request count follows the clock, whatever the stack did
    assert.ok(Math.abs(report.load.total.requests - 30 * report.load.elapsed_s) < 30 * report.load.elapsed_s * 0.1, `${report.load.total.requests} requests in ${report.load.elapsed_s} s`);
    assert.ok(report.latency.p95_ratio !== null && report.latency.p99_ratio !== null);

    assert.deepEqual(report.stack?.after.map((i) => [i.id, i.instance_id, i.status, i.in_rotation]), [['api-1', 'api-1.g2', 'running', true], ['api-2', 'api-2.g2', 'running', true]]);
    assert.equal(report.stack?.balancer?.failed, 0);
    assert.deepEqual(stack.instances().map((i) => i.generation), [2, 2]);

    assert.ok(existsSync(join(out, 'rollout.json')));
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    assert.match(md, /^# Rollout: PASS$/m);
    assert.match(md, /^\| api-1 \| api-1 \| api-1\.g2 \| [\d.]+ s \| [\d.]+ s \| 0 \| ok \|$/m);
    assert.match(md, /^\| during \| [\d.]+–[\d.]+ \| \d+ \| [\d.]+ \| 0 \| – \| none \|/m);
  });
});
