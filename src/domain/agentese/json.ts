import { ApiError } from '../../errors/api-error.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

/** Canonical JSON larger than this (in UTF-16 code units) is refused; far above any body limit. */
export const MAX_CANONICAL_LENGTH = 16 * 1024 * 1024;

type Frame =
  | { readonly kind: 'value'; readonly value: unknown }
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'leave'; readonly object: object };

/** Values JSON.stringify drops from objects (and writes as null in arrays). */
function isSkipped(value: unknown): boolean {
  return value === undefined || typeof value === 'function' || typeof value === 'symbol';
}

function tooLarge(field: string): ApiError {
  return new ApiError('ERR_VALIDATION', `${field} is too large`, { field, max_length: MAX_CANONICAL_LENGTH });
}

/**
 * Serialises a value to canonical JSON (object keys sorted): shallow values by recursion, deep
 * ones with an explicit stack, so arbitrarily deep input cannot overflow the call stack. The text has exactly the
 * length of JSON.stringify's output (only the key order differs), so it also measures the value.
 * Cycles and oversized values are ApiError ERR_VALIDATION naming `field`; nothing else is thrown.
 * Non-JSON leaves are written the way JSON.stringify writes them (NaN/Infinity and dropped values
 * as null), except bigint, which is written as its digits.
 */
export function canonicalJson(value: unknown, field: string): string {
  fastLength = 0;
  return canonicalFast(value, 0) ?? canonicalStack(value, field);
}

/** Nesting depth the recursive path handles; deeper values, cycles among them, take the stack path. */
const FAST_MAX_DEPTH = 32;
/** Characters written so far by canonicalFast (synchronous, so one counter serves every call). */
let fastLength = 0;

/**
 * The common case, by recursion into strings built directly: no frames, no cycle set, no parts
 * array. Gives up (undefined) beyond FAST_MAX_DEPTH or MAX_CANONICAL_LENGTH characters, which a
 * cycle or a huge value reaches; canonicalStack then gives the exact answer or the error.
 */
function canonicalFast(v: unknown, depth: number): string | undefined {
  let text: string;
  if (typeof v === 'string') text = JSON.stringify(v);
  else if (typeof v === 'number') text = Number.isFinite(v) ? String(v) : 'null';
  else if (typeof v === 'boolean') text = v ? 'true' : 'false';
  else if (typeof v === 'bigint') text = v.toString();
  else if (typeof v !== 'object' || v === null) text = 'null';
  else {
    if (depth >= FAST_MAX_DEPTH) return undefined;
    let out: string;
    if (Array.isArray(v)) {
      const items: readonly unknown[] = v;
      out = '[';
      for (let i = 0; i < items.length; i++) {
        const item = items[i];
        const t = isSkipped(item) ? 'null' : canonicalFast(item, depth + 1);
        if (t === undefined) return undefined;
        out += i === 0 ? t : `,${t}`;
        if (fastLength > MAX_CANONICAL_LENGTH) return undefined;
      }
      out += ']';
    } else {
      const record = v as Record<string, unknown>;
      const keys = Object.keys(record);
      if (keys.length > 1) keys.sort();
      out = '{';
      let first = true;
      for (const key of keys) {
        const item = record[key];
        if (isSkipped(item)) continue;
        const t = canonicalFast(item, depth + 1);
        if (t === undefined) return undefined;
        const name = JSON.stringify(key);
        fastLength += name.length + 1;
        out += first ? `${name}:${t}` : `,${name}:${t}`;
        first = false;
        if (fastLength > MAX_CANONICAL_LENGTH) return undefined;
      }
      out += '}';
    }
    fastLength += 2;
    return out;
  }
  fastLength += text.length + 1;
  return fastLength > MAX_CANONICAL_LENGTH ? undefined : text;
}

