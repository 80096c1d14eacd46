import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeliverPolicy, jetstream, jetstreamManager, type ConsumerConfig, type ConsumerInfo, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import type { NatsConnection } from '../../adapters/nats/connection.js';
import { LOG_FILE, readManifest, sha256File, SNAPSHOT_FILE, streamDir, type ConsumerEntry, type Manifest, type StreamEntry } from './archive.js';
import { MessageDigest, readMessageLog, type LogRecord } from './message-log.js';
import { readStream } from './read-stream.js';
import { restoreFromFile } from './snapshot-protocol.js';

export interface RestoreOptions {
  readonly conn: NatsConnection;
  readonly archive: string;
  /** Stream names (or KV bucket names) to restore; default every stream in the archive. */
  readonly streams?: readonly string[];
  /** Delete a stream that exists before restoring it; without it such a stream refuses the restore. */
  readonly force?: boolean;
  /** Replace the streams' replica count (a single server cannot hold an R3 stream). */
  readonly replicas?: number;
  readonly log?: (line: string) => void;
}

export interface StreamRestoreReport {
  readonly name: string;
  readonly method: StreamEntry['method'];
  readonly messages: number;
  readonly first_seq: number;
  readonly last_seq: number;
  /** Message bytes, as the server counts them. */
  readonly bytes: number;
  readonly uploadedBytes: number;
  readonly durationMs: number;
  /** Of durationMs: the restore itself (upload and server-side unpacking, or the replay). */
  readonly restoreMs: number;
  readonly consumers: string[];
  /** Differences from the manifest found after the restore; empty when everything matches. */
  readonly mismatches: string[];
  readonly replaced: boolean;
}

export interface RestoreReport {
  readonly ok: boolean;
  readonly streams: StreamRestoreReport[];
  readonly messages: number;
  /** Message bytes restored, as the server counts them (the streams' state). */
  readonly bytes: number;
  /** Bytes sent to the server (snapshot files, message logs). */
  readonly uploadedBytes: number;
  readonly durationMs: number;
  /** Of durationMs: the restores themselves, without the read-back checks. */
  readonly restoreMs: number;
}

/** A selected stream already exists and --force was not given. */
export class RestoreRefusedError extends Error {
  constructor(readonly existing: readonly string[]) {
    super(`refusing to overwrite existing stream(s) ${existing.join(', ')}: nothing was restored (use --force to delete and replace them)`);
    this.name = 'RestoreRefusedError';
  }
}

/** The archive is damaged: a file does not match its checksum. Nothing of that stream was restored. */
export class ArchiveDamagedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArchiveDamagedError';
  }
}

export function selectStreams(manifest: Manifest, wanted: readonly string[] | undefined): StreamEntry[] {
  if (!wanted || wanted.length === 0) return manifest.streams;
  const out: StreamEntry[] = [];
  for (const w of wanted) {
    const entry = manifest.streams.find((s) => s.name === w || s.kv_bucket === w);
    if (!entry) throw new Error(`stream "${w}" is not in this archive (it has ${manifest.streams.map((s) => s.name).join(', ') || 'no streams'})`);
    if (!out.includes(entry)) out.push(entry);
  }
  return out;
}

async function exists(jsm: JetStreamManager, name: string): Promise<boolean> {
  try {
    await jsm.streams.info(name);
    return true;
  } catch (err) {
    if (/stream not found/i.test(String(err))) return false;
    throw err;
  }
}

