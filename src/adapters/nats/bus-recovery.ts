import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from './connection.js';

/** The evidence that a stream serves again; the runtime turns each into an early breaker probe. */
export type BusRecoverySignal = 'leader_elected' | 'stream_info';

export interface BusRecoveryOptions {
  /** The stream whose leader matters (USAGE). */
  readonly stream: string;
  /** Whether anyone needs the evidence now (the circuit is open); the stream-info check runs only then. */
  readonly wanted: () => boolean;
  /** Period of the stream-info check while wanted. Default 2000 ms; 0 turns the check off. */
  readonly checkIntervalMs?: number;
  /** How long one stream-info request may take. Default 1000 ms. */
  readonly checkTimeoutMs?: number;
}

/**
 * Watches for signs that a JetStream stream is served again after an outage:
 *
 * - `leader_elected`: the server's advisory `$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.<stream>`
 *   (payload `io.nats.jetstream.advisory.v1.stream_leader_elected`, with `leader`), sent when a
 *   replicated stream elects a leader, e.g. after its leader was killed;
 * - `stream_info`: while `wanted()`, every `checkIntervalMs` a `$JS.API.STREAM.INFO.<stream>` request
 *   that is answered with a leader (or by a single-node stream). This is the only signal after a
 *   network partition that heals without a reconnect (the connection hung but was never dropped).
 *
 * A check that is still in flight is not repeated. Returns a function that stops watching.
 */
export function watchBusRecovery(conn: NatsConnection, options: BusRecoveryOptions, onSignal: (signal: BusRecoverySignal, detail: string) => void): () => void {
  const sub = conn.nc.subscribe(`$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.${options.stream}`, {
    callback: (err, msg) => {
      if (err) return;
      let leader = '';
      try {
        const named = msg.json<{ leader?: unknown }>().leader;
        if (typeof named === 'string') leader = named;
      } catch {
        // the subject alone is the evidence
      }
      onSignal('leader_elected', leader === '' ? 'stream leader elected' : `stream leader elected: ${leader}`);
    },
  });
  const interval = options.checkIntervalMs ?? 2000;
  let timer: NodeJS.Timeout | undefined;
  let jsm: JetStreamManager | undefined;
  let checking = false;
  const check = async (): Promise<void> => {
    if (checking || !options.wanted() || !conn.isUp) return;
    checking = true;
    try {
      jsm ??= await jetstreamManager(conn.nc, { timeout: options.checkTimeoutMs ?? 1000, checkAPI: false });
      const info = await jsm.streams.info(options.stream);
      const leader = info.cluster?.leader;
      if (!info.cluster || (leader !== undefined && leader !== '')) onSignal('stream_info', leader ? `stream info answered, leader ${leader}` : 'stream info answered');
    } catch {
      // not back yet
    } finally {
      checking = false;
    }
  };
  if (interval > 0) {
    timer = setInterval(() => void check(), interval);
    timer.unref();
  }
  return () => {
    if (timer) clearInterval(timer);
    try {
      sub.unsubscribe();
    } catch {
      // the connection is already closed
    }
  };
}
