import { strict as assert } from 'node:assert';
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { RolloutReport } from '../../../src/ops/rollout/report.js';
import { CLI } from '../../harness/serve-process.js';
import { tempDir } from '../../harness/servers.js';
import { startServer, type TestServer } from '../load/servers.js';

// Budget: about 40 s on a loaded 2-core machine (seven CLI runs of a few seconds each; no cluster, a fake kubectl).

/**
 * A stand-in kubectl: records its arguments (one JSON line per call) and plays a deployment whose
 * revision it keeps in a file. FAKE_KUBECTL_MODE: `ok`; `status-fail` (the rollout exceeds its
 * progress deadline); `hang` (never finishes: kubectl's --timeout ends it); `bad-release` (the new
 * pods answer 503 until undone: the target reads the `bad` marker). After an undo, `rollout status`
 * succeeds at once.
 */
const FAKE_KUBECTL = `
const fs = require('node:fs');
const path = require('node:path');
const dir = process.env.FAKE_KUBECTL_DIR;
const mode = process.env.FAKE_KUBECTL_MODE || 'ok';
const args = process.argv.slice(2);
fs.appendFileSync(path.join(dir, 'calls.jsonl'), JSON.stringify(args) + '\\n');
const rest = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--context' || args[i] === '--namespace') i++;
  else rest.push(args[i]);
}
const revFile = path.join(dir, 'revision');
const rev = () => Number(fs.existsSync(revFile) ? fs.readFileSync(revFile, 'utf8') : '3');
const bump = () => fs.writeFileSync(revFile, String(rev() + 1));
const undone = () => fs.existsSync(path.join(dir, 'undone'));
const say = (lines, code) => {
  let at = 0;
  for (const [delay, line] of lines) { at += delay; setTimeout(() => process.stdout.write(line + '\\n'), at); }
  setTimeout(() => process.exit(code), at + 50);
};
const name = (rest[2] || '').replace('deployment/', '');
if (rest[0] === 'get') { process.stdout.write(String(rev())); process.exit(0); }
else if (rest[0] === 'rollout' && rest[1] === 'restart') {
  bump();
  if (mode === 'bad-release') fs.writeFileSync(path.join(dir, 'bad'), '');
  console.log('deployment.apps/' + name + ' restarted');
} else if (rest[0] === 'set' && rest[1] === 'image') { bump(); console.log('deployment.apps/' + name + ' image updated'); }
else if (rest[0] === 'rollout' && rest[1] === 'undo') {
  bump();
  fs.rmSync(path.join(dir, 'bad'), { force: true });
  fs.writeFileSync(path.join(dir, 'undone'), '');
  console.log('deployment.apps/' + name + ' rolled back');
} else if (rest[0] === 'rollout' && rest[1] === 'status') {
  const waiting = 'Waiting for deployment "' + name + '" rollout to finish: ';
  if (undone()) say([[100, 'deployment "' + name + '" successfully rolled out']], 0);
  else if (mode === 'status-fail') say([[300, waiting + '1 out of 2 new replicas have been updated...'], [700, 'error: deployment "' + name + '" exceeded its progress deadline']], 1);
  else if (mode === 'hang') {
    const timeout = Number((args.find((a) => a.startsWith('--timeout=')) || '--timeout=1s').slice(10, -1));
    say([[300, waiting + '0 of 2 updated replicas are available...'], [timeout * 1000, 'error: timed out waiting for the condition']], 1);
  } else if (mode === 'bad-release') say([[300, waiting + '1 out of 2 new replicas have been updated...'], [60000, 'deployment "' + name + '" successfully rolled out']], 0);
  else say([[300, waiting + '1 out of 2 new replicas have been updated...'], [500, waiting + '1 old replicas are pending termination...'], [500, 'deployment "' + name + '" successfully rolled out']], 0);
} else { console.error('fake kubectl: unexpected ' + args.join(' ')); process.exit(2); }
`;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly calls: string[][];
  readonly report?: RolloutReport;
}

