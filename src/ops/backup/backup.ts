import { mkdir, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstreamManager, type ConsumerInfo, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '../../adapters/nats/connection.js';
import { redactUrl } from '../../adapters/nats/connection.js';
import { VERSION } from '../../version.js';
import {
  archiveName, FORMAT, LOG_FILE, MANIFEST, MANIFEST_SUM, PARTIAL_SUFFIX, sha256Text, SNAPSHOT_FILE, streamDir,
  type ConsumerEntry, type FileEntry, type Manifest, type StreamEntry,
} from './archive.js';
import { MessageLogWriter } from './message-log.js';
import { readStream } from './read-stream.js';
import { pruneArchives, type PruneResult } from './retain.js';
import { checkS2Framing } from './s2-framing.js';
import { snapshotToFile, type SnapshotStreamState } from './snapshot-protocol.js';

export interface BackupOptions {
  readonly conn: NatsConnection;
  /** Directory the archive is created in (created if missing). */
  readonly dir: string;
  /** Delete this tool's archives older than this many milliseconds after a successful backup. */
  readonly retainMs?: number;
  readonly now?: () => Date;
  readonly log?: (line: string) => void;
  /** Attempts per stream when the stream changed between the snapshot and the message copy. Default 3. */
  readonly attempts?: number;
}

export interface BackupResult {
  readonly name: string;
  readonly path: string;
  readonly manifest: Manifest;
  readonly durationMs: number;
  /** Bytes of the archive on disk. */
  readonly sizeBytes: number;
  readonly messages: number;
  /** Message bytes in the streams, as the server counts them. */
  readonly streamBytes: number;
  readonly pruned?: PruneResult;
}

/** Backs up every stream of the account (KV buckets are streams named KV_<bucket>) into one new archive. */
export async function runBackup(opts: BackupOptions): Promise<BackupResult> {
  const now = opts.now ?? (() => new Date());
  const log = opts.log ?? (() => undefined);
  const started = now();
  const t0 = performance.now();
  await mkdir(opts.dir, { recursive: true });
  const name = await freeName(opts.dir, started);
  const partial = join(opts.dir, `.${name}${PARTIAL_SUFFIX}`);
  const final = join(opts.dir, name);
  await mkdir(partial);
  try {
    const nc = opts.conn.nc;
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const s of jsm.streams.list()) names.push(s.config.name);
    names.sort();
    const streams: StreamEntry[] = [];
    for (const stream of names) {
      const entry = await backupStream(opts, jsm, partial, stream);
      streams.push(entry);
      log(`${stream}: ${entry.messages} messages, seq ${entry.first_seq}..${entry.last_seq}, ${entry.consumers.length} consumer(s), ${entry.method}`);
    }
    const info = nc.info;
    const manifest: Manifest = {
      format: FORMAT,
      tool: 'kgents backup',
      tool_version: VERSION,
      name,
      started_at: started.toISOString(),
      finished_at: now().toISOString(),
      source: {
        servers: opts.conn.urls.map(redactUrl),
        ...(info?.version ? { server_version: info.version } : {}),
        ...(info?.cluster ? { cluster: info.cluster } : {}),
      },
      streams,
      totals: {
        streams: streams.length,
        messages: streams.reduce((n, s) => n + s.messages, 0),
        bytes: streams.reduce((n, s) => n + Object.values(s.files).reduce((m, f) => m + f.bytes, 0), 0),
      },
    };
    const text = `${JSON.stringify(manifest, null, 2)}\n`;
    await writeFile(join(partial, MANIFEST), text, { flag: 'wx' });
    await writeFile(join(partial, MANIFEST_SUM), `${sha256Text(text)}  ${MANIFEST}\n`, { flag: 'wx' });
    await syncDir(partial);
    await rename(partial, final);
    await syncDir(opts.dir);
    const durationMs = performance.now() - t0;
    const pruned = opts.retainMs !== undefined ? await pruneArchives(opts.dir, opts.retainMs, started, name) : undefined;
    return {
      name, path: final, manifest, durationMs,
      sizeBytes: manifest.totals.bytes + Buffer.byteLength(text),
      messages: manifest.totals.messages,
      streamBytes: streams.reduce((n, s) => n + s.state.bytes, 0),
      ...(pruned ? { pruned } : {}),
    };
  } catch (err) {
    await rm(partial, { recursive: true, force: true });
    throw err;
  }
}

async function freeName(dir: string, at: Date): Promise<string> {
  for (let i = 0; ; i++) {
    const name = archiveName(at, i || undefined);
    const taken = await Promise.all([stat(join(dir, name)), stat(join(dir, `.${name}${PARTIAL_SUFFIX}`))].map((p) => p.then(() => true, () => false)));
    if (!taken.some(Boolean)) return name;
  }
}

