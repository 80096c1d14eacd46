/**
 * The few fields of a (signature-verified) Stripe snapshot event that billing reads. Read
 * defensively from `unknown`: the payload is authentic, but its shape depends on the Stripe API
 * version of the endpoint, so nothing here trusts a field's type without checking it.
 */
export interface StripeEvent {
  readonly id: string;
  readonly type: string;
  /** Unix seconds when Stripe created the event. */
  readonly created: number;
  readonly livemode: boolean;
  /** `data.object`: the session, subscription or invoice. */
  readonly object: Readonly<Record<string, unknown>>;
}

/** Stripe event ids are `evt_` and letters, digits or underscores; they double as KV keys. */
export const STRIPE_EVENT_ID = /^evt_[A-Za-z0-9_]{1,200}$/;
/** Event types are lower-case dotted words; they become NATS subject tokens. */
export const STRIPE_EVENT_TYPE = /^[a-z0-9_]+(\.[a-z0-9_]+){1,6}$/;

export type Fields = Readonly<Record<string, unknown>>;

export function isRecord(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Validates the envelope; the error says which field is wrong (never echoes its value). */
export function readStripeEvent(value: unknown): { ok: true; event: StripeEvent } | { ok: false; error: string } {
  if (!isRecord(value)) return { ok: false, error: 'the payload is not a JSON object' };
  const { id, type, created, livemode, data } = value;
  if (typeof id !== 'string' || !STRIPE_EVENT_ID.test(id)) return { ok: false, error: 'id is not a Stripe event id (evt_…)' };
  if (typeof type !== 'string' || !STRIPE_EVENT_TYPE.test(type)) return { ok: false, error: 'type is not a Stripe event type' };
  if (typeof created !== 'number' || !Number.isSafeInteger(created) || created < 0) return { ok: false, error: 'created is not a unix timestamp' };
  if (!isRecord(data) || !isRecord(data.object)) return { ok: false, error: 'data.object is missing' };
  return { ok: true, event: { id, type, created, livemode: livemode === true, object: data.object } };
}

/** A string field, or the `id` of an expanded object in its place (Stripe expands on request). */
export function idField(object: Fields | undefined, name: string): string | undefined {
  const value = object?.[name];
  if (typeof value === 'string' && value !== '') return value;
  if (isRecord(value) && typeof value.id === 'string' && value.id !== '') return value.id;
  return undefined;
}

export function stringField(object: Fields | undefined, name: string): string | undefined {
  const value = object?.[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

export function recordField(object: Fields | undefined, name: string): Fields | undefined {
  const value = object?.[name];
  return isRecord(value) ? value : undefined;
}