describe('kgents rollout --k8s (a fake kubectl on PATH)', () => {
  const tmp = tempDir('kgents-rollout-k8s-');
  const bin = join(tmp.dir, 'bin');
  let target: TestServer;
  let stateDir = '';

  before(async () => {
    mkdirSync(bin);
    writeFileSync(join(bin, 'kubectl'), `#!${process.execPath}\n${FAKE_KUBECTL}`);
    chmodSync(join(bin, 'kubectl'), 0o755);
    // The deployment's Service: answers 503 while the fake's bad release is live.
    target = await startServer((_req, res) => {
      if (stateDir !== '' && existsSync(join(stateDir, 'bad'))) {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{"error":{"code":"ERR_SERVICE_UNAVAILABLE","message":"bad release"}}');
      } else res.end('ok');
    });
  });

  after(async () => {
    await target.close();
    tmp.remove();
  });

  async function rollout(name: string, mode: string, extra: readonly string[]): Promise<Run> {
    stateDir = join(tmp.dir, name);
    mkdirSync(stateDir);
    const out = join(stateDir, 'report');
    const args = ['rollout', '--k8s', '--target', target.url, '--mix', '/health=1', '--load-rate', '20', '--settle', '1s', '--out', out, ...extra];
    const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI, ...args], {
        env: { PATH: `${bin}:${process.env.PATH ?? ''}`, HOME: process.env.HOME ?? '', FAKE_KUBECTL_DIR: stateDir, FAKE_KUBECTL_MODE: mode },
        timeout: 90_000,
      }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
    });
    const callsFile = join(stateDir, 'calls.jsonl');
    const calls = existsSync(callsFile) ? readFileSync(callsFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as string[]) : [];
    const reportFile = join(out, 'rollout.json');
    return { ...result, calls, ...(existsSync(reportFile) && { report: JSON.parse(readFileSync(reportFile, 'utf8')) as RolloutReport }) };
  }

  test('a rollout that completes: restart, status with a deadline, no undo, exit 0', async (t) => {
    const r = await rollout('ok', 'ok', ['--namespace', 'kgents-staging', '--deployment', 'kgents-api', '--context', 'kind-test', '--timeout', '90s']);
    assert.equal(r.code, 0, r.stderr);
    const scope = ['--context', 'kind-test', '--namespace', 'kgents-staging'];
    assert.deepEqual(r.calls, [
      [...scope, 'get', 'deployment/kgents-api', '-o', 'jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}'],
      [...scope, 'rollout', 'restart', 'deployment/kgents-api'],
      [...scope, 'rollout', 'status', 'deployment/kgents-api', '--watch=true', '--timeout=90s'],
      [...scope, 'get', 'deployment/kgents-api', '-o', 'jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}'],
    ]);
    const k = r.report?.k8s;
    assert.equal(r.report?.verdict, 'PASS');
    assert.equal(k?.outcome, 'complete');
    assert.equal(k?.undo, null);
    assert.equal(k?.revision_before, '3');
    assert.deepEqual(r.report?.rollout.steps.map((s) => [s.id, s.from, s.to, s.ok]), [['rollout', 'revision 3', 'revision 4', true]]);
    assert.deepEqual(k?.progress.map((p) => p.line.replace(/^Waiting for deployment "kgents-api" rollout to finish: /, '')), [
      '1 out of 2 new replicas have been updated...', '1 old replicas are pending termination...', 'deployment "kgents-api" successfully rolled out',
    ]);
    assert.equal(r.report?.load.total.failed, 0);
    assert.deepEqual(r.report?.load.phases.map((p) => p.phase), ['before', 'during', 'after']);
    assert.ok((r.report?.load.total.requests ?? 0) > 20);
    t.diagnostic(`fake rollout: ${r.report?.rollout.took_s} s, ${r.report?.load.total.requests} requests`);
    assert.match(r.stdout, /^rollout: PASS$/m);
  });

  test('a rollout whose status fails is undone to the revision recorded before; exit 1', async () => {
    const r = await rollout('status-fail', 'status-fail', ['--image', 'registry.example.com/kgents/api:0.2.0']);
    assert.equal(r.code, 1, r.stderr);
    const verbs = r.calls.map((c) => c.slice(2).join(' '));
    assert.deepEqual(verbs, [
      'get deployment/kgents-api -o jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}',
      'set image deployment/kgents-api api=registry.example.com/kgents/api:0.2.0',
      'rollout status deployment/kgents-api --watch=true --timeout=600s',
      'get deployment/kgents-api -o jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}',
      'rollout undo deployment/kgents-api --to-revision=3',
      'rollout status deployment/kgents-api --watch=true --timeout=600s',
      'get deployment/kgents-api -o jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}',
    ]);
    assert.ok(r.calls.every((c) => c[0] === '--namespace' && c[1] === 'kgents-api'), 'every call names the namespace (no --context given)');
    assert.equal(r.report?.verdict, 'FAIL');
    assert.equal(r.report?.k8s?.outcome, 'status-failed');
    assert.deepEqual(r.report?.k8s?.undo && { ok: r.report.k8s.undo.ok, status_ok: r.report.k8s.undo.status_ok, to: r.report.k8s.undo.to_revision }, { ok: true, status_ok: true, to: '3' });
    assert.match(r.report?.reasons.join(';') ?? '', /^kubectl rollout status failed \(error: deployment "kgents-api" exceeded its progress deadline\); rolled back$/);
    assert.deepEqual(r.report?.load.phases.map((p) => p.phase), ['before', 'during', 'undo', 'after']);
  });

  test('a rollout that does not finish within --timeout is undone; exit 1', async () => {
    const r = await rollout('hang', 'hang', ['--timeout', '2s']);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(r.calls.some((c) => c.includes('status') && c.includes('--timeout=2s')));
    assert.ok(r.calls.some((c) => c.includes('undo') && c.includes('--to-revision=3')));
    assert.equal(r.report?.k8s?.outcome, 'deadline');
    assert.match(r.report?.reasons.join(';') ?? '', /^the rollout did not finish within 2 s; rolled back$/);
  });

  test('a release whose requests fail is undone as soon as failures pass the limit, without waiting for its status; exit 1', async () => {
    const r = await rollout('bad-release', 'bad-release', ['--max-failed', '5']);
    assert.equal(r.code, 1, r.stderr);
    const status = r.report?.k8s?.commands.find((c) => c.args.includes('status'));
    assert.ok(status && status.signal === 'SIGTERM' && status.took_s < 30, `the 60 s status was cut short: ${JSON.stringify(status)}`);
    assert.deepEqual(r.calls.map((c) => c.slice(2, 4).join(' ')), ['get deployment/kgents-api', 'rollout restart', 'rollout status', 'get deployment/kgents-api', 'rollout undo', 'rollout status', 'get deployment/kgents-api']);
    const report = r.report;
    assert.equal(report?.k8s?.outcome, 'failed-requests');
    assert.equal(report?.k8s?.undo?.ok, true);
    assert.ok((report?.load.total.failed ?? 0) > 5);
    assert.equal(report?.load.total.failed_by_status['503'], report?.load.total.failed);
    assert.equal(report?.load.total.failed_by_code.ERR_SERVICE_UNAVAILABLE, report?.load.total.failed);
    assert.equal(report?.load.phases.find((p) => p.phase === 'before')?.failed, 0);
    assert.equal(report?.load.phases.find((p) => p.phase === 'after')?.failed, 0, 'the undo restored service');
  });

  test('Ctrl-C during the watch stops it without undoing and still writes the report; exit 1', async () => {
    stateDir = join(tmp.dir, 'interrupt');
    mkdirSync(stateDir);
    const out = join(stateDir, 'report');
    const child = spawn(process.execPath, [CLI, 'rollout', '--k8s', '--target', target.url, '--mix', '/health=1', '--load-rate', '20', '--settle', '1s', '--out', out, '--timeout', '60s'], {
      env: { PATH: `${bin}:${process.env.PATH ?? ''}`, HOME: process.env.HOME ?? '', FAKE_KUBECTL_DIR: stateDir, FAKE_KUBECTL_MODE: 'hang' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    const code = await new Promise<number | null>((resolve) => {
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
        if (stderr.includes('updated replicas are available') && !child.killed) child.kill('SIGINT');
      });
      child.stdout.resume();
      child.on('close', (c) => resolve(c));
    });
    assert.equal(code, 1, stderr);
    const calls = readFileSync(join(stateDir, 'calls.jsonl'), 'utf8');
    assert.doesNotMatch(calls, /undo/);
    const report = JSON.parse(readFileSync(join(out, 'rollout.json'), 'utf8')) as RolloutReport;
    assert.equal(report.k8s?.outcome, 'interrupted');
    assert.equal(report.k8s?.undo, null);
    assert.match(report.reasons.join(';'), /interrupted/);
  });

  test('refuses without --target, and stops before changing anything when kubectl cannot read the deployment', async () => {
    const noTarget = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI, 'rollout', '--k8s'], { env: { PATH: process.env.PATH ?? '' } }, (err, _stdout, stderr) => resolve({ code: err && typeof err.code === 'number' ? err.code : 0, stderr }));
    });
    assert.equal(noTarget.code, 2, noTarget.stderr);
    assert.match(noTarget.stderr, /--k8s needs --target URL/);
    const missing = await rollout('missing', 'ok', ['--kubectl', join(tmp.dir, 'no-such-kubectl')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /kubectl cannot read deployment\/kgents-api in kgents-api: .*not found/);
    assert.equal(missing.report, undefined);
  });
});
