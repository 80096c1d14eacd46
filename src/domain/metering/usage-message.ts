import type { UsageEvent } from './usage-event.js';

/**
 * What one USAGE message (and one fallback-queue record) holds: one usage event as a CloudEvents
 * JSON object (structured mode), or several as a CloudEvents JSON batch (an array of them, the
 * `application/cloudevents-batch+json` format OpenMeter's ingest API also takes).
 *
 * Several events share a message because a JetStream publish and its acknowledgement cost the same
 * for one event as for twenty: the meter sends the events of one event-loop turn together. Readers
 * must accept both forms; a message of one event stays a plain object, as before batching.
 */
export function encodeUsageMessage(events: readonly UsageEvent[]): Buffer {
  const first = events[0];
  if (!first) throw new RangeError('a usage message holds at least one event');
  // One JSON.stringify per message, not one per event joined later: the bytes are the same, and
  // per-event texts kept until the acknowledgement outlived minor GCs and were promoted to the old
  // generation (`node dist/bench/alloc.js --promoted`).
  return Buffer.from(JSON.stringify(events.length === 1 ? first : events), 'utf8');
}

const EMPTY_EVENT: UsageEvent = {
  specversion: '1.0', id: '', source: '', type: '', subject: '', time: '', datacontenttype: 'application/json',
  data: { path: '', aspect: '', tokens: 0, status: 0, latency_ms: 0, key_prefix: '', request_id: '' },
};
/** The longest text of a JS number ("-1.7976931348623157e+308"). */
const MAX_NUMBER_TEXT = 24;
const NUMBER_FIELDS = 3;
/** Everything but the variable strings and numbers: names, quotes, punctuation, the constant values. */
const FIXED_JSON = JSON.stringify(EMPTY_EVENT).length - NUMBER_FIELDS + NUMBER_FIELDS * MAX_NUMBER_TEXT + 'null'.length;

/**
 * At least JSON.stringify(event).length, without serialising: each string character counted as its
 * longest escape (six units, `\u001f`). The meter sizes its batches with it, so a batch stays
 * under its byte limit although its JSON is only written when the message is sent.
 */
export function usageEventJsonBound(event: UsageEvent): number {
  const d = event.data;
  const chars = event.id.length + event.source.length + event.type.length + event.subject.length + event.time.length
    + d.path.length + (d.aspect?.length ?? 0) + d.key_prefix.length + d.request_id.length;
  return FIXED_JSON + 6 * chars;
}

/**
 * The elements of a usage message, parsed once: the object itself, or the batch's elements
 * (`batch`: the message is an array). Throws a SyntaxError saying why when it is neither.
 */
export function usageMessageElements(text: string): { readonly elements: unknown[]; readonly batch: boolean } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new SyntaxError(`not JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (Array.isArray(parsed)) {
    if (parsed.length === 0) throw new SyntaxError('an empty batch');
    return { elements: parsed, batch: true };
  }
  if (parsed === null || typeof parsed !== 'object') throw new SyntaxError('not a JSON object or array');
  return { elements: [parsed], batch: false };
}

/** The events of a usage message; throws when it is not JSON, or an element is not an object. */
export function decodeUsageMessage(text: string): UsageEvent[] {
  const { elements } = usageMessageElements(text);
  for (const e of elements) {
    if (e === null || typeof e !== 'object' || Array.isArray(e)) throw new SyntaxError('a usage event is not a JSON object');
  }
  return elements as UsageEvent[];
}

/** Whether a value has the attributes every usage event carries (id, subject, type as strings). */
export function isUsageEvent(value: UsageEvent): boolean {
  return typeof value.id === 'string' && typeof value.subject === 'string' && typeof value.type === 'string';
}

/**
 * The message's JetStream dedup key (Nats-Msg-Id): its first event's id. Events whose id is not
 * random (derived from an Idempotency-Key, so a retry re-publishes it) always travel alone, so a
 * re-published event and its first copy share a message id and JetStream drops the second.
 */
export function usageMessageId(events: readonly Pick<UsageEvent, 'id'>[]): string {
  const first = events[0];
  if (!first) throw new RangeError('a usage message holds at least one event');
  return first.id;
}
