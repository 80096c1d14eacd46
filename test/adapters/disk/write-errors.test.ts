import { strict as assert } from 'node:assert';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FallbackQueue } from '../../../src/adapters/disk/fallback-queue.js';
import { QueueWriteError } from '../../../src/adapters/disk/errors.js';
import { RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES } from '../../../src/adapters/disk/format.js';
import { defaultSegmentIo } from '../../../src/adapters/disk/segment-writer.js';
import type { SegmentIo } from '../../../src/adapters/disk/types.js';
import { captureLogger, drainAll, event, idOf, newDir, range, track } from './helpers.js';

function errno(code: string): Error {
  return Object.assign(new Error(`simulated ${code}`), { code });
}

/** Default io with switchable faults. */
function faultyIo(): SegmentIo & { failWrite?: string; partial: boolean; failSync?: string; failTruncate: number; failHeader?: string } {
  const io = {
    partial: false,
    failTruncate: 0,
    failWrite: undefined as string | undefined,
    failSync: undefined as string | undefined,
    failHeader: undefined as string | undefined,
    async write(h: Parameters<SegmentIo['write']>[0], data: Buffer, position: number) {
      if (position === 0 && io.failHeader) throw errno(io.failHeader);
      if (position > 0 && io.failWrite) {
        // Half the bytes reach the file before the error, like a write cut short by ENOSPC.
        if (io.partial) await defaultSegmentIo.write(h, data.subarray(0, data.length >> 1), position);
        throw errno(io.failWrite);
      }
      await defaultSegmentIo.write(h, data, position);
    },
    async sync(h: Parameters<SegmentIo['sync']>[0]) {
      if (io.failSync) throw errno(io.failSync);
      await defaultSegmentIo.sync(h);
    },
    async truncate(h: Parameters<SegmentIo['truncate']>[0], length: number) {
      if (io.failTruncate > 0) {
        io.failTruncate--;
        throw errno('EIO');
      }
      await defaultSegmentIo.truncate(h, length);
    },
  };
  return io;
}

function segmentSizes(dir: string): number {
  return readdirSync(dir).filter((f) => f.endsWith('.seg')).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

void test('ENOSPC mid-write rejects that batch with QueueWriteError, leaves no partial bytes, and later appends succeed', async () => {
  const dir = newDir();
  const io = faultyIo();
  const logger = captureLogger();
  const q = track(await FallbackQueue.open(dir, { io, logger }));
  for (const i of range(5)) await q.append(event(i, 100));
  io.failWrite = 'ENOSPC';
  io.partial = true;
  const failed = await Promise.allSettled(range(5, 5).map((i) => q.append(event(i, 100))));
  for (const r of failed) {
    assert.equal(r.status, 'rejected');
    const err = r.reason as unknown;
    assert.ok(err instanceof QueueWriteError);
    assert.equal(err.errno, 'ENOSPC');
  }
  assert.equal(q.depth, 5);
  assert.equal(q.bytes, 5 * (100 + RECORD_HEADER_BYTES), 'rejected appends release their reservation');
  assert.equal(segmentSizes(dir), SEGMENT_HEADER_BYTES + 5 * (100 + RECORD_HEADER_BYTES), 'the partial write was truncated away');
  assert.equal(q.stats().writeErrors, 5);
  assert.equal(logger.errors.length, 1);

  io.failWrite = undefined;
  for (const i of range(5, 10)) await q.append(event(i, 100));
  const read = await drainAll(q);
  assert.deepEqual(read.map(idOf), [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]);
  assert.deepEqual(read.map((r) => r.sequence), range(10), 'no sequence gap for the failed batch');
  await q.close();

  const again = track(await FallbackQueue.open(dir, { logger: captureLogger() }));
  assert.equal(again.stats().truncatedBytes, 0);
  assert.equal(again.stats().corruptRegions, 0);
});

void test('EIO from fdatasync rejects the batch and its already-written bytes are never delivered', async () => {
  const dir = newDir();
  const io = faultyIo();
  const q = track(await FallbackQueue.open(dir, { io, logger: captureLogger() }));
  await q.append(event(0, 100));
  io.failSync = 'EIO';
  await assert.rejects(q.append(event(1, 100)), (err: unknown) => err instanceof QueueWriteError && err.errno === 'EIO');
  assert.deepEqual((await q.readBatch(10)).records.map(idOf), [0]);
  io.failSync = undefined;
  await q.append(event(2, 100));
  assert.deepEqual((await drainAll(q)).map(idOf), [0, 2]);
});

void test('when the truncation after a failed write fails too, appends keep failing until it succeeds', async () => {
  const dir = newDir();
  const io = faultyIo();
  const q = track(await FallbackQueue.open(dir, { io, logger: captureLogger() }));
  await q.append(event(0, 100));
  io.failWrite = 'EIO';
  io.partial = true;
  io.failTruncate = 2; // the immediate repair and the one before the next batch
  await assert.rejects(q.append(event(1, 100)), QueueWriteError);
  io.failWrite = undefined;
  await assert.rejects(q.append(event(2, 100)), QueueWriteError, 'nothing is acknowledged after bytes of unknown fate');
  await q.append(event(3, 100));
  assert.deepEqual((await drainAll(q)).map(idOf), [0, 3]);
  await q.close();
  const again = track(await FallbackQueue.open(dir, { logger: captureLogger() }));
  assert.equal(again.stats().truncatedBytes, 0);
});

void test('a failed segment roll rejects the batch and the next append rolls instead of reusing the full segment', async () => {
  const dir = newDir();
  const io = faultyIo();
  // 4 records of 132 bytes fill 544 of 650 bytes: another 132 needs a roll, a 78-byte one would still fit.
  const q = track(await FallbackQueue.open(dir, { io, segmentBytes: 650, logger: captureLogger() }));
  for (const i of range(4)) await q.append(event(i, 100));
  io.failHeader = 'ENOSPC';
  await assert.rejects(q.append(event(4, 100)), QueueWriteError);
  await assert.rejects(q.append(event(5, 10)), QueueWriteError, 'a small record does not slip into the old segment');
  io.failHeader = undefined;
  await q.append(event(6, 10));
  await q.append(event(7, 100));
  const read = await drainAll(q);
  assert.deepEqual(read.map(idOf), [0, 1, 2, 3, 6, 7]);
  assert.deepEqual(read.map((r) => r.position.segment), [0, 0, 0, 0, 4, 4]);
});