/** The general path: an explicit stack, so arbitrarily deep input cannot overflow the call stack. */
function canonicalStack(value: unknown, field: string): string {
  const parts: string[] = [];
  let length = 0;
  const emit = (text: string): void => {
    length += text.length;
    if (length > MAX_CANONICAL_LENGTH) throw tooLarge(field);
    parts.push(text);
  };
  const open = new Set<object>();
  const stack: Frame[] = [{ kind: 'value', value }];
  for (let frame = stack.pop(); frame !== undefined; frame = stack.pop()) {
    if (frame.kind === 'text') {
      emit(frame.text);
      continue;
    }
    if (frame.kind === 'leave') {
      open.delete(frame.object);
      continue;
    }
    const v = frame.value;
    if (typeof v === 'string') emit(JSON.stringify(v));
    else if (typeof v === 'number') emit(Number.isFinite(v) ? String(v) : 'null');
    else if (typeof v === 'boolean') emit(v ? 'true' : 'false');
    else if (typeof v === 'bigint') emit(v.toString());
    else if (typeof v !== 'object' || v === null) emit('null');
    else {
      if (open.has(v)) {
        throw new ApiError('ERR_VALIDATION', `${field} must be plain JSON data (it contains a cycle)`, { field });
      }
      open.add(v);
      stack.push({ kind: 'leave', object: v });
      if (Array.isArray(v)) {
        const items: readonly unknown[] = v;
        // Every item costs at least two characters; refuse before pushing millions of frames.
        if (length + 2 * items.length > MAX_CANONICAL_LENGTH) throw tooLarge(field);
        emit('[');
        stack.push({ kind: 'text', text: ']' });
        for (let i = items.length - 1; i >= 0; i--) {
          const item = items[i];
          stack.push({ kind: 'value', value: isSkipped(item) ? null : item });
          if (i > 0) stack.push({ kind: 'text', text: ',' });
        }
      } else {
        const record = v as Record<string, unknown>;
        const keys = Object.keys(record);
        if (length + 4 * keys.length > MAX_CANONICAL_LENGTH) throw tooLarge(field);
        const kept = keys.filter((key) => !isSkipped(record[key])).sort();
        emit('{');
        stack.push({ kind: 'text', text: '}' });
        for (let i = kept.length - 1; i >= 0; i--) {
          const key = kept[i] ?? '';
          stack.push({ kind: 'value', value: record[key] });
          stack.push({ kind: 'text', text: `${i > 0 ? ',' : ''}${JSON.stringify(key)}:` });
        }
      }
    }
  }
  return parts.join('');
}

export const PREVIEW_MAX_STRING = 256;
export const PREVIEW_MAX_ITEMS = 16;
export const PREVIEW_MAX_DEPTH = 4;

/** Cuts a string to at most `max` UTF-16 units plus an ellipsis, never splitting a surrogate pair. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${text.slice(0, end)}…`;
}

/**
 * A bounded copy of a value for echoing back: strings cut to 256 characters, arrays and objects to
 * their first 16 items (objects by sorted key, with a "…" entry counting the rest), and anything
 * deeper than 4 levels replaced by a placeholder. Recursion is bounded by the depth limit.
 */
export function previewJson(value: unknown, depth = 0): JsonValue {
  if (typeof value === 'string') return truncate(value, PREVIEW_MAX_STRING);
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'bigint') return value.toString();
  if (typeof value !== 'object' || value === null) return null;
  if (Array.isArray(value)) {
    const items: readonly unknown[] = value;
    if (depth >= PREVIEW_MAX_DEPTH) return `[array of ${items.length}]`;
    const out: JsonValue[] = [];
    for (let i = 0; i < items.length && i < PREVIEW_MAX_ITEMS; i++) {
      const item = items[i];
      out.push(isSkipped(item) ? null : previewJson(item, depth + 1));
    }
    if (items.length > PREVIEW_MAX_ITEMS) out.push(`… ${items.length - PREVIEW_MAX_ITEMS} more`);
    return out;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).filter((key) => !isSkipped(record[key]));
  if (depth >= PREVIEW_MAX_DEPTH) return `[object of ${keys.length}]`;
  keys.sort();
  const entries: [string, JsonValue][] = [];
  for (let i = 0; i < keys.length && i < PREVIEW_MAX_ITEMS; i++) {
    const key = keys[i] ?? '';
    entries.push([truncate(key, PREVIEW_MAX_STRING), previewJson(record[key], depth + 1)]);
  }
  if (keys.length > PREVIEW_MAX_ITEMS) entries.push(['…', `${keys.length - PREVIEW_MAX_ITEMS} more`]);
  // fromEntries defines own properties, so a "__proto__" key stays data instead of setting the prototype.
  return Object.fromEntries<JsonValue>(entries);
}
