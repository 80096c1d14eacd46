import { strict as assert } from 'node:assert';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import { freePort } from '../../../src/adapters/local/ports.js';
import type { StackHealth } from '../../../src/ops/stack/health.js';
import { liveness, recordProcess, type ProcessRecord } from '../../../src/ops/stack/processes.js';
import { readState, recordedProcesses, writeState, type StackState } from '../../../src/ops/stack/state.js';
import type { DownResult } from '../../../src/ops/stack/detached.js';
import { CLI } from '../../harness/serve-process.js';
import { tempDir } from '../../harness/servers.js';
import { eventually } from './load.js';

interface CliResult { code: number; stdout: string; stderr: string }

function kgents(...args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 180_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function allPorts(state: StackState): number[] {
  return [state.port, Number(new URL(state.control.url).port), ...state.parts.flatMap((p) => Object.values(p.ports))];
}

function decoy(): ChildProcess {
  const child = spawn('sleep', ['300'], { stdio: 'ignore' });
  child.on('error', () => undefined);
  return child;
}

describe('kgents stack (the compiled CLI, detached)', () => {
  test('up starts a detached stack, status --json reports it healthy, down stops every recorded process and closes every port', { timeout: 150_000 }, async () => {
    const tmp = tempDir('kgents-stack-cli-');
    const bystander = decoy();
    try {
      const port = await freePort();
      const upResult = await kgents('stack', 'up', '--dir', tmp.dir, '--port', String(port));
      assert.equal(upResult.code, 0, upResult.stderr + upResult.stdout);
      assert.match(upResult.stdout, new RegExp(`URL: +http://127\\.0\\.0\\.1:${port}`));
      assert.match(upResult.stdout, /kgents stack key --dir/);
      const state = readState(tmp.dir);
      assert.ok(state);
      assert.equal(state.status, 'running');
      const recorded = recordedProcesses(state);
      assert.equal(recorded.length, 1 + 3 + 1 + 2, 'supervisor, 3 NATS nodes, Redis, 2 API instances');
      for (const p of recorded) assert.equal(liveness(p.process), 'alive', p.id);

      const statusResult = await kgents('stack', 'status', '--dir', tmp.dir, '--json');
      assert.equal(statusResult.code, 0, statusResult.stdout + statusResult.stderr);
      const health = JSON.parse(statusResult.stdout) as StackHealth;
      assert.equal(health.status, 'healthy');
      assert.equal(health.source, 'control');
      assert.deepEqual(health.parts.map((p) => [p.id, p.healthy]), [
        ['supervisor', true], ['balancer', true], ['nats-1', true], ['nats-2', true], ['nats-3', true], ['redis', true], ['api-1', true], ['api-2', true],
      ]);
      const res = await fetch(`http://127.0.0.1:${port}/health/saas`);
      assert.equal(((await res.json()) as { status: string }).status, 'ok');

      // a second stack in the same directory is refused
      const again = await kgents('stack', 'up', '--dir', tmp.dir, '--port', String(await freePort()));
      assert.equal(again.code, 1);
      assert.match(again.stderr, /already runs/);

      const downResult = await kgents('stack', 'down', '--dir', tmp.dir, '--json');
      assert.equal(downResult.code, 0, downResult.stderr);
      const down = JSON.parse(downResult.stdout) as DownResult;
      assert.deepEqual(down.skipped, []);
      assert.deepEqual(new Set(down.stopped.map((s) => s.id)), new Set(recorded.map((p) => p.id)));
      assert.ok(down.stopped.every((s) => s.gone));
      for (const p of recorded) assert.equal(liveness(p.process), 'gone', `${p.id} (pid ${p.process.pid}) gone`);
      for (const p of allPorts(state)) assert.equal(await portOpen(p), false, `port ${p} closed`);
      assert.equal(bystander.exitCode, null, 'an unrelated process is untouched');
      assert.equal(readState(tmp.dir)?.status, 'stopped');

      const twice = await kgents('stack', 'down', '--dir', tmp.dir);
      assert.equal(twice.code, 0);
      assert.match(twice.stdout, /nothing to stop/);
      const stoppedStatus = await kgents('stack', 'status', '--dir', tmp.dir);
      assert.equal(stoppedStatus.code, 1);
      assert.match(stoppedStatus.stdout, /STOPPED/);
    } finally {
      bystander.kill();
      await kgents('stack', 'down', '--dir', tmp.dir);
      tmp.remove();
    }
  });

  test('after the supervisor is killed -9, down still stops the orphaned parts by their recorded pids and leaves a reused pid alone', { timeout: 120_000 }, async () => {
    const tmp = tempDir('kgents-stack-cli-');
    const strangers = [decoy(), decoy()];
    try {
      const upResult = await kgents('stack', 'up', '--dir', tmp.dir, '--port', '0', '--nats', '1', '--api', '1');
      assert.equal(upResult.code, 0, upResult.stderr + upResult.stdout);
      const state = readState(tmp.dir);
      assert.ok(state);
      process.kill(state.supervisor.pid, 'SIGKILL');
      await eventually('supervisor gone', () => liveness(state.supervisor) === 'gone', 5000);
      const orphans = recordedProcesses(state).filter((p) => p.id !== 'supervisor');
      assert.deepEqual(orphans.map((p) => [p.id, liveness(p.process)]), [['nats-1', 'alive'], ['redis', 'alive'], ['api-1', 'alive']]);

      // Two pids that stack.json claims but that now belong to other processes: one started at
      // another time, one with another command line. `down` must not signal either.
      const [a, b] = strangers.map((s) => recordProcess(s.pid ?? 0, 'sleep'));
      assert.ok(a && b);
      const wrongTime: ProcessRecord = { ...a, start_ticks: (a.start_ticks ?? 0) + 1 };
      const wrongCommand: ProcessRecord = { ...b, match: `${CLI} serve` };
      writeState(tmp.dir, {
        ...state,
        retiring: [
          { id: 'api-1', instance_id: 'api-1.old', process: wrongTime, port: 1, since: new Date().toISOString() },
          { id: 'api-1', instance_id: 'api-1.older', process: wrongCommand, port: 2, since: new Date().toISOString() },
        ],
      });

      const statusResult = await kgents('stack', 'status', '--dir', tmp.dir, '--json');
      assert.equal(statusResult.code, 1);
      const health = JSON.parse(statusResult.stdout) as StackHealth;
      assert.equal(health.status, 'unhealthy');
      assert.equal(health.source, 'file');
      assert.equal(health.parts.find((p) => p.id === 'supervisor')?.process, 'gone');

      const downResult = await kgents('stack', 'down', '--dir', tmp.dir, '--json');
      assert.equal(downResult.code, 0, downResult.stderr);
      const down = JSON.parse(downResult.stdout) as DownResult;
      assert.deepEqual(down.stopped.map((s) => [s.id, s.by, s.gone]), [['api-1', 'signal', true], ['redis', 'signal', true], ['nats-1', 'signal', true]]);
      assert.deepEqual(new Set(down.skipped.map((s) => s.pid)), new Set(strangers.map((s) => s.pid)));
      for (const p of orphans) assert.equal(liveness(p.process), 'gone', p.id);
      for (const s of strangers) assert.equal(s.exitCode === null && s.signalCode === null, true, `pid ${String(s.pid)} left alone`);
      for (const p of allPorts(state)) assert.equal(await portOpen(p), false, `port ${p} closed`);
    } finally {
      for (const s of strangers) s.kill();
      await kgents('stack', 'down', '--dir', tmp.dir);
      tmp.remove();
    }
  });
});