/** Restores the selected streams, then checks each against the manifest (counts, sequences, digests, consumers). */
export async function runRestore(opts: RestoreOptions): Promise<RestoreReport> {
  const log = opts.log ?? (() => undefined);
  const t0 = performance.now();
  const manifest = await readManifest(opts.archive);
  const selected = selectStreams(manifest, opts.streams);
  const jsm = await jetstreamManager(opts.conn.nc);
  const existing: string[] = [];
  for (const s of selected) if (await exists(jsm, s.name)) existing.push(s.name);
  if (existing.length > 0 && !opts.force) throw new RestoreRefusedError(existing);
  // Every file is checked before anything on the server changes: a damaged archive must not
  // cost the streams it would replace.
  for (const s of selected) {
    for (const [file, want] of Object.entries(s.files)) {
      const got = await sha256File(join(streamDir(opts.archive, s.name), file)).catch(() => undefined);
      if (!got || got.sha256 !== want.sha256 || got.bytes !== want.bytes) {
        throw new ArchiveDamagedError(`${s.name}/${file} ${got ? 'does not match its checksum' : 'is missing'}: nothing was restored (run kgents backup verify)`);
      }
    }
  }
  const streams: StreamRestoreReport[] = [];
  for (const entry of selected) {
    const replaced = existing.includes(entry.name);
    if (replaced) {
      await jsm.streams.delete(entry.name);
      log(`${entry.name}: deleted the existing stream (--force)`);
    }
    const report = await restoreStream(opts, jsm, entry, replaced);
    streams.push(report);
    log(`${entry.name}: ${report.messages} messages, seq ${report.first_seq}..${report.last_seq}, ${report.consumers.length} consumer(s), ${report.method}, restored in ${(report.restoreMs / 1000).toFixed(2)} s, checked in ${((report.durationMs - report.restoreMs) / 1000).toFixed(2)} s${report.mismatches.length ? `; MISMATCH: ${report.mismatches.join('; ')}` : ''}`);
  }
  return {
    ok: streams.every((s) => s.mismatches.length === 0),
    streams,
    messages: streams.reduce((n, s) => n + s.messages, 0),
    bytes: streams.reduce((n, s) => n + s.bytes, 0),
    uploadedBytes: streams.reduce((n, s) => n + s.uploadedBytes, 0),
    durationMs: performance.now() - t0,
    restoreMs: streams.reduce((n, s) => n + s.restoreMs, 0),
  };
}

function withReplicas(config: Record<string, unknown>, replicas: number | undefined): Record<string, unknown> {
  return replicas === undefined ? config : { ...config, num_replicas: replicas };
}

async function restoreStream(opts: RestoreOptions, jsm: JetStreamManager, entry: StreamEntry, replaced: boolean): Promise<StreamRestoreReport> {
  const t0 = performance.now();
  const nc = opts.conn.nc;
  const dir = streamDir(opts.archive, entry.name);
  const config = withReplicas(entry.config, opts.replicas);
  let bytes: number;
  if (entry.method === 'snapshot') {
    await restoreFromFile(nc, config, entry.state, join(dir, SNAPSHOT_FILE));
    bytes = entry.files[SNAPSHOT_FILE]?.bytes ?? 0;
  } else {
    await replayMessages(opts, jsm, entry, config);
    bytes = entry.files[LOG_FILE]?.bytes ?? 0;
  }
  const restoreMs = performance.now() - t0;
  const mismatches = await checkRestored(opts, jsm, entry);
  return {
    name: entry.name, method: entry.method, messages: entry.messages, first_seq: entry.first_seq, last_seq: entry.last_seq,
    bytes: entry.state.bytes, uploadedBytes: bytes, durationMs: performance.now() - t0, restoreMs, consumers: entry.consumers.map((c) => c.name), mismatches, replaced,
  };
}

