/**
 * The archive's pieces without a server (budget: 1 s): names, retention arithmetic, the message
 * log format and its damage detection, and the s2 framing check.
 */
import { strict as assert } from 'node:assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { archiveName, archiveTime } from '../../../src/ops/backup/archive.js';
import { CorruptLogError, MessageDigest, MessageLogWriter, readMessageLog, type LogRecord } from '../../../src/ops/backup/message-log.js';
import { parseRetain } from '../../../src/ops/backup/retain.js';
import { checkS2Framing } from '../../../src/ops/backup/s2-framing.js';
import { tempDir } from '../../harness/servers.js';

const records: LogRecord[] = [
  { seq: 3, tsNanos: 1_796_079_654_772_262_187n, subject: 'usage.acme.agentese.invoke', headers: [['Nats-Msg-Id', ['a1']]], data: new TextEncoder().encode('{"id":"a1"}') },
  { seq: 7, tsNanos: 1_796_079_654_772_262_999n, subject: '$KV.kgents_keys.k.abcd', headers: [], data: new Uint8Array(0) },
  { seq: 8, tsNanos: 1n, subject: 'x', headers: [['A', ['1', '2']], ['b', ['']]], data: new Uint8Array([0, 255, 13, 10]) },
];

async function readAll(path: string): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const r of readMessageLog(path)) out.push(r);
  return out;
}

describe('backup archive format', () => {
  test('archive names carry the UTC start time to the second and nothing else parses as one', () => {
    const at = new Date('2026-11-30T02:00:07.250Z');
    assert.equal(archiveName(at), 'kgents-backup-20261130T020007Z');
    assert.equal(archiveName(at, 2), 'kgents-backup-20261130T020007Z-2');
    assert.equal(archiveTime('kgents-backup-20261130T020007Z-2')?.toISOString(), '2026-11-30T02:00:07.000Z');
    for (const other of ['kgents-backup-2026113T020007Z', 'kgents-backup-20261130T020007', 'notes', 'kgents-backup-20261340T020007Z']) {
      assert.equal(archiveTime(other), undefined, other);
    }
  });

  test('--retain takes s, m, h, d, w and refuses anything else', () => {
    assert.equal(parseRetain('7d'), 7 * 86_400_000);
    assert.equal(parseRetain('36h'), 36 * 3_600_000);
    assert.equal(parseRetain('2w'), 14 * 86_400_000);
    for (const bad of ['7', 'd', '0d', '7 days', '-1d', '1.5d', 'week']) assert.equal(parseRetain(bad), undefined, bad);
  });

  test('the message log gives back exactly what was written, and its digest covers time separately', async () => {
    const tmp = tempDir();
    try {
      const path = join(tmp.dir, 'm.kgml');
      const w = await MessageLogWriter.create(path);
      for (const r of records) await w.append(r);
      const file = await w.close();
      assert.equal(file.bytes, readFileSync(path).length);
      const back = await readAll(path);
      assert.deepEqual(back.map((r) => ({ ...r, data: Buffer.from(r.data).toString('hex') })), records.map((r) => ({ ...r, data: Buffer.from(r.data).toString('hex') })));
      const d1 = new MessageDigest();
      for (const r of back) d1.add(r);
      const later = new MessageDigest();
      for (const r of back) later.add({ ...r, tsNanos: r.tsNanos + 5n });
      const [a, b] = [d1.result(), later.result()];
      assert.deepEqual([a.messages, a.first_seq, a.last_seq], [3, 3, 8]);
      assert.equal(a.digest, w.digest.result().digest);
      assert.notEqual(a.digest, b.digest, 'the full digest covers timestamps');
      assert.equal(a.content_digest, b.content_digest, 'the content digest does not');
    } finally {
      tmp.remove();
    }
  });

  test('a torn or foreign log is reported as corrupt, never read as fewer messages', async () => {
    const tmp = tempDir();
    try {
      const path = join(tmp.dir, 'm.kgml');
      const w = await MessageLogWriter.create(path);
      for (const r of records) await w.append(r);
      await w.close();
      const whole = readFileSync(path);
      writeFileSync(path, whole.subarray(0, whole.length - 3));
      await assert.rejects(readAll(path), CorruptLogError);
      writeFileSync(path, Buffer.concat([Buffer.from('NOT-A-LOG/1\n'), whole.subarray(16)]));
      await assert.rejects(readAll(path), /bad magic/);
    } finally {
      tmp.remove();
    }
  });

  test('the s2 framing check accepts a whole stream and finds a cut one', async () => {
    const tmp = tempDir();
    try {
      const path = join(tmp.dir, 's.s2');
      const id = Buffer.from([0xff, 6, 0, 0, ...Buffer.from('S2sTwO')]);
      const body = Buffer.concat([Buffer.alloc(4), Buffer.from('hello tar')]);
      const chunk = Buffer.concat([Buffer.from([0x01, body.length, 0, 0]), body]);
      writeFileSync(path, Buffer.concat([id, chunk]));
      assert.equal(await checkS2Framing(path), undefined);
      writeFileSync(path, Buffer.concat([id, chunk.subarray(0, chunk.length - 2)]));
      assert.match(await checkS2Framing(path) ?? '', /cut short/);
      writeFileSync(path, chunk);
      assert.match(await checkS2Framing(path) ?? '', /not an s2 stream/);
      writeFileSync(path, id);
      assert.match(await checkS2Framing(path) ?? '', /no data chunk/);
    } finally {
      tmp.remove();
    }
  });
});
