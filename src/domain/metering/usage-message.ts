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
export function encodeUsageMessage(jsonTexts: readonly string[]): Buffer {
  if (jsonTexts.length === 0) throw new RangeError('a usage message holds at least one event');
  const text = jsonTexts.length === 1 ? jsonTexts[0] ?? '' : `[${jsonTexts.join(',')}]`;
  return Buffer.from(text, 'utf8');
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