async function syncDir(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } catch {
    // some filesystems refuse fsync on a directory; the rename is still atomic
  } finally {
    await fh.close();
  }
}

async function durableConsumers(jsm: JetStreamManager, stream: string): Promise<Map<string, ConsumerInfo>> {
  const out = new Map<string, ConsumerInfo>();
  for await (const ci of jsm.consumers.list(stream)) {
    if (ci.config.durable_name) out.set(ci.name, ci);
  }
  return out;
}

function samePosition(a: ConsumerInfo, b: ConsumerInfo | undefined): boolean {
  return !!b && a.delivered.stream_seq === b.delivered.stream_seq && a.delivered.consumer_seq === b.delivered.consumer_seq
    && a.ack_floor.stream_seq === b.ack_floor.stream_seq && a.ack_floor.consumer_seq === b.ack_floor.consumer_seq;
}

function seqPair(p: { consumer_seq: number; stream_seq: number }): { consumer_seq: number; stream_seq: number } {
  return { consumer_seq: p.consumer_seq, stream_seq: p.stream_seq };
}

async function backupStream(opts: BackupOptions, jsm: JetStreamManager, archive: string, stream: string): Promise<StreamEntry> {
  const attempts = opts.attempts ?? 3;
  const nc = opts.conn.nc;
  const dir = streamDir(archive, stream);
  for (let attempt = 1; ; attempt++) {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const before = await durableConsumers(jsm, stream);
    const info = await jsm.streams.info(stream);
    const files: Record<string, FileEntry> = {};
    let config: Record<string, unknown>;
    let state: SnapshotStreamState;
    let method: StreamEntry['method'];
    // Memory streams have no snapshot in nats-server ("not implemented"): copy their messages only.
    if (info.config.storage === 'file') {
      const snap = await snapshotToFile(nc, stream, join(dir, SNAPSHOT_FILE));
      const framing = await checkS2Framing(join(dir, SNAPSHOT_FILE));
      if (framing) throw new Error(`${stream}: the server's snapshot is incomplete: ${framing}`);
      files[SNAPSHOT_FILE] = { bytes: snap.bytes, sha256: snap.sha256 };
      config = snap.config;
      state = snap.state;
      method = 'snapshot';
    } else {
      config = info.config;
      state = info.state;
      method = 'messages';
    }
    const after = await durableConsumers(jsm, stream);
    const writer = await MessageLogWriter.create(join(dir, LOG_FILE));
    try {
      for await (const r of readStream(nc, stream, { firstSeq: state.first_seq, lastSeq: state.last_seq })) await writer.append(r);
    } finally {
      files[LOG_FILE] = await writer.close();
    }
    const d = writer.digest.result();
    // A message removed between the snapshot and the copy (age limit, KV history) makes the two
    // disagree: take both again rather than keep an archive whose halves differ.
    if (d.messages !== state.messages || (d.messages > 0 && d.last_seq !== state.last_seq)) {
      if (attempt >= attempts) {
        throw new Error(`${stream}: the stream changed while it was copied ${attempts} times (snapshot ${state.messages} messages to seq ${state.last_seq}, copy ${d.messages} to seq ${d.last_seq})`);
      }
      opts.log?.(`${stream}: changed during the copy (snapshot ${state.messages}, copy ${d.messages}); again (attempt ${attempt + 1})`);
      continue;
    }
    const consumers: ConsumerEntry[] = [...before.values()].filter((c) => after.has(c.name)).map((c) => {
      const a = after.get(c.name);
      const exact = samePosition(c, a);
      return {
        name: c.name,
        config: c.config,
        delivered: seqPair(c.delivered),
        ack_floor: seqPair(c.ack_floor),
        num_pending: c.num_pending,
        num_ack_pending: c.num_ack_pending,
        position_exact: exact,
        ...(!exact && a ? { delivered_after: seqPair(a.delivered), ack_floor_after: seqPair(a.ack_floor) } : {}),
      };
    });
    const kvBucket = stream.startsWith('KV_') ? stream.slice(3) : undefined;
    return {
      name: stream,
      ...(kvBucket ? { kv_bucket: kvBucket } : {}),
      method,
      config,
      state,
      consumers,
      messages: d.messages,
      first_seq: d.messages > 0 ? d.first_seq : state.first_seq,
      last_seq: d.messages > 0 ? d.last_seq : state.last_seq,
      digest: d.digest,
      content_digest: d.content_digest,
      files,
    };
  }
}
