import { strict as assert } from 'node:assert';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FallbackQueue } from '../../../src/adapters/disk/fallback-queue.js';
import { QueueClosedError, QueueFullError, QueuePositionError, RecordSizeError } from '../../../src/adapters/disk/errors.js';
import { defaultSegmentIo } from '../../../src/adapters/disk/segment-writer.js';
import type { SegmentIo } from '../../../src/adapters/disk/types.js';
import { captureLogger, drainAll, event, idOf, newDir, peekAll, range, track } from './helpers.js';

const RECORD_OVERHEAD = 32;

function segmentFiles(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.seg')).sort();
}

async function open(dir: string, options: Parameters<typeof FallbackQueue.open>[1] = {}): Promise<FallbackQueue> {
  return track(await FallbackQueue.open(dir, { logger: captureLogger(), ...options }));
}

void test('records come back byte for byte, in append order, across segment rolls and a reopen', async () => {
  const dir = newDir();
  const q = await open(dir, { segmentBytes: 4096 });
  const payloads = range(300).map((i) => event(i, 50 + ((i * 37) % 900)));
  for (const p of payloads) await q.append(p);
  const files = segmentFiles(dir);
  assert.ok(files.length > 20, `rolled into ${files.length} segments`);
  assert.match(files[0]!, /^\d{20}\.seg$/);
  for (const f of files.slice(0, -1)) assert.ok(statSync(join(dir, f)).size <= 4096, `${f} respects segmentBytes`);

  const read = await peekAll(q, 37);
  assert.deepEqual(read.map((r) => r.payload), payloads);
  assert.deepEqual(read.map((r) => r.sequence), range(300));
  await q.close();

  const again = await open(dir, { segmentBytes: 4096 });
  assert.deepEqual((await peekAll(again)).map((r) => r.payload), payloads);
});

void test('2,000 appends from 200 concurrent appenders are all durable and read back once each, in order of resolution', async () => {
  const q = await open(newDir());
  const resolved: number[] = [];
  let next = 0;
  await Promise.all(range(200).map(async () => {
    while (next < 2000) {
      const i = next++;
      await q.append(event(i));
      resolved.push(i);
    }
  }));
  assert.equal(q.depth, 2000);
  assert.equal(q.stats().appends, 2000);
  const read = await drainAll(q, 500);
  assert.deepEqual(read.map(idOf), resolved);
  assert.equal(new Set(read.map(idOf)).size, 2000);
  assert.equal(q.depth, 0);
});

void test('group commit: concurrent appends share writes and fsyncs', async () => {
  let syncs = 0;
  let writes = 0;
  const io: SegmentIo = {
    ...defaultSegmentIo,
    write: (h, data, pos) => { writes++; return defaultSegmentIo.write(h, data, pos); },
    sync: (h) => { syncs++; return defaultSegmentIo.sync(h); },
  };
  const q = await open(newDir(), { io });
  const before = syncs;
  await Promise.all(range(1000).map((i) => q.append(event(i))));
  const used = syncs - before;
  assert.ok(used >= 1 && used <= 50, `1000 concurrent appends took ${used} fsyncs`);
  assert.equal(q.stats().fsyncs, used);
  assert.ok(writes - before <= used, 'one write per fsync');
  assert.equal(q.depth, 1000);
});

void test('a single appender still gets its record fsynced before append resolves', async () => {
  const events: string[] = [];
  const io: SegmentIo = {
    ...defaultSegmentIo,
    sync: async (h) => { await defaultSegmentIo.sync(h); events.push('synced'); },
  };
  const q = await open(newDir(), { io });
  await q.append(event(1));
  events.push('resolved');
  assert.deepEqual(events, ['synced', 'resolved']);
});

void test('commit is durable: a reopened queue resumes after the committed record; uncommitted reads are re-delivered', async () => {
  const dir = newDir();
  const q = await open(dir);
  for (const i of range(100)) await q.append(event(i));
  const first = await q.readBatch(30);
  assert.deepEqual(first.records.map(idOf), range(30));
  await q.commit(first.records[29]!.position);
  const again = await q.readBatch(10);
  assert.deepEqual(again.records.map(idOf), range(10, 30), 'readBatch starts at the committed cursor');
  // Read (but not committed) 30..39 before the "crash".
  await q.close();

  const reopened = await open(dir);
  assert.equal(reopened.depth, 70);
  const rest = await drainAll(reopened, 25);
  assert.deepEqual(rest.map(idOf), range(70, 30));
});

