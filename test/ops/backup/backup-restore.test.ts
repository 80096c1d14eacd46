/**
 * kgents backup / restore / backup verify on real nats-server clusters (budget: 2.5 minutes).
 * A 3-node cluster gets 100k usage events in USAGE (with a gap), a real key and tenant in the KV
 * buckets, the OpenMeter exporter's durable consumer acknowledged half-way, and a memory stream
 * (copied message by message). It is backed up with the CLI, restored with the CLI into a brand-new
 * 3-node cluster, compared message for message, and the API then serves the old key there while
 * its exporter resumes at the first unexported event.
 */
import { execFile } from 'node:child_process';
import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync, openSync, readSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AckPolicy, jetstream, jetstreamManager, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import { connectNats, type NatsConnection } from '../../../src/adapters/nats/connection.js';
import { USAGE_STREAM, usageSubject } from '../../../src/adapters/nats/streams.js';
import { DEFAULT_DURABLE } from '../../../src/adapters/openmeter/exporter.js';
import { usageEvent, type UsageEvent } from '../../../src/domain/metering/usage-event.js';
import { archiveName, LOG_FILE, SNAPSHOT_FILE } from '../../../src/ops/backup/archive.js';
import type { LogRecord } from '../../../src/ops/backup/message-log.js';
import { readStream } from '../../../src/ops/backup/read-stream.js';
import { startApi } from '../../harness/api-instance.js';
import { createKey } from '../../harness/fixtures.js';
import { startOpenMeterStandIn, type OpenMeterStandIn } from '../../harness/openmeter-standin.js';
import { CLI } from '../../harness/serve-process.js';
import { startNatsCluster, tempDir } from '../../harness/servers.js';

const EVENTS = 100_000;
const HALF = EVENTS / 2;
const GAP_SEQ = 70_000;
const OM_KEY = 'om-backup-test-key';

interface CliResult { code: number; stdout: string; stderr: string }

function kgents(args: string[], natsUrls: string[], dataDir: string): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], {
      env: { ...process.env, NATS_URLS: natsUrls.join(','), DATA_DIR: dataDir, EMBEDDED_SERVICES: 'off' },
      maxBuffer: 16 * 1024 * 1024,
    }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function makeEvent(i: number): UsageEvent {
  return usageEvent({
    id: randomUUID(), type: 'agentese.invoke', tenant: i % 2 ? 'acme' : 'beta', time: new Date(),
    data: { path: 'world.house.manifest', aspect: 'manifest', tokens: i % 97, status: 200, latency_ms: 3, key_prefix: 'abcd1234', request_id: `r-${i}` },
  });
}

/**
 * Fast batched publishes: 5000 core publishes (each with its event id as Nats-Msg-Id, as the API
 * does), then one JetStream publish repeating the batch's last id: the server handles a
 * connection's messages in order, so its ack (a duplicate, with the last sequence) proves the
 * whole batch was stored.
 */
async function publishEvents(nc: NatsConnection, events: readonly UsageEvent[]): Promise<void> {
  const js = jetstream(nc.nc);
  for (let i = 0; i < events.length; i += 5000) {
    const batch = events.slice(i, i + 5000);
    let last: UsageEvent | undefined;
    for (const ev of batch) {
      const h = headers();
      h.set('Nats-Msg-Id', ev.id);
      nc.nc.publish(usageSubject(ev.subject, ev.type), JSON.stringify(ev), { headers: h });
      last = ev;
    }
    if (!last) continue;
    const ack = await js.publish(usageSubject(last.subject, last.type), JSON.stringify(last), { msgID: last.id, timeout: 30_000 });
    assert.ok(ack.duplicate, 'the barrier repeats a stored event');
  }
}

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function allRecords(nc: NatsConnection, jsm: JetStreamManager, stream: string): Promise<LogRecord[]> {
  const st = (await jsm.streams.info(stream)).state;
  const out: LogRecord[] = [];
  if (st.messages === 0) return out;
  // every stream here ends with a message (no tail deletions), and nothing writes them now
  for await (const r of readStream(nc.nc, stream, { firstSeq: st.first_seq, lastSeq: st.last_seq, untilLast: true })) out.push(r);
  return out;
}

