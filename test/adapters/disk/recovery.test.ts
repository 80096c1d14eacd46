import { strict as assert } from 'node:assert';
import { appendFileSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { FallbackQueue } from '../../../src/adapters/disk/fallback-queue.js';
import { encodeRecord, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, segmentFileName } from '../../../src/adapters/disk/format.js';
import type { FallbackQueueOptions, QueueRecord } from '../../../src/adapters/disk/types.js';
import { captureLogger, drainAll, event, idOf, newDir, peekAll, range, track, type CapturedLogger } from './helpers.js';

async function open(dir: string, options: FallbackQueueOptions = {}): Promise<FallbackQueue> {
  return track(await FallbackQueue.open(dir, { logger: captureLogger(), ...options }));
}

/** A queue with records 0..n-1 of `size` bytes, closed; returns the records as read back. */
async function seeded(dir: string, n: number, options: FallbackQueueOptions = {}, size = 120): Promise<QueueRecord[]> {
  const q = await open(dir, options);
  for (const i of range(n)) await q.append(event(i, size));
  const records = await peekAll(q);
  await q.close();
  return records;
}

function segments(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.seg')).sort().map((f) => join(dir, f));
}

/** File offset where a record starts. */
function startOf(record: QueueRecord): number {
  return record.position.offset - RECORD_HEADER_BYTES - record.payload.length;
}

function flipByte(path: string, offset: number): void {
  const buf = readFileSync(path);
  buf[offset] = buf[offset]! ^ 0x5a;
  writeFileSync(path, buf);
}

function encoded(i: number, sequence: number): Buffer {
  const payload = event(i, 120);
  const out = Buffer.alloc(RECORD_HEADER_BYTES + payload.length);
  encodeRecord(out, 0, payload, sequence, Date.now());
  return out;
}

void test('a torn tail (partial header or partial payload after the last valid record) is truncated on reopen', async () => {
  for (const cut of [1, 12, RECORD_HEADER_BYTES - 1, RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + 50]) {
    const dir = newDir();
    await seeded(dir, 3);
    const [seg] = segments(dir);
    const validSize = statSync(seg!).size;
    appendFileSync(seg!, encoded(3, 3).subarray(0, cut));

    const logger = captureLogger();
    const q = await open(dir, { logger });
    assert.equal(q.depth, 3, `cut at ${cut}`);
    assert.equal(q.stats().truncatedBytes, cut);
    assert.equal(statSync(seg!).size, validSize, 'the file is cut back to the last valid record');
    assert.equal(logger.errors.length, 0, 'a torn tail is expected after a crash, not an error');
    assert.equal(q.stats().corruptRegions, 0);
    await q.append(event(3, 120));
    assert.deepEqual((await drainAll(q)).map(idOf), [0, 1, 2, 3]);
    await q.close();
  }
});

void test('a last record with a bad checksum is a torn tail: truncated, and sequence numbers continue from the record before', async () => {
  const dir = newDir();
  const records = await seeded(dir, 3);
  const [seg] = segments(dir);
  flipByte(seg!, startOf(records[2]!) + RECORD_HEADER_BYTES + 10);
  const q = await open(dir);
  assert.equal(q.depth, 2);
  assert.equal(q.stats().truncatedBytes, records[2]!.position.offset - startOf(records[2]!));
  await q.append(event(7, 120));
  const read = await drainAll(q);
  assert.deepEqual(read.map(idOf), [0, 1, 7]);
  assert.deepEqual(read.map((r) => r.sequence), [0, 1, 2]);
});

void test('a corrupt record in the middle of a segment is skipped loudly; the records after it are still delivered', async () => {
  for (const [what, at] of [['payload', RECORD_HEADER_BYTES + 5], ['length field', 9], ['record marker', 0], ['checksum', 29]] as const) {
    const dir = newDir();
    const records = await seeded(dir, 6);
    flipByte(segments(dir)[0]!, startOf(records[2]!) + at);

    const logger = captureLogger();
    const q = await open(dir, { logger });
    assert.equal(q.depth, 6, `${what}: depth counts by sequence, the lost record included until drained`);
    assert.equal(q.stats().corruptRegions, 1, what);
    assert.equal(q.stats().lostRecords, 1, what);
    assert.match(logger.errors.join('\n'), /1 acknowledged usage event\(s\) lost/);
    const batch = await q.readBatch(100);
    assert.deepEqual(batch.records.map(idOf), [0, 1, 3, 4, 5], what);
    assert.equal(batch.skipped.length, 1);
    assert.equal(batch.skipped[0]!.lostRecords, 1);
    assert.equal(batch.skipped[0]!.offset, startOf(records[2]!));
    assert.equal(batch.skipped[0]!.end, startOf(records[3]!));
    await q.commit(batch.end);
    assert.equal(q.depth, 0);
    assert.equal(q.stats().corruptRegions, 1, 'reported once, not again when read');
    await q.close();
  }
});

void test('corruption at the end of a sealed segment, found while draining, counts the records lost up to the next segment', async () => {
  const dir = newDir();
  const records = await seeded(dir, 40, { segmentBytes: 1024 });
  const first = records.filter((r) => r.position.segment === 0);
  assert.ok(first.length >= 3 && first.length < 40);
  const q = await open(dir, { segmentBytes: 1024 });
  // Bit rot after open: the last two records of segment 0.
  flipByte(segments(dir)[0]!, startOf(first.at(-2)!) + 40);
  flipByte(segments(dir)[0]!, startOf(first.at(-1)!) + 40);
  const read = await drainAll(q, 7);
  const expected = range(40).filter((i) => i !== first.length - 1 && i !== first.length - 2);
  assert.deepEqual(read.map(idOf), expected);
  assert.equal(q.stats().lostRecords, 2);
  assert.equal(q.stats().corruptRegions, 1, 'adjacent bad records form one region');
  assert.equal(q.depth, 0);
});

void test('a damaged payload is never returned: a single flipped byte anywhere loses at most the record it hit', async () => {
  const dir = newDir();
  const written = await seeded(dir, 8, {}, 90);
  const [seg] = segments(dir);
  const pristine = readFileSync(seg!);
  const payloads = written.map((r) => r.payload.toString('hex'));
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: SEGMENT_HEADER_BYTES, max: pristine.length - 1 }),
    fc.integer({ min: 1, max: 255 }),
    async (offset, mask) => {
      const damaged = Buffer.from(pristine);
      damaged[offset] = damaged[offset]! ^ mask;
      writeFileSync(seg!, damaged);
      const q = await FallbackQueue.open(dir, { logger: captureLogger() });
      try {
        const read = (await peekAll(q)).map((r) => r.payload.toString('hex'));
        const hit = written.findIndex((r) => offset >= startOf(r) && offset < r.position.offset);
        assert.deepEqual(read, payloads.filter((_, i) => i !== hit));
      } finally {
        await q.close();
      }
    },
  ), { numRuns: 150 });
});