/** Waits for the restored stream (and, in a cluster, its consumers) to answer; a new R3 group needs a leader first. */
async function settle<T>(what: string, fn: () => Promise<T>, deadlineMs = 30_000): Promise<T> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > until) throw new Error(`${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      await sleep(250);
    }
  }
}

async function checkRestored(opts: RestoreOptions, jsm: JetStreamManager, entry: StreamEntry): Promise<string[]> {
  const problems: string[] = [];
  // A restored replicated stream is uploaded to one server and caught up by its peers; until its
  // leader has every message it may report (and deliver) less. Wait for the manifest's state.
  const info = await settle(`${entry.name} after restore`, async () => {
    const i = await jsm.streams.info(entry.name);
    if (i.state.messages !== entry.messages || i.state.last_seq !== entry.state.last_seq) throw new Error(`still at ${i.state.messages} messages, last seq ${i.state.last_seq}`);
    return i;
  }, 60_000).catch(() => jsm.streams.info(entry.name));
  const st = info.state;
  if (st.messages !== entry.messages) problems.push(`${st.messages} messages, manifest says ${entry.messages}`);
  // An empty stream reports first_seq 0 or last_seq + 1 depending on its history; only its last counts.
  if (st.last_seq !== entry.state.last_seq || (entry.messages > 0 && st.first_seq !== entry.state.first_seq)) {
    problems.push(`sequences ${st.first_seq}..${st.last_seq}, manifest says ${entry.state.first_seq}..${entry.state.last_seq}`);
  }
  // Message for message against the archive's log, then the digest against the manifest.
  const digest = new MessageDigest();
  const archived = readMessageLog(join(streamDir(opts.archive, entry.name), LOG_FILE))[Symbol.asyncIterator]();
  let firstDifference: string | undefined;
  try {
    const range = { firstSeq: entry.first_seq, lastSeq: entry.messages > 0 ? entry.last_seq : 0, untilLast: true };
    for await (const r of readStream(opts.conn.nc, entry.name, range)) {
      digest.add(r);
      if (firstDifference) continue;
      const a = await archived.next();
      firstDifference = a.done ? `restored seq ${r.seq} is not in the archive` : recordDifference(a.value, r, entry.method === 'snapshot');
    }
    if (!firstDifference) {
      const extra = await archived.next();
      if (!extra.done) firstDifference = `archived seq ${extra.value.seq} is missing after the restore`;
    }
  } finally {
    await archived.return?.(undefined);
  }
  if (firstDifference) problems.push(`first difference from the archive: ${firstDifference}`);
  const d = digest.result();
  // A message-level restore cannot keep the original receive times (the server stamps its own).
  if (entry.method === 'snapshot' ? d.digest !== entry.digest : d.content_digest !== entry.content_digest) {
    problems.push(`the restored messages' ${entry.method === 'snapshot' ? 'digest' : 'content digest'} differs from the manifest`);
  }
  for (const c of entry.consumers) {
    let ci: ConsumerInfo;
    try {
      ci = await settle(`consumer ${c.name}`, () => jsm.consumers.info(entry.name, c.name));
    } catch {
      problems.push(`consumer ${c.name} is missing`);
      continue;
    }
    const problem = positionProblem(c, ci, entry.method);
    if (problem) problems.push(`consumer ${c.name}: ${problem}`);
  }
  return problems;
}

function recordDifference(a: LogRecord, b: LogRecord, withTime: boolean): string | undefined {
  if (a.seq !== b.seq) return `archived seq ${a.seq}, restored seq ${b.seq}`;
  if (a.subject !== b.subject) return `seq ${a.seq}: subject ${a.subject} became ${b.subject}`;
  if (JSON.stringify(a.headers) !== JSON.stringify(b.headers)) return `seq ${a.seq}: headers differ`;
  if (!Buffer.from(a.data).equals(Buffer.from(b.data))) return `seq ${a.seq}: data differs`;
  if (withTime && a.tsNanos !== b.tsNanos) return `seq ${a.seq}: timestamp ${a.tsNanos} became ${b.tsNanos}`;
  return undefined;
}

function positionProblem(c: ConsumerEntry, ci: ConsumerInfo, method: StreamEntry['method']): string | undefined {
  const floor = ci.ack_floor.stream_seq;
  if (method === 'messages') {
    // recreated from the acknowledged floor: the next delivery is the first unacknowledged message
    return ci.delivered.stream_seq === c.ack_floor.stream_seq ? undefined : `starts after stream seq ${ci.delivered.stream_seq}, expected ${c.ack_floor.stream_seq}`;
  }
  const lo = c.ack_floor.stream_seq;
  const hi = c.position_exact ? lo : (c.ack_floor_after?.stream_seq ?? lo);
  if (floor < lo || floor > hi) return `ack floor at stream seq ${floor}, manifest says ${lo === hi ? lo : `${lo}..${hi}`}`;
  const dlo = c.delivered.stream_seq;
  const dhi = c.position_exact ? dlo : (c.delivered_after?.stream_seq ?? dlo);
  if (ci.delivered.stream_seq < dlo || ci.delivered.stream_seq > dhi) return `delivered up to stream seq ${ci.delivered.stream_seq}, manifest says ${dlo === dhi ? dlo : `${dlo}..${dhi}`}`;
  return undefined;
}

