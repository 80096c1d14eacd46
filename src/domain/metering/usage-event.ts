import { createHash } from 'node:crypto';
import { uniqueId } from '../unique-id.js';

/** A CloudEvents 1.0 usage event, as published to USAGE and sent to OpenMeter. */
export interface UsageEvent {
  readonly specversion: '1.0';
  readonly id: string;
  readonly source: string;
  readonly type: string;
  /** The tenant id: OpenMeter meters group by subject. */
  readonly subject: string;
  readonly time: string;
  readonly datacontenttype: 'application/json';
  readonly data: UsageData;
}

export interface UsageData {
  readonly path: string;
  readonly aspect: string | null;
  readonly tokens: number;
  readonly status: number;
  readonly latency_ms: number;
  readonly key_prefix: string;
  readonly request_id: string;
}

export const USAGE_SOURCE = 'kgents-api';

/**
 * A request that carries an Idempotency-Key gets an id derived from tenant and key, so a retry that
 * re-runs the handler (the first attempt died before its response was stored) publishes the same
 * id and JetStream drops it as a duplicate. Other requests get a unique id (uniqueId: a UUID).
 */
export function usageEventId(tenant: string, idempotencyKey: string | undefined): string {
  if (idempotencyKey === undefined) return uniqueId();
  const h = createHash('sha256').update(`usage\0${tenant}\0${idempotencyKey}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h.slice(16, 18), 16) & 0x3f) | 0x80).toString(16)}${h.slice(18, 20)}-${h.slice(20, 32)}`;
}

/** The last millisecond formatted, and its text: the events of one busy millisecond share one string. */
let lastMs = Number.NaN;
let lastIso = '';

function isoTime(time: Date | number): string {
  const ms = typeof time === 'number' ? time : time.getTime();
  if (ms !== lastMs) {
    lastIso = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastIso;
}

/** `time`: a Date or milliseconds since the epoch (the hot path passes Date.now(), no Date object). */
export function usageEvent(fields: { id: string; type: string; tenant: string; time: Date | number; data: UsageData }): UsageEvent {
  return {
    specversion: '1.0',
    id: fields.id,
    source: USAGE_SOURCE,
    type: fields.type,
    subject: fields.tenant,
    time: isoTime(fields.time),
    datacontenttype: 'application/json',
    data: fields.data,
  };
}
