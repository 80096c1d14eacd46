import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { recordProcess } from '../../src/adapters/local/process-record.js';
import { startEmbedded, type EmbeddedState } from '../../src/runtime/embedded.js';
import { tempDir } from '../harness/servers.js';
import { procInfo, waitPidGone } from '../harness/procs.js';

const EMBEDDED = new URL('../../src/runtime/embedded.js', import.meta.url).href;

/** A process that starts embedded servers on `dataDir`, says so, and then waits to be killed. */
function startOwner(dataDir: string): Promise<{ pid: number; kill(): Promise<void> }> {
  const code = `const m = await import(${JSON.stringify(EMBEDDED)});
await m.startEmbedded({ dataDir: ${JSON.stringify(dataDir)}, nats: true, redis: true });
process.stdout.write('ready\\n');
setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('exit', (c) => reject(new Error(`owner exited with ${String(c)} before it was ready`)));
    child.stdout.once('data', () => resolve({
      pid: child.pid ?? 0,
      kill: () => new Promise<void>((done) => {
        child.removeAllListeners('exit');
        child.once('exit', () => done());
        child.kill('SIGKILL');
      }),
    }));
  });
}

void test('a serve killed with SIGKILL leaves its embedded servers running; the next start on the same DATA_DIR stops them before starting its own', async (t) => {
  const tmp = tempDir('kgents-embedded-');
  const dataDir = join(tmp.dir, 'data');
  let next: Awaited<ReturnType<typeof startEmbedded>> | undefined;
  try {
    const owner = await startOwner(dataDir);
    const before = JSON.parse(readFileSync(join(dataDir, 'embedded.json'), 'utf8')) as EmbeddedState;
    const natsPid = before.nats_process?.pid;
    const redisPid = before.redis_process?.pid;
    assert.ok(natsPid !== undefined && redisPid !== undefined, 'the state file records both servers');
    await owner.kill();
    assert.ok(procInfo(natsPid), 'nats-server outlived its killed owner (own process group)');
    assert.ok(procInfo(redisPid), 'so did redis-server');

    next = await startEmbedded({ dataDir, nats: true, redis: true });
    assert.ok(next.notes.some((n) => n.includes(`stopped a nats-server (pid ${natsPid})`)), next.notes.join('\n'));
    assert.ok(next.notes.some((n) => n.includes(`stopped a redis-server (pid ${redisPid})`)), next.notes.join('\n'));
    assert.ok(await waitPidGone(natsPid, 100), 'the leftover nats-server is gone before the new one runs');
    assert.ok(await waitPidGone(redisPid, 100));
    const after = JSON.parse(readFileSync(join(dataDir, 'embedded.json'), 'utf8')) as EmbeddedState;
    assert.equal(after.pid, process.pid);
    assert.notEqual(after.nats_process?.pid, natsPid);
    t.diagnostic(next.notes.join('\n'));
  } finally {
    await next?.stop();
    tmp.remove();
  }
});

/** A `sleep` process: a stand-in for a server that a state file may name. */
function sleeper(): { pid: number; stop(): void } {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  return { pid: child.pid ?? 0, stop: () => child.kill('SIGKILL') };
}

void test('a start never signals a process the state file names when its owner still runs or when the pid now belongs to a stranger', async () => {
  const tmp = tempDir('kgents-embedded-');
  const owner = sleeper();
  const server = sleeper();
  const stranger = sleeper();
  try {
    const cases: [string, EmbeddedState][] = [
      // the serve that wrote the file still runs: its servers are its own business
      ['owner alive', { pid: owner.pid, nats_process: recordProcess(server.pid, 'sleep') }],
      // the owner is gone and the recorded pid was reused by another process (other start time)
      ['pid reused', { pid: 2 ** 22 + 12_345, nats_process: { pid: stranger.pid, start_ticks: 1, match: 'sleep' } }],
      // same pid and start time, but not the command line that was recorded
      ['other command', { pid: 2 ** 22 + 12_345, redis_process: { ...recordProcess(stranger.pid, 'sleep'), match: '127.0.0.1:6379' } }],
    ];
    for (const [name, state] of cases) {
      const dataDir = join(tmp.dir, name.replace(/ /g, '-'));
      mkdirSync(dataDir, { recursive: true });
      writeFileSync(join(dataDir, 'embedded.json'), JSON.stringify(state));
      const started = await startEmbedded({ dataDir, nats: false, redis: false });
      await started.stop();
      assert.deepEqual(started.notes, [], name);
    }
    assert.ok(procInfo(server.pid) && procInfo(stranger.pid), 'both still run');
  } finally {
    for (const p of [owner, server, stranger]) p.stop();
    tmp.remove();
  }
});
