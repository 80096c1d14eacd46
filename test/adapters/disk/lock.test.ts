import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FallbackQueue } from '../../../src/adapters/disk/fallback-queue.js';
import { QueueLockedError } from '../../../src/adapters/disk/errors.js';
import { children, procInfo } from '../../harness/procs.js';
import { captureLogger, newDir, track } from './helpers.js';

const open = async (dir: string): Promise<FallbackQueue> => track(await FallbackQueue.open(dir, { logger: captureLogger() }));

function lockPid(dir: string): number {
  return (JSON.parse(readFileSync(join(dir, 'queue.lock'), 'utf8')) as { pid: number }).pid;
}

void test('a second open of the same directory in the same process is refused until the first is closed', async () => {
  const dir = newDir();
  const first = await open(dir);
  await assert.rejects(FallbackQueue.open(dir), (err: unknown) => err instanceof QueueLockedError && err.holderPid === process.pid);
  await assert.rejects(FallbackQueue.open(join(dir, '..', 'fallback-queue')), QueueLockedError, 'also through another path');
  await first.close();
  assert.equal(existsSync(join(dir, 'queue.lock')), false, 'close removes the lock');
  await (await open(dir)).close();
});

void test('a lock held by another live process is refused', async (t) => {
  const dir = newDir();
  mkdirSync(dir, { recursive: true });
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
  t.after(() => sleeper.kill('SIGKILL'));
  writeFileSync(join(dir, 'queue.lock'), JSON.stringify({ pid: sleeper.pid, token: 'theirs' }));
  await assert.rejects(FallbackQueue.open(dir), (err: unknown) => err instanceof QueueLockedError && err.holderPid === sleeper.pid);
});

void test('a stale lock of a dead process is taken over', async () => {
  const dir = newDir();
  mkdirSync(dir, { recursive: true });
  const dead = spawnSync(process.execPath, ['-e', '']).pid;
  writeFileSync(join(dir, 'queue.lock'), JSON.stringify({ pid: dead, token: 'old' }));
  const q = await open(dir);
  assert.equal(lockPid(dir), process.pid);
  await q.close();
});

void test('a lock of a killed process not yet reaped by its parent (a zombie) is stale: a restart after kill -9 is not refused', async (t) => {
  const dir = newDir();
  mkdirSync(dir, { recursive: true });
  // the background `sleep 0.2` exits after its parent has become `sleep 30` (exec), which never reaps it
  const parent = spawn('sh', ['-c', 'sleep 0.2 & exec sleep 30'], { stdio: 'ignore' });
  t.after(() => parent.kill('SIGKILL'));
  let zombie = 0;
  for (let i = 0; i < 250 && zombie === 0; i++) {
    zombie = children(parent.pid ?? 0).find((c) => c.state === 'Z')?.pid ?? 0;
    if (zombie === 0) await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(procInfo(zombie)?.state, 'Z', 'a zombie to test with');
  writeFileSync(join(dir, 'queue.lock'), JSON.stringify({ pid: zombie, token: 'killed' }));
  const q = await open(dir);
  assert.equal(lockPid(dir), process.pid);
  await q.close();
});

void test('a lock with our own pid that this process does not hold (pid reused after a container restart) is stale', async () => {
  const dir = newDir();
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'queue.lock'), JSON.stringify({ pid: process.pid, token: 'previous-incarnation' }));
  const q = await open(dir);
  assert.equal(lockPid(dir), process.pid);
  await q.close();
});

void test('an old unreadable lock file is taken over', async () => {
  const dir = newDir();
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'queue.lock');
  writeFileSync(path, '');
  const past = new Date(Date.now() - 60_000);
  utimesSync(path, past, past);
  const q = await open(dir);
  assert.equal(lockPid(dir), process.pid);
  await q.close();
});
