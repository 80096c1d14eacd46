import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInbox, type NatsConnection as RawNatsConnection } from '@nats-io/transport-node';

/**
 * JetStream's stream snapshot and restore, spoken directly (nats.js does not wrap them); the same
 * protocol `nats stream backup` / `nats stream restore` use (nats-server jetstream_api.go):
 *
 * Snapshot: request `$JS.API.STREAM.SNAPSHOT.<stream>` {deliver_subject, chunk_size, jsck}; the
 * reply carries the stream's config and state at the snapshot. The server then sends the snapshot
 * (an s2-compressed tar of the stream's store, consumers included) to deliver_subject in chunks;
 * each chunk's reply subject `$JS.SNAPSHOT.ACK.<stream>.<id>.<size>.<index>` is the flow-control
 * ack (the server stops sending while more than its window is unacknowledged). An empty message
 * without a reply subject ends it.
 *
 * Restore: request `$JS.API.STREAM.RESTORE.<stream>` {config, state}; the reply names a
 * deliver_subject. Each chunk is a request to it (the server answers empty once it has written
 * the chunk, or "-ERR ..."); an empty request ends the upload, and its answer is the stream-create
 * response (config and state of the restored stream) or an error. The server abandons a restore
 * after 5 s without a chunk.
 */

export interface ApiError {
  readonly code: number;
  readonly err_code?: number;
  readonly description: string;
}

export interface SnapshotStreamState {
  readonly messages: number;
  readonly bytes: number;
  readonly first_seq: number;
  readonly last_seq: number;
  readonly first_ts?: string;
  readonly last_ts?: string;
  readonly num_deleted?: number;
  readonly consumer_count?: number;
  readonly [key: string]: unknown;
}

export interface SnapshotResult {
  readonly config: Record<string, unknown>;
  readonly state: SnapshotStreamState;
  readonly bytes: number;
  readonly sha256: string;
  readonly chunks: number;
}

export class JetStreamApiError extends Error {
  constructor(readonly api: string, readonly error: ApiError) {
    super(`${api}: ${error.description} (code ${error.code}${error.err_code !== undefined ? `, err_code ${error.err_code}` : ''})`);
    this.name = 'JetStreamApiError';
  }
}

/** nats-server's err_code for "stream name already in use, cannot restore". */
export const ERR_STREAM_EXISTS_RESTORE = 10130;

const CHUNK_SIZE = 128 * 1024;

function parseApi<T>(api: string, data: Uint8Array): T {
  const parsed = JSON.parse(new TextDecoder().decode(data)) as T & { error?: ApiError };
  if (parsed.error) throw new JetStreamApiError(api, parsed.error);
  return parsed;
}

/** Writes the snapshot of `stream` (consumers included) to `path`; resolves when the server sent its end. */
export async function snapshotToFile(nc: RawNatsConnection, stream: string, path: string, opts: { timeoutMs?: number; checkMsgs?: boolean } = {}): Promise<SnapshotResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const fh = await open(path, 'wx');
  const hash = createHash('sha256');
  let bytes = 0;
  let chunks = 0;
  // Chunks are written in arrival order; each is acknowledged once on disk, so a slow disk slows
  // the server down instead of filling memory.
  let chain: Promise<void> = Promise.resolve();
  let finish!: () => void;
  let fail!: (err: Error) => void;
  const done = new Promise<void>((resolve, reject) => { finish = resolve; fail = reject; });
  let idle: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(idle);
    idle = setTimeout(() => fail(new Error(`snapshot of ${stream}: no chunk for ${timeoutMs} ms`)), timeoutMs);
  };
  const inbox = createInbox();
  const sub = nc.subscribe(inbox, {
    callback: (err, msg) => {
      if (err) { fail(err); return; }
      arm();
      if (msg.data.length === 0 && !msg.reply) {
        chain = chain.then(() => finish(), (e: unknown) => fail(e instanceof Error ? e : new Error(String(e))));
        return;
      }
      const data = msg.data;
      const reply = msg.reply;
      chain = chain.then(async () => {
        hash.update(data);
        bytes += data.length;
        chunks++;
        await fh.write(data);
        if (reply) msg.respond();
      });
    },
  });
  try {
    await nc.flush();
    arm();
    const res = await nc.request(`$JS.API.STREAM.SNAPSHOT.${stream}`, JSON.stringify({ deliver_subject: inbox, chunk_size: CHUNK_SIZE, jsck: opts.checkMsgs ?? false }), { timeout: timeoutMs });
    const meta = parseApi<{ config: Record<string, unknown>; state: SnapshotStreamState }>(`snapshot ${stream}`, res.data);
    await done;
    await chain;
    await fh.sync();
    return { config: meta.config, state: meta.state, bytes, sha256: hash.digest('hex'), chunks };
  } finally {
    clearTimeout(idle);
    sub.unsubscribe();
    await chain.catch(() => undefined);
    await fh.close();
  }
}

export interface RestoredStream {
  readonly config: Record<string, unknown>;
  readonly state: SnapshotStreamState;
}

/** Uploads a snapshot file as stream `config.name`; the stream must not exist. */
export async function restoreFromFile(nc: RawNatsConnection, config: Record<string, unknown>, state: SnapshotStreamState, path: string, opts: { timeoutMs?: number } = {}): Promise<RestoredStream> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const name = String(config.name);
  const start = await nc.request(`$JS.API.STREAM.RESTORE.${name}`, JSON.stringify({ config, state }), { timeout: timeoutMs });
  const { deliver_subject: deliver } = parseApi<{ deliver_subject: string }>(`restore ${name}`, start.data);
  const dec = new TextDecoder();
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK_SIZE }) as AsyncIterable<Buffer>) {
    const ack = await nc.request(deliver, chunk, { timeout: timeoutMs });
    if (ack.data.length > 0) {
      const text = dec.decode(ack.data);
      if (text.startsWith('-ERR')) throw new Error(`restore ${name}: the server refused a chunk: ${text}`);
    }
  }
  // The server unpacks and checks the whole stream before answering the end: give it longer.
  const end = await nc.request(deliver, new Uint8Array(0), { timeout: Math.max(timeoutMs, 120_000) });
  return parseApi<RestoredStream>(`restore ${name}`, end.data);
}
