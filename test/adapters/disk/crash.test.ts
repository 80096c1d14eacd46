import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { FallbackQueue } from '../../../src/adapters/disk/fallback-queue.js';
import { QueueLockedError } from '../../../src/adapters/disk/errors.js';
import { captureLogger, event, idOf, newDir, peekAll, track } from './helpers.js';

const CHILD = join(import.meta.dirname, 'append-child.js');

interface Killed {
  /** Indexes the child printed as acknowledged, in print order. */
  readonly acked: number[];
}

/** Runs the appending child until it has acknowledged `target` records, checks it holds the lock, then SIGKILLs it. */
async function runAndKill(dir: string, target: number, concurrency: number): Promise<Killed> {
  const child = spawn(process.execPath, [CHILD, dir, String(concurrency)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString(); });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  let checkedLock = false;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child did not reach ${target} acks; stderr: ${err}`)), 8000);
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (!checkedLock && out.startsWith('ready\n')) {
        checkedLock = true;
        // While the child is alive its lock keeps everyone else out.
        FallbackQueue.open(dir, { logger: captureLogger() }).then(
          (q) => { void q.close(); reject(new Error('opened a directory held by a live process')); },
          (e: unknown) => { if (!(e instanceof QueueLockedError)) reject(e instanceof Error ? e : new Error(String(e))); },
        );
      }
      if (out.split('\n').length - 2 >= target) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', () => reject(new Error(`child exited early; stderr: ${err}`)));
  });
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
  // Only complete lines: a line cut by the kill was not printed, so not counted as acknowledged.
  const lines = out.split('\n').slice(1, -1);
  return { acked: lines.map(Number) };
}

void test('kill -9 while appending: every acknowledged record survives, in order, with no duplicate or corrupt data', async () => {
  for (const [target, concurrency] of [[150, 1], [700, 32], [2500, 128]] as const) {
    const dir = newDir();
    const { acked } = await runAndKill(dir, target, concurrency);
    assert.ok(acked.length >= target);

    const logger = captureLogger();
    const q = track(await FallbackQueue.open(dir, { logger, segmentBytes: 64 * 1024 }));
    const records = await peekAll(q, 500);
    const ids = records.map(idOf);
    assert.equal(new Set(ids).size, ids.length, 'no record twice');
    assert.deepEqual(records.map((r) => r.sequence), ids.map((_, i) => i), 'sequence numbers without gaps');
    for (const r of records) assert.deepEqual(r.payload, event(idOf(r), 200 + (idOf(r) % 7) * 50), 'payload intact');
    const where = new Map(ids.map((id, i) => [id, i]));
    let last = -1;
    for (const id of acked) {
      const at = where.get(id);
      assert.ok(at !== undefined, `acknowledged record ${id} is in the queue`);
      assert.ok(at > last, `acknowledged record ${id} is in acknowledgement order`);
      last = at;
    }
    assert.equal(q.stats().corruptRegions, 0);
    assert.equal(logger.errors.length, 0);
    assert.equal(q.depth, ids.length);
    // The queue goes on from where it was.
    await q.append(event(1_000_000));
    const tail = await q.readBatch(1, { after: records.at(-1)!.position });
    assert.equal(tail.records[0]!.sequence, ids.length);
    await q.close();
  }
});
