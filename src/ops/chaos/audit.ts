import { setTimeout as sleep } from 'node:timers/promises';
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { connectNats } from '../../adapters/nats/connection.js';
import { USAGE_STREAM, USAGE_SUBJECT_PREFIX } from '../../adapters/nats/streams.js';
import { decodeUsageMessage } from '../../domain/metering/usage-message.js';
import type { RequestRecord } from './load.js';

/** The USAGE stream compared with the answers the load got. */
export interface EventAudit {
  readonly audited: boolean;
  /** Why not audited (no NATS URL, unreachable). */
  readonly note?: string;
  /** Requests answered 2xx: each must have exactly one event. */
  readonly expected: number;
  /** 2xx requests with no event. */
  readonly lost: number;
  /** Request ids with more than one event (any answer). */
  readonly duplicated: number;
  /** Events of requests that got no 2xx (cut off by the fault: the client cannot know; legitimate once). */
  readonly unacknowledged: number;
  /** Events of this run whose request id was never sent (a bug). */
  readonly stray: number;
  /** Events of this run found in USAGE. */
  readonly events: number;
  /** Up to 10 example ids of each problem. */
  readonly examples: { readonly lost: readonly string[]; readonly duplicated: readonly string[]; readonly stray: readonly string[] };
  /** How long after the load stopped the last expected event showed up (queues draining). */
  readonly settle_ms: number;
}

/** Counts this run's events (request ids starting with `${prefix}-`) in USAGE, by request id. */
export async function readRunEvents(natsUrls: readonly string[], options: { tenant?: string; since: Date; prefix: string }): Promise<Map<string, number>> {
  const conn = await connectNats(natsUrls, { name: 'kgents-chaos audit', timeoutMs: 5000 });
  try {
    const js = jetstream(conn.nc, { timeout: 10_000 });
    const consumer = await js.consumers.get(USAGE_STREAM, {
      filter_subjects: `${USAGE_SUBJECT_PREFIX}.${options.tenant ?? '*'}.>`,
      deliver_policy: DeliverPolicy.StartTime,
      // Storage time; events that waited in a fallback queue are stored later, never earlier.
      opt_start_time: new Date(options.since.getTime() - 5000).toISOString(),
    });
    const counts = new Map<string, number>();
    const mine = `${options.prefix}-`;
    for (;;) {
      const messages = await consumer.fetch({ max_messages: 1000, expires: 2000 });
      let got = 0;
      let pending = 1;
      for await (const m of messages) {
        got++;
        pending = m.info.pending;
        let requestIds: unknown[];
        try {
          // one event or a batch of them (usage-message.ts)
          requestIds = decodeUsageMessage(m.string()).map((e) => (e.data as { request_id?: unknown } | undefined)?.request_id);
        } catch {
          continue;
        }
        for (const requestId of requestIds) {
          if (typeof requestId === 'string' && requestId.startsWith(mine)) counts.set(requestId, (counts.get(requestId) ?? 0) + 1);
        }
      }
      if (got === 0 || pending === 0) break;
    }
    return counts;
  } finally {
    await conn.close();
  }
}

/** Compares answers and events (pure; see auditEvents for the settling loop). */
export function compareEvents(records: readonly RequestRecord[], counts: ReadonlyMap<string, number>): Omit<EventAudit, 'audited' | 'settle_ms'> {
  const answered = new Map<string, boolean>();
  for (const r of records) answered.set(r.id, r.status >= 200 && r.status < 300);
  let expected = 0;
  const lost: string[] = [];
  for (const [id, ok] of answered) {
    if (!ok) continue;
    expected++;
    if ((counts.get(id) ?? 0) === 0) lost.push(id);
  }
  const duplicated: string[] = [];
  const stray: string[] = [];
  let unacknowledged = 0;
  let events = 0;
  for (const [id, n] of counts) {
    events += n;
    if (n > 1) duplicated.push(id);
    const ok = answered.get(id);
    if (ok === undefined) stray.push(id);
    else if (!ok) unacknowledged++;
  }
  return {
    expected, lost: lost.length, duplicated: duplicated.length, unacknowledged, stray: stray.length, events,
    examples: { lost: lost.slice(0, 10), duplicated: duplicated.slice(0, 10), stray: stray.slice(0, 10) },
  };
}

/**
 * Reads the run's events until every 2xx answer has its event or `settleMs` passed (fallback queues
 * may still be draining when the load stops), then compares.
 */
export async function auditEvents(natsUrls: readonly string[], records: readonly RequestRecord[], options: { tenant?: string; since: Date; prefix: string; settleMs: number; signal?: AbortSignal }): Promise<EventAudit> {
  const empty = { expected: 0, lost: 0, duplicated: 0, unacknowledged: 0, stray: 0, events: 0, examples: { lost: [], duplicated: [], stray: [] }, settle_ms: 0 };
  if (natsUrls.length === 0) return { audited: false, note: 'no NATS URL: pass --nats URL to audit usage events', ...empty };
  const started = Date.now();
  for (;;) {
    try {
      const compared = compareEvents(records, await readRunEvents(natsUrls, options));
      if (compared.lost === 0 || Date.now() - started >= options.settleMs || options.signal?.aborted === true) {
        return { audited: true, ...compared, settle_ms: Date.now() - started };
      }
    } catch (err) {
      const lastError = err instanceof Error ? err.message : String(err);
      if (Date.now() - started >= options.settleMs) return { audited: false, note: `cannot read USAGE: ${lastError}`, ...empty };
    }
    await sleep(2000);
  }
}
