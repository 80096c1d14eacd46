import {
  AckPolicy,
  DeliverPolicy,
  ReplayPolicy,
  jetstream,
  jetstreamManager,
  type Consumer,
  type ConsumerConfig,
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { headers, nanos } from '@nats-io/transport-node';
import { Registry } from 'prom-client';
import type { NatsConnection } from '../nats/connection.js';
import { USAGE_DLQ_SUBJECT, USAGE_STREAM } from '../nats/streams.js';
import { usageMessageElements } from '../../domain/metering/usage-message.js';
import { OpenMeterClient, redact, type PostResult } from './client.js';
import { ExporterMetrics } from './metrics.js';

export interface ExporterLogger {
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

export interface BackoffOptions {
  /** First retry waits up to this long. Default 250 ms. */
  readonly baseMs?: number;
  /** No retry waits longer (Retry-After aside). Default 30000 ms. */
  readonly capMs?: number;
}

export interface UsageExporterOptions {
  /** The process's NATS connection; the exporter neither opens nor closes it. */
  readonly nats: NatsConnection;
  /** OpenMeter base URL (OPENMETER_URL); events go to `<url>/api/v1/events`. */
  readonly url: string;
  /** OPENMETER_API_KEY. Never logged. */
  readonly apiKey: string;
  /** Events per OpenMeter request (EXPORTER_BATCH_SIZE). Default 100. */
  readonly batchSize?: number;
  /** Durable consumer name on USAGE, shared by every exporter replica. Default `openmeter-exporter`. */
  readonly durableName?: string;
  /** Consumer ack wait: an unacknowledged message goes to another replica after this. Default 60000 ms. */
  readonly ackWaitMs?: number;
  /** Consumer max_ack_pending. Default 4 batches. */
  readonly maxAckPending?: number;
  /** Timeout of one OpenMeter request. Default 10000 ms. */
  readonly requestTimeoutMs?: number;
  /** Retry backoff: full jitter between 0 and min(cap, base * 2^attempt). */
  readonly backoff?: BackoffOptions;
  /** How long one pull waits for a full batch (nats.js minimum 1000). Default 1000 ms. */
  readonly fetchExpiresMs?: number;
  /** How often the lag gauge is refreshed from consumer info. Default 5000 ms. */
  readonly lagRefreshMs?: number;
  /** Prometheus registry for the kgents_exporter_* metrics. Default: a private one. */
  readonly registry?: Registry;
  readonly logger?: ExporterLogger;
  /** For tests: replaces the HTTP client. */
  readonly client?: OpenMeterClient;
  /** For tests: the random source of the jitter. */
  readonly random?: () => number;
}

/** The exporter's state for /health/saas (a type alias, so it is assignable to the health registry's ComponentStatus). */
export type ExporterStatus = {
  readonly status: 'ok' | 'degraded' | 'disabled';
  /** Events not yet exported (consumer pending + unacknowledged); null before the first consumer info. */
  readonly lag: number | null;
  /** ISO time of the last batch OpenMeter accepted; null before the first. */
  readonly last_success: string | null;
  readonly last_error?: string;
  readonly detail?: string;
};

export interface ExporterStats {
  /** Events OpenMeter accepted and the exporter acknowledged. */
  readonly exported: number;
  readonly deadLettered: number;
  /** Failed HTTP attempts (each retry counts). */
  readonly failedAttempts: number;
  readonly batches: number;
}

/** Headers on a USAGE_DLQ message; the payload is the original message's bytes. */
export const DLQ_HEADERS = {
  kind: 'Kgents-Dlq-Kind',
  reason: 'Kgents-Dlq-Reason',
  httpStatus: 'Kgents-Dlq-Http-Status',
  originalStream: 'Kgents-Original-Stream',
  originalSeq: 'Kgents-Original-Seq',
  originalSubject: 'Kgents-Original-Subject',
  originalMsgId: 'Kgents-Original-Msg-Id',
  /** Set when one event of a batch message was dead-lettered: its index; the payload is that event alone. */
  originalPart: 'Kgents-Original-Part',
  eventId: 'Kgents-Event-Id',
  deadLetteredAt: 'Kgents-Dead-Lettered-At',
} as const;

export type DeadLetterKind = 'invalid' | 'malformed';

export const DEFAULT_DURABLE = 'openmeter-exporter';
const MAX_DLQ_REASON = 500;
const ACK_TIMEOUT_MS = 5000;
const ACK = new TextEncoder().encode('+ACK');

/** The status to register for /health/saas when no exporter runs in this process. */
export function disabledExporterStatus(detail: string): ExporterStatus {
  return { status: 'disabled', lag: null, last_success: null, detail };
}

/** Full-jitter exponential backoff: a random delay in [0, min(cap, base * 2^attempt)). */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

interface Item {
  readonly msg: JsMsg;
  /** The event as JSON text (the message's bytes when it holds one event). */
  readonly text: string;
  readonly id: string;
  /** Its index in the message, when the message is a batch of events. */
  readonly part: number | undefined;
}

/**
 * The messages of one pull that are not yet settled, with how many of each one's events are still
 * to export or dead-letter: a message (one event, or a batch of them) is acknowledged only when
 * every event in it is settled, and released (nak) whole otherwise.
 */
class Unsettled {
  private readonly open = new Map<JsMsg, number>();

  constructor(msgs: readonly JsMsg[]) {
    for (const m of msgs) this.open.set(m, 0);
  }

  expect(msg: JsMsg, events: number): void {
    this.open.set(msg, events);
  }

  /** Marks one event of each item settled; returns the messages now settled whole. */
  settle(items: readonly Pick<Item, 'msg'>[]): JsMsg[] {
    const done: JsMsg[] = [];
    for (const { msg } of items) {
      const left = (this.open.get(msg) ?? 0) - 1;
      if (left > 0) {
        this.open.set(msg, left);
      } else if (this.open.delete(msg)) {
        done.push(msg);
      }
    }
    return done;
  }

  /** A message settled as a whole (dead-lettered before its events were read). */
  drop(msg: JsMsg): void {
    this.open.delete(msg);
  }

  get messages(): IterableIterator<JsMsg> {
    return this.open.keys();
  }

  get size(): number {
    return this.open.size;
  }
}

type Outcome = 'done' | 'abandoned';

/** Checks the CloudEvents attributes OpenMeter requires; returns the problem, or the event id. */
export function checkCloudEvent(text: string): { ok: true; id: string } | { ok: false; problem: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { ok: false, problem: `not JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
  return checkCloudEventValue(parsed);
}

/** checkCloudEvent for a value already parsed (an element of a usage message). */
export function checkCloudEventValue(parsed: unknown): { ok: true; id: string } | { ok: false; problem: string } {
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { ok: false, problem: 'not a JSON object' };
  const ev = parsed as Record<string, unknown>;
  if (ev.specversion !== '1.0') return { ok: false, problem: 'specversion is not "1.0"' };
  for (const attr of ['id', 'source', 'type', 'subject'] as const) {
    const v = ev[attr];
    if (typeof v !== 'string' || v.trim() === '') return { ok: false, problem: `missing or empty "${attr}"` };
  }
  if (ev.time !== undefined && (typeof ev.time !== 'string' || Number.isNaN(Date.parse(ev.time)))) return { ok: false, problem: '"time" is not an RFC 3339 timestamp' };
  return { ok: true, id: ev.id as string };
}

/**
 * Exports usage events from the JetStream stream USAGE to OpenMeter through a durable pull
 * consumer shared by every replica. A message is acknowledged only after OpenMeter answered 2xx
 * for it (or it went to USAGE_DLQ), so nothing is lost; OpenMeter's de-duplication by id+source
 * turns the rare re-send (an ack lost with a NATS outage) into exactly-once counting.
 */
export class UsageExporter {
  readonly durableName: string;
  readonly metrics: ExporterMetrics;
  private readonly nats: NatsConnection;
  private readonly client: OpenMeterClient;
  private readonly batchSize: number;
  private readonly ackWaitMs: number;
  private readonly maxAckPending: number;
  private readonly requestTimeoutMs: number;
  private readonly baseMs: number;
  private readonly capMs: number;
  private readonly fetchExpiresMs: number;
  private readonly lagRefreshMs: number;
  private readonly random: () => number;
  private readonly log: ExporterLogger;
  private readonly secrets: readonly string[];
  private readonly js: JetStreamClient;
  private jsmPromise: Promise<JetStreamManager> | undefined;

  private loop: Promise<void> | undefined;
  private stopping = false;
  /** Aborts sleeps at stop(). */
  private stopController = new AbortController();
  /** Aborts an in-flight OpenMeter request when stop()'s grace period ends. */
  private abandonController = new AbortController();
  private lagTimer: NodeJS.Timeout | undefined;
  private lagRefreshing = false;
  private consumer: Consumer | undefined;

  private lag: number | null = null;
  private lastSuccess: Date | null = null;
  private lastError: string | undefined;
  /** Consecutive failed OpenMeter attempts; > 0 means degraded. */
  private consecutiveFailures = 0;
  /** The export loop cannot reach JetStream (or its consumer); cleared by the next good pull. */
  private natsProblem: string | undefined;
  private counts = { exported: 0, deadLettered: 0, failedAttempts: 0, batches: 0 };

  constructor(options: UsageExporterOptions) {
    this.nats = options.nats;
    this.durableName = options.durableName ?? DEFAULT_DURABLE;
    this.batchSize = Math.max(1, Math.floor(options.batchSize ?? 100));
    this.ackWaitMs = Math.max(1000, options.ackWaitMs ?? 60_000);
    this.maxAckPending = options.maxAckPending ?? this.batchSize * 4;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.baseMs = options.backoff?.baseMs ?? 250;
    this.capMs = options.backoff?.capMs ?? 30_000;
    this.fetchExpiresMs = Math.max(1000, options.fetchExpiresMs ?? 1000);
    this.lagRefreshMs = options.lagRefreshMs ?? 5000;
    this.random = options.random ?? Math.random;
    this.log = options.logger ?? { info: () => undefined, warn: () => undefined, error: () => undefined };
    this.secrets = options.apiKey ? [options.apiKey] : [];
    this.client = options.client ?? new OpenMeterClient({ url: options.url, apiKey: options.apiKey, timeoutMs: this.requestTimeoutMs });
    this.metrics = new ExporterMetrics(options.registry ?? new Registry());
    this.js = jetstream(this.nats.nc);
  }

  get running(): boolean {
    return this.loop !== undefined;
  }

  /** Starts the export loop in the background; never throws (an unreachable NATS or OpenMeter is retried and shows in status()). */
  start(): void {
    if (this.loop) return;
    this.stopping = false;
    this.stopController = new AbortController();
    this.abandonController = new AbortController();
    this.log.info({ component: 'exporter', url: this.client.displayUrl, durable: this.durableName, batch_size: this.batchSize }, 'OpenMeter exporter started');
    this.lagTimer = setInterval(() => void this.refreshLag(), this.lagRefreshMs);
    this.lagTimer.unref();
    this.loop = this.run().catch((err: unknown) => {
      // run() handles its own errors; this is a bug guard so stop() never hangs
      this.log.error({ component: 'exporter', err: this.errText(err) }, 'OpenMeter exporter loop crashed');
    });
  }

  /**
   * Stops pulling, lets an in-flight OpenMeter request finish for up to `graceMs` (default: the
   * request timeout) and acknowledges its events on 2xx; events not exported are released (nak)
   * unacknowledged, for another replica or the next start. Resolves when the loop has ended.
   */
  async stop(graceMs = this.requestTimeoutMs): Promise<void> {
    const loop = this.loop;
    if (!loop) return;
    this.stopping = true;
    this.stopController.abort();
    const abandonTimer = setTimeout(() => this.abandonController.abort(), graceMs);
    try {
      await loop;
    } finally {
      clearTimeout(abandonTimer);
      if (this.lagTimer) clearInterval(this.lagTimer);
      this.lagTimer = undefined;
      this.loop = undefined;
      this.consumer = undefined;
    }
    this.log.info({ component: 'exporter', ...this.stats() }, 'OpenMeter exporter stopped');
  }

  /** For /health/saas. */
  status(): ExporterStatus {
    const base = {
      lag: this.lag,
      last_success: this.lastSuccess ? this.lastSuccess.toISOString() : null,
      ...(this.lastError !== undefined && { last_error: this.lastError }),
    };
    if (!this.running) return { status: 'disabled', ...base, detail: 'exporter stopped' };
    const degraded = this.consecutiveFailures > 0 || this.natsProblem !== undefined;
    return { status: degraded ? 'degraded' : 'ok', ...base };
  }

  stats(): ExporterStats {
    return { ...this.counts };
  }

  // ---- the loop ------------------------------------------------------------------------------

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.stopping) {
      try {
        if (!this.nats.isUp) {
          this.natsProblem = 'NATS connection down';
          if (!(await this.nats.waitUntilUp(this.stopController.signal))) {
            if (!this.stopping) {
              this.lastError = 'NATS: connection closed';
              this.log.error({ component: 'exporter' }, 'the NATS connection was closed: the OpenMeter exporter stops exporting');
            }
            break;
          }
        }
        this.consumer ??= await this.ensureConsumer();
        const info = await this.consumer.info();
        this.setLag(info);
        const msgs = await this.fetchBatch(this.consumer, info.num_pending > 0 ? Math.min(this.batchSize, info.num_pending) : this.batchSize);
        attempt = 0;
        this.natsProblem = undefined;
        if (msgs.length === 0) continue;
        if (this.stopping) {
          for (const m of msgs) safe(() => m.nak());
          break;
        }
        await this.processBatch(msgs);
      } catch (err) {
        if (this.stopping) break;
        const text = this.errText(err);
        if (/consumer not found|stream not found/i.test(text)) this.consumer = undefined;
        this.natsProblem = text;
        this.lastError = `NATS: ${text}`;
        this.metrics.failures.inc({ reason: 'nats' });
        const delay = backoffDelay(attempt, this.baseMs, this.capMs, this.random);
        this.log.warn({ component: 'exporter', err: text, attempt: attempt + 1, retry_in_ms: delay }, 'OpenMeter exporter cannot pull from USAGE; retrying');
        attempt++;
        await this.sleep(delay, true);
      }
    }
  }

  /** Creates the durable consumer, or brings the settings that may change in place up to date. */
  private async ensureConsumer(): Promise<Consumer> {
    const jsm = await this.manager();
    const wanted: Partial<ConsumerConfig> = {
      durable_name: this.durableName,
      description: 'kgents OpenMeter exporter: usage events not yet accepted by OpenMeter.',
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      replay_policy: ReplayPolicy.Instant,
      ack_wait: nanos(this.ackWaitMs),
      max_ack_pending: this.maxAckPending,
      max_deliver: -1,
    };
    let existing: ConsumerInfo | undefined;
    try {
      existing = await jsm.consumers.info(USAGE_STREAM, this.durableName);
    } catch (err) {
      if (!/consumer not found/i.test(String(err))) throw err;
    }
    if (!existing) {
      await jsm.consumers.add(USAGE_STREAM, wanted);
      this.log.info({ component: 'exporter', durable: this.durableName }, 'created the durable consumer on USAGE');
    } else {
      const c = existing.config;
      if (c.ack_policy !== AckPolicy.Explicit) {
        throw new Error(`consumer ${this.durableName} on ${USAGE_STREAM} has ack policy ${c.ack_policy}, not explicit: delete it (nats consumer rm ${USAGE_STREAM} ${this.durableName}) to let the exporter recreate it`);
      }
      if (c.ack_wait !== wanted.ack_wait || c.max_ack_pending !== wanted.max_ack_pending || c.description !== wanted.description || (c.max_deliver ?? -1) !== -1) {
        try {
          await jsm.consumers.update(USAGE_STREAM, this.durableName, {
            description: wanted.description,
            ack_wait: wanted.ack_wait,
            max_ack_pending: wanted.max_ack_pending,
            max_deliver: -1,
          });
          this.log.info({ component: 'exporter', durable: this.durableName }, 'updated the durable consumer on USAGE');
        } catch (err) {
          this.log.warn({ component: 'exporter', durable: this.durableName, err: this.errText(err) }, 'could not update the durable consumer settings; using it as it is');
        }
      }
    }
    return this.js.consumers.get(USAGE_STREAM, this.durableName);
  }

  /** One pull of up to `max` messages; ends when the batch is full or the pull expires. */
  private async fetchBatch(consumer: Consumer, max: number): Promise<JsMsg[]> {
    const iter = await consumer.fetch({ max_messages: max, expires: this.fetchExpiresMs });
    const msgs: JsMsg[] = [];
    const end = (): void => void iter.close().catch(() => undefined);
    // nats.js pauses a fetch's heartbeat checks while disconnected: end the pull when the connection
    // drops (its pull request died with it) and never wait on one forever
    const off = this.nats.onStatusChange((h) => {
      if (h.status === 'down') end();
    });
    const watchdog = setTimeout(end, this.fetchExpiresMs * 2 + 5000);
    try {
      for await (const m of iter) msgs.push(m);
    } catch (err) {
      if (msgs.length === 0) throw err;
    } finally {
      clearTimeout(watchdog);
      off();
    }
    return msgs;
  }

  private async processBatch(msgs: readonly JsMsg[]): Promise<void> {
    this.counts.batches++;
    const unsettled = new Unsettled(msgs);
    // keep the server from redelivering to another replica while this one retries
    const keepAlive = setInterval(() => {
      for (const m of unsettled.messages) safe(() => m.working());
    }, Math.max(500, Math.floor(this.ackWaitMs / 3)));
    try {
      const items: Item[] = [];
      for (const msg of msgs) {
        let message: ReturnType<typeof usageMessageElements>;
        const raw = msg.string();
        try {
          message = usageMessageElements(raw);
        } catch (err) {
          const problem = err instanceof Error ? err.message : String(err);
          if ((await this.deadLetter(msg, undefined, undefined, 'malformed', problem, undefined, unsettled)) === 'abandoned') return;
          continue;
        }
        unsettled.expect(msg, message.elements.length);
        for (const [index, element] of message.elements.entries()) {
          const check = checkCloudEventValue(element);
          // a message of one event is sent as stored; an element of a batch as its own JSON
          const text = message.batch ? JSON.stringify(element) : raw;
          // a batch of one is dead-lettered whole, like a single event
          const part = message.elements.length > 1 ? index : undefined;
          if (check.ok) {
            items.push({ msg, text, id: check.id, part });
          } else if ((await this.deadLetter(msg, part === undefined ? undefined : { index: part, text }, undefined, 'malformed', check.problem, undefined, unsettled)) === 'abandoned') {
            return;
          }
        }
      }
      // one OpenMeter request per batchSize events (a message may hold many)
      for (let i = 0; i < items.length; i += this.batchSize) {
        if ((await this.exportItems(items.slice(i, i + this.batchSize), unsettled)) === 'abandoned') return;
      }
    } finally {
      clearInterval(keepAlive);
      for (const m of unsettled.messages) safe(() => m.nak());
      if (unsettled.size > 0) this.log.info({ component: 'exporter', released: unsettled.size }, 'released unexported messages for redelivery');
    }
  }

  /** Sends `items`, retrying; an invalid batch is bisected until the bad events are alone, and those go to the DLQ. */
  private async exportItems(items: readonly Item[], unsettled: Unsettled): Promise<Outcome> {
    const result = await this.postUntilSettled(items);
    if (result === 'abandoned') return 'abandoned';
    if (result.kind === 'ok') {
      await this.confirmAcks(unsettled.settle(items));
      this.counts.exported += items.length;
      this.metrics.exported.inc(items.length);
      this.lastSuccess = new Date();
      this.metrics.lastSuccess.set(this.lastSuccess.getTime() / 1000);
      return 'done';
    }
    const [only] = items;
    if (items.length === 1 && only) {
      const part = only.part === undefined ? undefined : { index: only.part, text: only.text };
      return this.deadLetter(only.msg, part, only.id, 'invalid', result.detail, result.status, unsettled);
    }
    const mid = Math.ceil(items.length / 2);
    this.log.warn({ component: 'exporter', status: result.status, reason: result.detail, events: items.length }, 'OpenMeter rejected a batch as invalid; splitting it to find the bad events');
    if ((await this.exportItems(items.slice(0, mid), unsettled)) === 'abandoned') return 'abandoned';
    return this.exportItems(items.slice(mid), unsettled);
  }

  /** Posts until OpenMeter accepts or refuses the batch for good; 'abandoned' when stopping. */
  private async postUntilSettled(items: readonly Item[]): Promise<Extract<PostResult, { kind: 'ok' | 'invalid' }> | 'abandoned'> {
    let attempt = 0;
    for (;;) {
      if (this.stopping) return 'abandoned';
      const result = await this.client.postBatch(items.map((i) => i.text), this.abandonController.signal);
      if (result.kind === 'ok') {
        if (this.consecutiveFailures > 0) this.log.info({ component: 'exporter', after_failures: this.consecutiveFailures }, 'OpenMeter accepts events again');
        this.consecutiveFailures = 0;
        this.lastError = undefined;
        return result;
      }
      this.counts.failedAttempts++;
      this.metrics.failures.inc({ reason: result.reason });
      if (result.kind === 'invalid') return result;
      if (this.stopping) return 'abandoned';
      this.consecutiveFailures++;
      this.lastError = `OpenMeter: ${result.detail}`;
      const delay = result.retryAfterMs ?? backoffDelay(attempt, this.baseMs, this.capMs, this.random);
      const fields = { component: 'exporter', reason: result.reason, status: result.status, detail: result.detail, attempt: attempt + 1, events: items.length, retry_in_ms: delay };
      if (result.reason === 'unauthorized' || result.reason === 'endpoint') this.log.error(fields, 'OpenMeter refused the exporter (check OPENMETER_URL and OPENMETER_API_KEY); retrying');
      else this.log.warn(fields, 'OpenMeter export failed; retrying');
      attempt++;
      if (!(await this.sleep(delay, false))) return 'abandoned';
    }
  }

  /**
   * Publishes the original message to USAGE_DLQ with the reason in headers (or, for one event of a
   * batch, that event alone, with its index), then acknowledges the message once all its events
   * are settled.
   */
  private async deadLetter(msg: JsMsg, part: { index: number; text: string } | undefined, eventId: string | undefined, kind: DeadLetterKind, reason: string, httpStatus: number | undefined, unsettled: Unsettled): Promise<Outcome> {
    const h = headers();
    const clean = (v: string): string => redact(v, []).slice(0, MAX_DLQ_REASON);
    h.set(DLQ_HEADERS.kind, kind);
    h.set(DLQ_HEADERS.reason, clean(reason) || kind);
    if (httpStatus !== undefined) h.set(DLQ_HEADERS.httpStatus, String(httpStatus));
    h.set(DLQ_HEADERS.originalStream, USAGE_STREAM);
    h.set(DLQ_HEADERS.originalSeq, String(msg.seq));
    h.set(DLQ_HEADERS.originalSubject, clean(msg.subject));
    if (part) h.set(DLQ_HEADERS.originalPart, String(part.index));
    const originalMsgId = msg.headers?.get('Nats-Msg-Id');
    if (originalMsgId) h.set(DLQ_HEADERS.originalMsgId, clean(originalMsgId));
    if (eventId !== undefined) h.set(DLQ_HEADERS.eventId, clean(eventId));
    h.set(DLQ_HEADERS.deadLetteredAt, new Date().toISOString());
    const data = part ? Buffer.from(part.text, 'utf8') : msg.data;
    // the stream sequence (and part) as message id: a re-publish after a crash before the ack is dropped
    const msgID = part ? `${USAGE_STREAM}:${msg.seq}:${part.index}` : `${USAGE_STREAM}:${msg.seq}`;
    let attempt = 0;
    for (;;) {
      try {
        await this.js.publish(USAGE_DLQ_SUBJECT, data, { headers: h, msgID, timeout: 5000 });
        break;
      } catch (err) {
        if (this.stopping) return 'abandoned';
        const delay = backoffDelay(attempt++, this.baseMs, this.capMs, this.random);
        this.metrics.failures.inc({ reason: 'nats' });
        this.log.warn({ component: 'exporter', err: this.errText(err), seq: msg.seq, retry_in_ms: delay }, 'cannot publish to USAGE_DLQ; retrying');
        if (!(await this.sleep(delay, true))) return 'abandoned';
      }
    }
    if (part) {
      await this.confirmAcks(unsettled.settle([{ msg }]));
    } else {
      unsettled.drop(msg);
      await this.confirmAcks([msg]);
    }
    this.counts.deadLettered++;
    this.metrics.deadLettered.inc({ reason: kind });
    this.log.warn({ component: 'exporter', kind, reason: clean(reason), http_status: httpStatus, seq: msg.seq, part: part?.index, event_id: eventId }, 'usage event moved to USAGE_DLQ');
    return 'done';
  }

  // ---- helpers --------------------------------------------------------------------------------

  private manager(): Promise<JetStreamManager> {
    this.jsmPromise ??= jetstreamManager(this.nats.nc).catch((err: unknown) => {
      this.jsmPromise = undefined;
      throw err;
    });
    return this.jsmPromise;
  }

  private setLag(info: ConsumerInfo): void {
    this.lag = info.num_pending + info.num_ack_pending;
    this.metrics.lag.set(this.lag);
  }

  private async refreshLag(): Promise<void> {
    if (this.lagRefreshing || !this.nats.isUp) return;
    this.lagRefreshing = true;
    try {
      const jsm = await this.manager();
      this.setLag(await jsm.consumers.info(USAGE_STREAM, this.durableName));
    } catch {
      // the loop reports NATS problems; the gauge keeps its last value
    } finally {
      this.lagRefreshing = false;
    }
  }

  /**
   * Acknowledges and waits for the server to confirm each ack (an ack published while NATS is
   * down is lost silently), retrying until confirmed. Given up only at stop(): an unconfirmed ack
   * means a redelivery after ack wait and a re-send that OpenMeter de-duplicates.
   */
  private async confirmAcks(msgs: readonly JsMsg[]): Promise<void> {
    if (msgs.length === 0) return;
    let remaining = msgs;
    let attempt = 0;
    for (;;) {
      // a request made while disconnected is not re-sent after the reconnect: wait for the connection
      if (!this.nats.isUp && !(await this.nats.waitUntilUp(this.stopController.signal))) {
        this.log.warn({ component: 'exporter', unconfirmed: remaining.length }, 'acks not confirmed before stop: those events will be sent again after the ack wait (OpenMeter de-duplicates them)');
        return;
      }
      const results = await Promise.allSettled(remaining.map(async (m) => {
        const subject = ackSubject(m);
        // without a reply subject (never for a pulled message), fall back to nats.js's one-shot ackAck
        if (subject === undefined) return m.ackAck({ timeout: ACK_TIMEOUT_MS });
        return this.nats.nc.request(subject, ACK, { timeout: ACK_TIMEOUT_MS });
      }));
      remaining = remaining.filter((_, i) => results[i]?.status === 'rejected');
      if (remaining.length === 0) return;
      const delay = backoffDelay(attempt++, this.baseMs, this.capMs, this.random);
      if (this.stopping || !(await this.sleep(delay, true))) {
        this.log.warn({ component: 'exporter', unconfirmed: remaining.length }, 'acks not confirmed before stop: those events will be sent again after the ack wait (OpenMeter de-duplicates them)');
        return;
      }
      this.metrics.failures.inc({ reason: 'nats' });
      this.log.warn({ component: 'exporter', unconfirmed: remaining.length, attempt }, 'acks not confirmed by NATS; retrying');
    }
  }

  /** Waits `ms`; false when stop() interrupted. With wakeOnReconnect, also ends early when NATS comes back. */
  private sleep(ms: number, wakeOnReconnect: boolean): Promise<boolean> {
    const signal = this.stopController.signal;
    if (signal.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const off = wakeOnReconnect ? this.nats.onStatusChange((h) => {
        if (h.status === 'ok') done(true);
      }) : undefined;
      const timer = setTimeout(() => done(true), ms);
      const onAbort = (): void => done(false);
      signal.addEventListener('abort', onAbort, { once: true });
      function done(completed: boolean): void {
        clearTimeout(timer);
        off?.();
        signal.removeEventListener('abort', onAbort);
        resolve(completed);
      }
    });
  }

  private errText(err: unknown): string {
    return redact(err instanceof Error ? err.message : String(err), this.secrets).slice(0, 500);
  }
}

/** The message's ack subject ($JS.ACK...): nats.js keeps it as `reply` on its JsMsg implementation. */
function ackSubject(m: JsMsg): string | undefined {
  const reply = (m as JsMsg & { readonly reply?: unknown }).reply;
  return typeof reply === 'string' && reply !== '' ? reply : undefined;
}

function safe(fn: () => void): void {
  try {
    fn();
  } catch {
    // a closed connection: the server redelivers after ack wait
  }
}
