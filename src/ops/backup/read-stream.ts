import { createInbox, type Msg, type NatsConnection as RawNatsConnection } from '@nats-io/transport-node';
import type { LogRecord } from './message-log.js';

export interface ReadRange {
  readonly firstSeq: number;
  /** Stop after this sequence even if the stream has grown since. */
  readonly lastSeq: number;
  /** Give up when no message arrives for this long. Default 30000 ms. */
  readonly idleTimeoutMs?: number;
  /**
   * lastSeq is a message that exists and nothing is removed meanwhile (a restored stream): keep
   * reading until it arrives, even when the consumer reports nothing pending (a consumer placed on
   * a replica that is still catching up does). Otherwise "nothing pending" ends the read.
   */
  readonly untilLast?: boolean;
}

/** `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts nanos>.<pending>` (and the 12-token form with domain and account hash). */
function parseAckSubject(reply: string): { seq: number; consumerSeq: number; tsNanos: bigint; pending: number } | undefined {
  const t = reply.split('.');
  const base = t.length === 9 ? 4 : t.length >= 12 ? 7 : -1;
  if (base < 0 || t[0] !== '$JS' || t[1] !== 'ACK') return undefined;
  return { seq: Number(t[base + 1]), consumerSeq: Number(t[base + 2]), tsNanos: BigInt(t[base + 3] ?? '0'), pending: Number(t[base + 4]) };
}

function headerPairs(m: Msg): [string, string[]][] {
  const out: [string, string[]][] = [];
  if (m.headers) for (const [k, v] of m.headers) out.push([k, [...v]]);
  return out;
}

const PULL_BATCH = 10_000;
const PULL_MAX_BYTES = 16 * 1024 * 1024;
const PULL_EXPIRES_NS = 1_000_000_000;

/**
 * Every message of a stream from firstSeq to lastSeq in order. A short-lived pull consumer
 * (ephemeral, no acks, in memory) is asked for up to 10,000 messages or 16 MiB at a time, which
 * bounds memory and paces the server; the sequence and the exact nanosecond timestamp come from
 * each message's `$JS.ACK` reply subject. Plain requests and subscriptions rather than nats.js's
 * ordered consumer: about three times the throughput here, and reading is most of a backup's
 * time. Deleted sequences are simply absent, so gaps come out as they are; a delivery lost on the
 * wire (a consumer sequence skipped) fails the read instead of going unseen.
 */
export async function* readStream(nc: RawNatsConnection, stream: string, range: ReadRange): AsyncGenerator<LogRecord> {
  if (range.lastSeq < range.firstSeq || range.lastSeq === 0) return;
  const idleMs = range.idleTimeoutMs ?? 30_000;
  const inbox = createInbox();
  const consumerName = `kgents_backup_${inbox.split('.').at(-1) ?? ''}`;
  const queue: LogRecord[] = [];
  let failure: Error | undefined;
  let finished = false;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  let expectedConsumerSeq = 1;
  let inThisPull = 0;
  let pullDone = false;
  let emptyPull = false;
  let emptyPulls = 0;
  let lastActivity = performance.now();
  const pull = (): void => {
    inThisPull = 0;
    pullDone = false;
    nc.publish(`$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumerName}`, JSON.stringify({ batch: PULL_BATCH, max_bytes: PULL_MAX_BYTES, expires: PULL_EXPIRES_NS }), { reply: inbox });
  };
  const sub = nc.subscribe(inbox, {
    callback: (err, m) => {
      if (err) { failure = err; notify(); return; }
      lastActivity = performance.now();
      if (m.headers && m.data.length === 0 && m.headers.code >= 100) {
        const code = m.headers.code;
        if (code === 100) return;
        // 404/408: the pull ended (expired, or nothing to send yet); 409: it hit its byte limit.
        // An empty one is asked about below: a freshly restored stream can answer before it is ready.
        if ((code === 404 || code === 408) && inThisPull === 0) emptyPull = true;
        else if (code === 404 || code === 408 || code === 409) pullDone = true;
        else failure = new Error(`reading ${stream}: the server ended the pull with ${code} ${m.headers.description}`);
        notify();
        return;
      }
      const ack = m.reply ? parseAckSubject(m.reply) : undefined;
      if (!ack) { failure = new Error(`reading ${stream}: a message without JetStream metadata`); notify(); return; }
      if (ack.consumerSeq !== expectedConsumerSeq) {
        failure = new Error(`reading ${stream}: delivery ${expectedConsumerSeq} was lost on the way (got ${ack.consumerSeq}); try again`);
        notify();
        return;
      }
      expectedConsumerSeq++;
      inThisPull++;
      emptyPulls = 0;
      if (inThisPull >= PULL_BATCH) pullDone = true;
      if (ack.seq > range.lastSeq) { finished = true; notify(); return; }
      queue.push({ seq: ack.seq, tsNanos: ack.tsNanos, subject: m.subject, headers: headerPairs(m), data: m.data });
      if (ack.seq >= range.lastSeq || (!range.untilLast && ack.pending === 0)) finished = true;
      notify();
    },
  });
  try {
    const res = await nc.request(`$JS.API.CONSUMER.CREATE.${stream}.${consumerName}`, JSON.stringify({
      stream_name: stream,
      config: {
        name: consumerName, deliver_policy: 'by_start_sequence', opt_start_seq: Math.max(1, range.firstSeq),
        ack_policy: 'none', replay_policy: 'instant', inactive_threshold: 60_000_000_000, mem_storage: true, num_replicas: 1,
      },
    }), { timeout: 30_000 });
    const created = JSON.parse(new TextDecoder().decode(res.data)) as { error?: { description: string } };
    if (created.error) throw new Error(`reading ${stream}: cannot create the copy consumer: ${created.error.description}`);
    pull();
    for (;;) {
      if (queue.length > 0) {
        const batch = queue.splice(0, queue.length);
        for (const r of batch) yield r;
        continue;
      }
      if (failure) throw failure;
      if (finished) return;
      if (pullDone) {
        pull();
        continue;
      }
      if (emptyPull) {
        emptyPull = false;
        const info = await nc.request(`$JS.API.CONSUMER.INFO.${stream}.${consumerName}`, '', { timeout: 30_000 });
        const ci = JSON.parse(new TextDecoder().decode(info.data)) as { num_pending?: number; error?: { description: string } };
        if (ci.error) throw new Error(`reading ${stream}: ${ci.error.description}`);
        if ((ci.num_pending ?? 0) === 0 && !range.untilLast) return;
        if (++emptyPulls * 1000 > idleMs) throw new Error(`reading ${stream}: ${ci.num_pending ?? 0} messages pending, last sequence ${range.lastSeq} not reached, nothing delivered for ${idleMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 100));
        pull();
        continue;
      }
      const timedOut = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(true), PULL_EXPIRES_NS / 1e6 + 2000);
        wake = () => { clearTimeout(timer); resolve(false); };
      });
      if (timedOut && queue.length === 0 && !failure && !finished && !pullDone && !emptyPull) {
        // Not even the pull's expiry came back: a consumer on a stream whose group is still
        // electing or catching up can drop the request. Ask again, within the idle limit.
        if (performance.now() - lastActivity > idleMs) throw new Error(`reading ${stream}: no message for ${idleMs} ms`);
        pull();
      }
    }
  } finally {
    sub.unsubscribe();
    await nc.request(`$JS.API.CONSUMER.DELETE.${stream}.${consumerName}`, '', { timeout: 5000 }).catch(() => undefined);
  }
}
