import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FallbackQueue } from '../../../src/adapters/disk/fallback-queue.js';
import { QueueLockedError } from '../../../src/adapters/disk/errors.js';
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
  // `true` exits at once and its parent becomes `sleep`, which never reaps it
  const parent = spawn('sh', ['-c', 'true & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.after(() => parent.kill('SIGKILL'));
  const zombie = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (b: Buffer) => resolve(b.toString().trim()))));
  const state = (): string | undefined => {
    try {
      const stat = readFileSync(`/proc/${zombie}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    } catch {
      return undefined;
    }
  };
  for (let i = 0; i < 100 && state() !== 'Z'; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(state(), 'Z', 'a zombie to test with');
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