void test('a segment torn while it was being created is re-initialised and used', async () => {
  const dir = newDir();
  await seeded(dir, 5);
  writeFileSync(join(dir, segmentFileName(5)), Buffer.from('KGF'));
  const q = await open(dir);
  assert.equal(q.depth, 5);
  await q.append(event(5, 120));
  assert.deepEqual((await drainAll(q)).map(idOf), range(6));
  assert.equal(statSync(join(dir, segmentFileName(5))).size > SEGMENT_HEADER_BYTES, true);
});

void test('segments left behind by a crash between cursor save and deletion are deleted on open', async () => {
  const dir = newDir();
  const records = await seeded(dir, 40, { segmentBytes: 1024 });
  const cut = records.find((r) => r.position.segment > 0 && r.sequence === r.position.segment)!;
  writeFileSync(join(dir, 'cursor.json'), JSON.stringify({ version: 1, segment: cut.position.segment, offset: SEGMENT_HEADER_BYTES, sequence: cut.sequence }));
  const q = await open(dir, { segmentBytes: 1024 });
  assert.equal(q.depth, 40 - cut.sequence);
  assert.ok(segments(dir).every((p) => Number(p.slice(-24, -4)) >= cut.position.segment));
  assert.deepEqual((await drainAll(q)).map(idOf), range(40 - cut.sequence, cut.sequence));
});

void test('an unreadable cursor file is reported and draining restarts at the oldest segment', async () => {
  const dir = newDir();
  await seeded(dir, 5);
  writeFileSync(join(dir, 'cursor.json'), '{"version":1,"segm');
  const logger: CapturedLogger = captureLogger();
  const q = await open(dir, { logger });
  assert.match(logger.errors.join('\n'), /cursor file is unreadable/);
  assert.deepEqual((await drainAll(q)).map(idOf), range(5));
});