void test('readBatch with `after` reads ahead without moving the cursor; committing an older position is a no-op', async () => {
  const q = await open(newDir());
  for (const i of range(10)) await q.append(event(i));
  const a = await q.readBatch(4);
  const b = await q.readBatch(4, { after: a.end });
  assert.deepEqual(b.records.map(idOf), [4, 5, 6, 7]);
  await q.commit(b.end);
  await q.commit(a.end);
  assert.equal(q.depth, 2);
  await assert.rejects(q.readBatch(1, { after: a.end }), QueuePositionError);
  await assert.rejects(q.commit({ segment: 999, offset: 16, sequence: 9 }), QueuePositionError);
  await assert.rejects(q.commit({ ...b.end, offset: b.end.offset + 10_000 }), QueuePositionError);
});

void test('fully consumed segments are deleted after commit; the active one stays', async () => {
  const dir = newDir();
  const q = await open(dir, { segmentBytes: 4096 });
  for (const i of range(200)) await q.append(event(i, 300));
  const before = segmentFiles(dir).length;
  assert.ok(before > 10);
  const half = await q.readBatch(100);
  await q.commit(half.end);
  const middle = segmentFiles(dir).length;
  assert.ok(middle < before && middle > 1, `${before} -> ${middle} segments`);
  const ids = segmentFiles(dir).map((f) => Number(f.slice(0, 20)));
  assert.ok(ids[0]! <= 100 && ids[1]! > 100, `the oldest remaining segment (${ids[0]}) holds record 100, the next starts after it`);
  await drainAll(q);
  assert.equal(segmentFiles(dir).length, 1);
  assert.equal(q.stats().segmentsDeleted, before - 1);
  assert.equal(q.bytes, 0);
  await q.append(event(1000));
  assert.deepEqual((await drainAll(q)).map(idOf), [1000]);
});

void test('draining while appenders run delivers every record exactly once, in order', async () => {
  const q = await open(newDir(), { segmentBytes: 32 * 1024 });
  const resolved: number[] = [];
  const drained: number[] = [];
  let next = 0;
  let appending = true;
  const appenders = Promise.all(range(50).map(async () => {
    while (next < 3000) {
      const i = next++;
      await q.append(event(i, 250));
      resolved.push(i);
    }
  })).finally(() => { appending = false; });
  const drainer = (async () => {
    for (;;) {
      const done = !appending;
      const { records, end } = await q.readBatch(64);
      drained.push(...records.map(idOf));
      await q.commit(end);
      if (records.length === 0) {
        if (done) return;
        await new Promise((r) => setImmediate(r));
      }
    }
  })();
  await Promise.all([appenders, drainer]);
  assert.equal(drained.length, 3000);
  assert.deepEqual(drained, resolved);
  assert.equal(q.depth, 0);
});

void test('over maxBytes, append rejects with QueueFullError (nothing written) and succeeds again after draining', async () => {
  const size = 400 + RECORD_OVERHEAD;
  const q = await open(newDir(), { maxBytes: size * 10 });
  const results = await Promise.allSettled(range(15).map((i) => q.append(event(i))));
  const ok = results.filter((r) => r.status === 'fulfilled').length;
  assert.equal(ok, 10, 'exactly maxBytes worth is accepted, counting appends still in flight');
  for (const r of results.slice(10)) {
    assert.equal(r.status, 'rejected');
    assert.ok(r.reason instanceof QueueFullError);
  }
  assert.equal(q.depth, 10);
  assert.equal(q.bytes, size * 10);
  assert.equal(q.stats().fullRejections, 5);
  await assert.rejects(q.append(event(99)), (err: unknown) => err instanceof QueueFullError && err.code === 'QUEUE_FULL');

  const some = await q.readBatch(3);
  await q.commit(some.end);
  await q.append(event(100));
  await q.append(event(101));
  await q.append(event(102));
  await assert.rejects(q.append(event(103)), QueueFullError);
  assert.deepEqual((await drainAll(q)).map(idOf), [3, 4, 5, 6, 7, 8, 9, 100, 101, 102]);
});