function flipByte(path: string, at: number): void {
  const fd = openSync(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, at);
    b[0] = (b[0] ?? 0) ^ 0xff;
    writeSync(fd, b, 0, 1, at);
  } finally {
    closeSync(fd);
  }
}

describe('kgents backup, restore and verify on real 3-node clusters', () => {
  let source: Awaited<ReturnType<typeof startNatsCluster>>;
  let target: Awaited<ReturnType<typeof startNatsCluster>>;
  let srcConn: NatsConnection;
  let dstConn: NatsConnection;
  const work = tempDir('kgents-backup-test-');
  const backups = join(work.dir, 'backups');
  let archive = '';
  let events: UsageEvent[] = [];
  let apiKey = '';
  let standIn: OpenMeterStandIn;

  before(async () => {
    [source, target] = await Promise.all([startNatsCluster(3), startNatsCluster(3)]);
    standIn = await startOpenMeterStandIn({ apiKey: OM_KEY });
    srcConn = await connectNats(source.urls, { name: 'backup-test-source' });
    dstConn = await connectNats(target.urls, { name: 'backup-test-target' });
    events = Array.from({ length: EVENTS }, (_, i) => makeEvent(i));

    // The API on the source: creates the streams and KV buckets (R3), holds a real key, and its
    // exporter exports the first half of the events, then stops with the consumer half-way.
    const api = await startApi({
      NATS_URLS: source.urls.join(','), NATS_REPLICAS: '3', KEY_STORE: 'nats', DATA_DIR: join(work.dir, 'api-src'),
      OPENMETER_URL: standIn.url, OPENMETER_API_KEY: OM_KEY, EXPORTER_BATCH_SIZE: '1000',
    }, 'backup-src');
    try {
      apiKey = (await createKey(api.services.keys, 'acme', 'enterprise', ['read', 'write'])).key;
      const t0 = performance.now();
      await publishEvents(srcConn, events.slice(0, HALF));
      const t1 = performance.now();
      await waitFor('the exporter to export the first half', () => standIn.received().length >= HALF, 90_000);
      const jsm = await jetstreamManager(srcConn.nc);
      await waitFor('the exporter to acknowledge the first half', async () => {
        const ci = await jsm.consumers.info(USAGE_STREAM, DEFAULT_DURABLE);
        return ci.ack_floor.stream_seq === HALF && ci.num_ack_pending === 0;
      });
      await api.close();
      const t2 = performance.now();
      await publishEvents(srcConn, events.slice(HALF));
      const t3 = performance.now();
      assert.equal((await jsm.streams.info(USAGE_STREAM)).state.messages, EVENTS);
      console.log(`# filled USAGE with ${EVENTS} events in ${((t1 - t0 + t3 - t2) / 1000).toFixed(1)} s; the exporter exported the first half in ${((t2 - t1) / 1000).toFixed(1)} s`);
    } catch (err) {
      await api.close();
      throw err;
    }
    const jsm = await jetstreamManager(srcConn.nc);
    // A gap after the exporter's position: sequences must come back exactly, gap included.
    await jsm.streams.deleteMessage(USAGE_STREAM, GAP_SEQ, false);
    // A memory stream: no snapshot exists for it, so it is copied message by message.
    await jsm.streams.add({ name: 'SCRATCH', subjects: ['scratch.>'], storage: StorageType.Memory, num_replicas: 3 });
    const js = jetstream(srcConn.nc);
    for (let i = 1; i <= 50; i++) await js.publish(`scratch.${i % 3}`, `m${i}`, i % 5 === 0 ? { msgID: `s-${i}` } : {});
    await jsm.streams.purge('SCRATCH', { seq: 11 });
    await jsm.streams.deleteMessage('SCRATCH', 20, false);
    await jsm.streams.deleteMessage('SCRATCH', 30);
    await jsm.consumers.add('SCRATCH', { durable_name: 'scratch-reader', ack_policy: AckPolicy.Explicit });
    const scratch = await js.consumers.get('SCRATCH', 'scratch-reader');
    const batch = await scratch.fetch({ max_messages: 14, expires: 2000 });
    for await (const m of batch) m.ack();
    await waitFor('the scratch consumer acks', async () => (await jsm.consumers.info('SCRATCH', 'scratch-reader')).ack_floor.stream_seq === 25);
  });

  after(async () => {
    await srcConn?.close();
    await dstConn?.close();
    await standIn?.close();
    await Promise.all([source?.cleanup(), target?.cleanup()]);
    work.remove();
  });

  test('a backup of a 3-node cluster restored into a new cluster has every message, key and consumer position', async () => {
    const b = await kgents(['backup', '--to', backups, '--metrics-file', join(work.dir, 'metrics', 'backup.prom'), '--json'], source.urls, work.dir);
    assert.equal(b.code, 0, b.stderr);
    const backup = JSON.parse(b.stdout) as { archive: string; messages: number; duration_s: number; messages_per_s: number; mb_per_s: number; stream_bytes: number; size_bytes: number; streams: number };
    archive = backup.archive;
    console.log(`# backup: ${backup.streams} streams, ${backup.messages} messages, ${(backup.stream_bytes / 1e6).toFixed(1)} MB stream data, archive ${(backup.size_bytes / 1e6).toFixed(1)} MB, ${backup.duration_s} s: ${backup.messages_per_s} messages/s, ${backup.mb_per_s} MB/s`);
    assert.match(archive, /kgents-backup-\d{8}T\d{6}Z$/);
    const metrics = readFileSync(join(work.dir, 'metrics', 'backup.prom'), 'utf8');
    for (const name of ['kgents_backup_last_success_timestamp_seconds', 'kgents_backup_last_size_bytes', 'kgents_backup_last_duration_seconds']) {
      assert.match(metrics, new RegExp(`^${name} \\d+(\\.\\d+)?$`, 'm'), name);
    }
    const manifest = JSON.parse(readFileSync(join(archive, 'manifest.json'), 'utf8')) as { streams: { name: string; method: string; messages: number; first_seq: number; last_seq: number; consumers: { name: string; ack_floor: { stream_seq: number } }[] }[] };
    const usage = manifest.streams.find((s) => s.name === USAGE_STREAM);
    assert.deepEqual({ method: usage?.method, messages: usage?.messages, first: usage?.first_seq, last: usage?.last_seq }, { method: 'snapshot', messages: EVENTS - 1, first: 1, last: EVENTS });
    assert.equal(usage?.consumers.find((c) => c.name === DEFAULT_DURABLE)?.ack_floor.stream_seq, HALF);
    assert.ok(manifest.streams.some((s) => s.name === 'KV_kgents_keys' || s.name.startsWith('KV_')), 'KV buckets are in the archive');
    assert.equal(manifest.streams.find((s) => s.name === 'SCRATCH')?.method, 'messages');

    const r = await kgents(['restore', archive, '--json'], target.urls, work.dir);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const restore = JSON.parse(r.stdout) as { ok: boolean; messages: number; bytes: number; uploadedBytes: number; durationMs: number; restoreMs: number; messages_per_s: number; mb_per_s: number; restore_only_messages_per_s: number; restore_only_mb_per_s: number; streams: { name: string; mismatches: string[] }[] };
    console.log(`# restore: ${restore.messages} messages, ${(restore.bytes / 1e6).toFixed(1)} MB stream data (${(restore.uploadedBytes / 1e6).toFixed(1)} MB uploaded); restore ${(restore.restoreMs / 1000).toFixed(2)} s: ${restore.restore_only_messages_per_s} messages/s, ${restore.restore_only_mb_per_s.toFixed(2)} MB/s; with the read-back check ${(restore.durationMs / 1000).toFixed(2)} s: ${restore.messages_per_s} messages/s, ${restore.mb_per_s.toFixed(2)} MB/s`);
    assert.ok(restore.ok, JSON.stringify(restore.streams));

    // Message for message, every stream: sequence, timestamp, subject, headers, data.
    const src = await jetstreamManager(srcConn.nc);
    const dst = await jetstreamManager(dstConn.nc);
    const names: string[] = [];
    for await (const s of src.streams.list()) names.push(s.config.name);
    assert.ok(names.length >= 5, `streams: ${names.join(', ')}`);
    for (const name of names) {
      const [a, bInfo] = await Promise.all([src.streams.info(name), dst.streams.info(name)]);
      assert.equal(bInfo.config.num_replicas, a.config.num_replicas, `${name} replicas`);
      assert.deepEqual({ ...bInfo.config, ...(name === 'SCRATCH' ? {} : {}) }, a.config, `${name} config`);
      const [ra, rb] = [await allRecords(srcConn, src, name), await allRecords(dstConn, dst, name)];
      assert.equal(rb.length, ra.length, `${name} message count`);
      for (let i = 0; i < ra.length; i++) {
        const x = ra[i];
        const y = rb[i];
        assert.ok(x && y);
        if (x.seq !== y.seq || x.subject !== y.subject || !Buffer.from(x.data).equals(Buffer.from(y.data)) || JSON.stringify(x.headers) !== JSON.stringify(y.headers)) {
          assert.fail(`${name} message ${i}: seq ${x.seq}/${y.seq}, subject ${x.subject}/${y.subject}`);
        }
        // A memory stream is replayed message by message: the server stamps its own receive times.
        if (name !== 'SCRATCH' && x.tsNanos !== y.tsNanos) assert.fail(`${name} seq ${x.seq}: timestamp ${x.tsNanos} became ${y.tsNanos}`);
      }
      if (name === USAGE_STREAM) assert.ok(!ra.some((m) => m.seq === GAP_SEQ) && ra.length === EVENTS - 1, 'the gap is kept');
    }
    const scratch = await dst.consumers.info('SCRATCH', 'scratch-reader');
    assert.equal(scratch.delivered.stream_seq, 25, 'the memory stream consumer starts after its acknowledged floor');
    const exporterPos = await dst.consumers.info(USAGE_STREAM, DEFAULT_DURABLE);
    assert.deepEqual([exporterPos.ack_floor.stream_seq, exporterPos.delivered.stream_seq, exporterPos.num_pending], [HALF, HALF, EVENTS - HALF - 1]);

    // The API on the restored cluster: the key made before the backup works, and its exporter
    // resumes with the first event it had not exported.
    const standIn2 = await startOpenMeterStandIn({ apiKey: OM_KEY });
    const api = await startApi({
      NATS_URLS: target.urls.join(','), NATS_REPLICAS: '3', KEY_STORE: 'nats', DATA_DIR: join(work.dir, 'api-dst'),
      OPENMETER_URL: standIn2.url, OPENMETER_API_KEY: OM_KEY, EXPORTER_BATCH_SIZE: '1000',
    }, 'backup-dst');
    try {
      const ok = await api.app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': apiKey, 'x-request-id': 'after-restore' }, payload: { path: 'world.house.manifest' } });
      assert.equal(ok.statusCode, 200, ok.body);
      const bad = await api.app.inject({ method: 'POST', url: '/v1/agentese/invoke', headers: { 'x-api-key': `${apiKey.slice(0, -2)}xx` }, payload: { path: 'world.house.manifest' } });
      assert.equal(bad.statusCode, 401);
      await waitFor('the exporter on the restored cluster to send a batch', () => standIn2.received().length >= 1000);
      const first = standIn2.received().slice(0, 1000).map((e) => e.id);
      assert.equal(first[0], events[HALF]?.id, 'the first exported event is the first one not exported before the backup');
      assert.deepEqual(first, events.slice(HALF, HALF + 1000).map((e) => e.id));
    } finally {
      await api.close();
      await standIn2.close();
    }
  });

  test('verify passes an intact archive and finds a corrupted byte in a snapshot or a message log', async () => {
    assert.ok(archive, 'the first test made an archive');
    const good = await kgents(['backup', 'verify', archive], [], work.dir);
    assert.equal(good.code, 0, good.stdout + good.stderr);
    assert.match(good.stdout, /: OK/);
    console.log(`# verify: ${good.stdout.trim().split('\n').at(-1)?.trim()}`);
    const damaged = join(work.dir, 'damaged');
    mkdirSync(damaged);
    const copy = (from: string, to: string): void => {
      mkdirSync(to, { recursive: true });
      for (const e of readdirSync(from, { withFileTypes: true })) {
        if (e.isDirectory()) copy(join(from, e.name), join(to, e.name));
        else writeFileSync(join(to, e.name), readFileSync(join(from, e.name)));
      }
    };
    const bad = join(damaged, archiveName(new Date()));
    copy(archive, bad);
    flipByte(join(bad, 'streams', USAGE_STREAM, LOG_FILE), 5_000_000);
    const v1 = await kgents(['backup', 'verify', bad], [], work.dir);
    assert.equal(v1.code, 4, v1.stdout);
    assert.match(v1.stdout, /USAGE: .*DAMAGED[\s\S]*messages\.kgml: sha256 differs/);
    flipByte(join(bad, 'streams', USAGE_STREAM, LOG_FILE), 5_000_000);
    flipByte(join(bad, 'streams', USAGE_STREAM, SNAPSHOT_FILE), 1000);
    const v2 = await kgents(['backup', 'verify', bad, '--json'], [], work.dir);
    assert.equal(v2.code, 4);
    const report = JSON.parse(v2.stdout) as { ok: boolean; streams: { name: string; problems: string[] }[] };
    assert.deepEqual(report.streams.filter((s) => s.problems.length > 0).map((s) => s.name), [USAGE_STREAM]);
    assert.match(report.streams.find((s) => s.name === USAGE_STREAM)?.problems.join() ?? '', /snapshot\.tar\.s2: sha256 differs/);
    // and restore refuses the damaged archive before touching the server
    const r = await kgents(['restore', bad, '--streams', USAGE_STREAM, '--force'], target.urls, work.dir);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /does not match its checksum: nothing was restored/);
  });

  test('restore refuses an existing stream without --force and changes nothing; with --force it replaces it', async () => {
    const dst = await jetstreamManager(dstConn.nc);
    const before = await dst.streams.info(USAGE_STREAM);
    const r = await kgents(['restore', archive], target.urls, work.dir);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /refusing to overwrite existing stream\(s\) .*USAGE.*use --force/);
    assert.equal((await dst.streams.info(USAGE_STREAM)).created, before.created, 'USAGE was not touched');
    const scratchOnly = await kgents(['restore', archive, '--streams', 'SCRATCH'], target.urls, work.dir);
    assert.equal(scratchOnly.code, 3);
    const kvs = (JSON.parse(readFileSync(join(archive, 'manifest.json'), 'utf8')) as { streams: { name: string; kv_bucket?: string }[] }).streams.filter((s) => s.kv_bucket);
    const bucket = kvs[0]?.kv_bucket ?? '';
    const forced = await kgents(['restore', archive, '--streams', `SCRATCH,${bucket}`, '--force'], target.urls, work.dir);
    assert.equal(forced.code, 0, forced.stdout + forced.stderr);
    assert.match(forced.stdout, /SCRATCH: .*\(replaced\)/);
    assert.match(forced.stdout, new RegExp(`KV_${bucket}: .*\\(replaced\\)`));
  });

  test('--retain deletes only this tool\'s archives older than the limit', async () => {
    const old = (name: string, manifest: string | undefined): void => {
      mkdirSync(join(backups, name), { recursive: true });
      if (manifest !== undefined) writeFileSync(join(backups, name, 'manifest.json'), manifest);
    };
    old('kgents-backup-20200101T020000Z', JSON.stringify({ tool: 'kgents backup' }));
    old('.kgents-backup-20200102T020000Z.partial', undefined);
    old('kgents-backup-20200103T020000Z', JSON.stringify({ tool: 'something else' }));
    old('kgents-backup-20200104T020000Z', undefined);
    old('my-notes', undefined);
    writeFileSync(join(backups, 'kgents-backup-20200105T020000Z'), 'a file, not an archive');
    const b = await kgents(['backup', '--to', backups, '--retain', '7d'], source.urls, work.dir);
    assert.equal(b.code, 0, b.stderr);
    console.log(`# second backup with --retain 7d: ${b.stdout.trim().split('\n').slice(1).map((l) => l.trim()).join(' | ')}`);
    const left = readdirSync(backups).sort();
    assert.ok(!left.includes('kgents-backup-20200101T020000Z') && !left.includes('.kgents-backup-20200102T020000Z.partial'), left.join(', '));
    for (const kept of ['kgents-backup-20200103T020000Z', 'kgents-backup-20200104T020000Z', 'my-notes', 'kgents-backup-20200105T020000Z', archive.split('/').at(-1) ?? '']) {
      assert.ok(left.includes(kept), `${kept} kept (${left.join(', ')})`);
    }
    assert.equal(left.filter((n) => /^kgents-backup-\d{8}T\d{6}Z(-\d+)?$/.test(n) && !n.startsWith('kgents-backup-2020')).length, 2, 'both new archives kept');
    const bad = await kgents(['backup', '--to', backups, '--retain', 'week'], source.urls, work.dir);
    assert.equal(bad.code, 2);
  });
});