const PLACEHOLDER_HEADER = 'Kgents-Restore-Placeholder';

/** A subject the stream takes: its first subject with wildcards filled in, or its name. */
function placeholderSubject(config: StreamConfig): string {
  const first = config.subjects?.[0];
  if (!first) return config.name;
  return first.split('.').map((t) => (t === '*' || t === '>' ? 'kgents-restore' : t)).join('.');
}

/**
 * Message-level restore for streams without a snapshot: the stream is created empty, each message
 * published again in order; sequence gaps are kept by publishing a placeholder and deleting it, and
 * a first sequence above 1 by purging up to it. Durable consumers are recreated to deliver from
 * their first unacknowledged message.
 */
async function replayMessages(opts: RestoreOptions, jsm: JetStreamManager, entry: StreamEntry, config: Record<string, unknown>): Promise<void> {
  const nc = opts.conn.nc;
  const js = jetstream(nc);
  const original = config as unknown as StreamConfig;
  // The smallest duplicate window the server takes (100 ms): replaying messages that were minutes
  // apart within milliseconds must not turn distinct messages with an equal Nats-Msg-Id into
  // duplicates. Set back afterwards.
  await jsm.streams.add({ ...original, duplicate_window: 100_000_000 });
  let next = 1;
  const firstSeq = entry.state.first_seq;
  const inFlight: { seq: number; ack: Promise<{ seq: number; duplicate: boolean }> }[] = [];
  const drain = async (limit: number): Promise<void> => {
    while (inFlight.length > limit) {
      const p = inFlight.shift();
      if (!p) break;
      const ack = await p.ack;
      if (ack.seq !== p.seq || ack.duplicate) throw new Error(`${entry.name}: replayed message ${p.seq} was stored as ${ack.seq}${ack.duplicate ? ' (duplicate)' : ''}`);
    }
  };
  const placeholders: number[] = [];
  const publish = (r: Pick<LogRecord, 'subject' | 'headers' | 'data'>, seq: number): void => {
    const h = natsHeaders();
    for (const [k, values] of r.headers) for (const v of values) h.append(k, v);
    inFlight.push({ seq, ack: js.publish(r.subject, r.data, { headers: h, timeout: 30_000 }) });
  };
  // Placeholders for the sequences below the first (the purge below removes them in one step;
  // purging an empty R3 stream up to a sequence ahead of it trips nats-server 2.9's replication).
  while (next < firstSeq) {
    publish({ subject: placeholderSubject(original), headers: [[PLACEHOLDER_HEADER, ['head']]], data: new Uint8Array(0) }, next++);
    if (inFlight.length >= 512) await drain(256);
  }
  await drain(0);
  if (firstSeq > 1) await jsm.streams.purge(entry.name, { seq: firstSeq });
  for await (const r of readMessageLog(join(streamDir(opts.archive, entry.name), LOG_FILE))) {
    while (next < r.seq) {
      publish({ subject: r.subject, headers: [[PLACEHOLDER_HEADER, ['gap']]], data: new Uint8Array(0) }, next);
      placeholders.push(next++);
    }
    publish(r, next++);
    if (inFlight.length >= 512) await drain(256);
  }
  await drain(0);
  // Sequences after the last message (deleted at the end) are not kept: JetStream restarts there anyway.
  for (const seq of placeholders) await jsm.streams.deleteMessage(entry.name, seq, false);
  await jsm.streams.update(entry.name, { ...original });
  for (const c of entry.consumers) {
    const cfg = { ...(c.config as unknown as ConsumerConfig) };
    const from = c.ack_floor.stream_seq + 1;
    await jsm.consumers.add(entry.name, { ...cfg, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from });
  }
}