void test('depth, bytes and oldestTimestamp are kept across reopen', async () => {
  const dir = newDir();
  const q = await open(dir, { segmentBytes: 2048 });
  assert.equal(q.depth, 0);
  assert.equal(q.bytes, 0);
  assert.equal(q.oldestTimestamp, undefined);
  for (const i of range(20)) await q.append(event(i, 300), 1_700_000_000_000 + i * 1000);
  assert.equal(q.depth, 20);
  assert.equal(q.bytes, 20 * (300 + RECORD_OVERHEAD));
  assert.equal(q.oldestTimestamp, 1_700_000_000_000);
  const batch = await q.readBatch(7);
  await q.commit(batch.end);
  assert.equal(q.oldestTimestamp, 1_700_000_007_000);
  const { depth, bytes } = q;
  assert.equal(depth, 13);
  assert.equal(bytes, 13 * (300 + RECORD_OVERHEAD));
  await q.close();

  const again = await open(dir, { segmentBytes: 2048 });
  assert.equal(again.depth, depth);
  assert.equal(again.bytes, bytes);
  assert.equal(again.oldestTimestamp, 1_700_000_007_000);
  await drainAll(again);
  assert.equal(again.oldestTimestamp, undefined);
  await again.append(event(50), 1_800_000_000_000);
  assert.equal(again.oldestTimestamp, 1_800_000_000_000);
});

void test('close writes pending appends first; afterwards every call rejects with QueueClosedError', async () => {
  const dir = newDir();
  const q = await open(dir);
  const pending = range(50).map((i) => q.append(event(i)));
  await q.close();
  await Promise.all(pending);
  await assert.rejects(q.append(event(1)), QueueClosedError);
  await assert.rejects(q.readBatch(1), QueueClosedError);
  const again = await open(dir);
  assert.equal(again.depth, 50);
});

void test('empty and oversized records are refused with RecordSizeError', async () => {
  const q = await open(newDir(), { maxRecordBytes: 1000 });
  await assert.rejects(q.append(Buffer.alloc(0)), RecordSizeError);
  await assert.rejects(q.append(Buffer.alloc(1001, 1)), RecordSizeError);
  await q.append(Buffer.alloc(1000, 1));
  assert.equal(q.depth, 1);
});

void test('a record bigger than segmentBytes gets a segment of its own', async () => {
  const dir = newDir();
  const q = await open(dir, { segmentBytes: 1024 });
  await q.append(event(1, 100));
  await q.append(event(2, 5000));
  await q.append(event(3, 100));
  assert.deepEqual((await peekAll(q)).map(idOf), [1, 2, 3]);
  assert.equal(segmentFiles(dir).length, 3);
});

void test('lingerMs gathers appends spread over a few milliseconds into one fsync', async () => {
  const q = await open(newDir(), { lingerMs: 20 });
  const before = q.stats().fsyncs;
  const appends: Promise<void>[] = [];
  for (const i of range(10)) {
    appends.push(q.append(event(i)));
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(appends);
  assert.equal(q.stats().fsyncs - before, 1);
});

void test('maxBatchBytes splits a large group commit into several writes, keeping order', async () => {
  const q = await open(newDir(), { maxBatchBytes: 4096 });
  const resolved: number[] = [];
  await Promise.all(range(100).map(async (i) => { await q.append(event(i)); resolved.push(i); }));
  assert.ok(q.stats().fsyncs >= 100 / 9, `${q.stats().fsyncs} writes of at most 4 KiB`);
  assert.deepEqual(resolved, range(100));
  assert.deepEqual((await drainAll(q)).map(idOf), range(100));
});

void test('the drainer never sees a record whose append has not resolved (written but not yet fsynced)', async () => {
  let hold: Promise<void> | undefined;
  const writes = { count: 0 };
  const io: SegmentIo = {
    ...defaultSegmentIo,
    write: async (h, data, pos) => { await defaultSegmentIo.write(h, data, pos); writes.count++; },
    sync: async (h) => { if (hold) await hold; await defaultSegmentIo.sync(h); },
  };
  const q = await open(newDir(), { io });
  await q.append(event(0));
  let release = (): void => undefined;
  hold = new Promise<void>((r) => { release = r; });
  const before = writes.count;
  let resolved = false;
  const pending = q.append(event(1)).then(() => { resolved = true; });
  while (writes.count === before) await new Promise((r) => setImmediate(r));
  assert.deepEqual((await q.readBatch(10)).records.map(idOf), [0], 'the record is in the file but not durable yet');
  assert.equal(q.depth, 1);
  assert.equal(resolved, false);
  hold = undefined;
  release();
  await pending;
  assert.deepEqual((await q.readBatch(10)).records.map(idOf), [0, 1]);
});
