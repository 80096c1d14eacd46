import { ApiError } from '../../errors/api-error.js';

/**
 * The AGENTESE path grammar (see docs/agentese.md):
 *
 *   path       := segment '.' segment ['.' segment] (clause | annotation)*
 *   segment    := letter (letter | digit | '_' | '-')*            at most 64 characters
 *   clause     := '[' key '=' value ']'                           key from CLAUSE_KEYS, once each
 *   annotation := '@' key '=' value                               free key, at most 8 annotations
 *
 * The three segments are context, holon and (optionally) aspect. The whole path is at most 512
 * characters. The scanner is a single left-to-right pass over char codes (no regular expressions),
 * so its cost is linear in the input and bounded by MAX_PATH_LENGTH.
 */

export const AGENTESE_CONTEXTS = ['world', 'self', 'concept', 'void', 'time'] as const;
export type AgenteseContext = (typeof AGENTESE_CONTEXTS)[number];

export const PHASES = [
  'PLAN', 'RESEARCH', 'DEVELOP', 'STRATEGIZE', 'CROSS-SYNERGIZE', 'IMPLEMENT', 'QA', 'TEST', 'EDUCATE', 'MEASURE', 'REFLECT',
] as const;
export type Phase = (typeof PHASES)[number];

/** `sprint` is accepted alongside the keys because the original project's paths use it. */
export const CLAUSE_KEYS = ['phase', 'entropy', 'law_check', 'span', 'sprint', 'rollback', 'minimal_output'] as const;
export type ClauseKey = (typeof CLAUSE_KEYS)[number];

export const MAX_PATH_LENGTH = 512;
export const MAX_SEGMENT_LENGTH = 64;
export const MAX_KEY_LENGTH = 32;
export const MAX_VALUE_LENGTH = 128;
export const MAX_ANNOTATIONS = 8;

export type ClauseValue = string | number | boolean;

export interface ParsedPath {
  /** The path exactly as given. */
  readonly raw: string;
  readonly context: AgenteseContext;
  readonly holon: string;
  /** Present only when the path has a third segment. */
  readonly aspect?: string;
  /** phase: a PHASES value; entropy: number in 0..1; law_check/rollback/minimal_output: boolean; span/sprint: string. */
  readonly clauses: Record<string, ClauseValue>;
  readonly annotations: Record<string, string>;
}

const CONTEXT_SET: ReadonlySet<string> = new Set(AGENTESE_CONTEXTS);
const PHASE_SET: ReadonlySet<string> = new Set(PHASES);
const CLAUSE_KEY_SET: ReadonlySet<string> = new Set(CLAUSE_KEYS);
const BOOLEAN_CLAUSES: ReadonlySet<string> = new Set(['law_check', 'rollback', 'minimal_output']);
const SEGMENT_ROLES = ['context', 'holon', 'aspect'] as const;

const DOT = 46; // .
const OPEN = 91; // [
const CLOSE = 93; // ]
const AT = 64; // @
const EQUALS = 61; // =
const UNDERSCORE = 95; // _
const HYPHEN = 45; // -
const COLON = 58; // :

function isLetter(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90);
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** Characters of segments and of clause/annotation keys. */
function isNameChar(c: number): boolean {
  return isLetter(c) || isDigit(c) || c === UNDERSCORE || c === HYPHEN;
}

/** Characters of clause and annotation values: name characters plus '.' and ':'. */
function isValueChar(c: number): boolean {
  return isNameChar(c) || c === DOT || c === COLON;
}

function describeFound(raw: string, position: number): string {
  return position < raw.length ? JSON.stringify(raw[position]) : 'end of input';
}

function syntaxError(raw: string, position: number, problem: string, extra?: Record<string, unknown>): ApiError {
  return new ApiError(
    'ERR_AGENTESE_PATH_SYNTAX',
    `Invalid AGENTESE path at position ${position}: ${problem} (found ${describeFound(raw, position)})`,
    { position, found: position < raw.length ? raw[position] : null, ...extra },
  );
}

/** Scans a name (segment or key) starting at `start`; returns the index just past it. */
function scanName(raw: string, start: number, what: string, maxLength: number): number {
  if (start >= raw.length || !isLetter(raw.charCodeAt(start))) {
    throw syntaxError(raw, start, `expected a letter to start the ${what}`);
  }
  let i = start + 1;
  while (i < raw.length && isNameChar(raw.charCodeAt(i))) {
    if (i - start >= maxLength) throw syntaxError(raw, i, `the ${what} is longer than ${maxLength} characters`);
    i++;
  }
  return i;
}

/** Scans a value starting at `start`; returns the index just past it. Empty values are rejected. */
function scanValue(raw: string, start: number, what: string): number {
  let i = start;
  while (i < raw.length && isValueChar(raw.charCodeAt(i))) {
    if (i - start >= MAX_VALUE_LENGTH) throw syntaxError(raw, i, `the ${what} is longer than ${MAX_VALUE_LENGTH} characters`);
    i++;
  }
  if (i === start) throw syntaxError(raw, start, `expected a value for the ${what}`);
  const first = raw.charCodeAt(start);
  if (!isLetter(first) && !isDigit(first)) {
    throw syntaxError(raw, start, `the ${what} must start with a letter or digit`);
  }
  return i;
}

/** Digits with an optional fractional part: 0, 1, 0.25, 1.0. */
function isDecimal(value: string): boolean {
  let digitsBefore = 0;
  let i = 0;
  while (i < value.length && isDigit(value.charCodeAt(i))) { i++; digitsBefore++; }
  if (digitsBefore === 0) return false;
  if (i === value.length) return true;
  if (value.charCodeAt(i) !== DOT) return false;
  i++;
  const fractionStart = i;
  while (i < value.length && isDigit(value.charCodeAt(i))) i++;
  return i === value.length && i > fractionStart;
}

function clauseValue(raw: string, key: string, value: string, position: number): ClauseValue {
  if (key === 'phase') {
    const phase = value.toUpperCase();
    if (!PHASE_SET.has(phase)) {
      throw syntaxError(raw, position, `phase must be one of ${PHASES.join(', ')}`, { key, allowed: [...PHASES] });
    }
    return phase;
  }
  if (key === 'entropy') {
    const n = isDecimal(value) ? Number(value) : Number.NaN;
    if (!(n >= 0 && n <= 1)) throw syntaxError(raw, position, 'entropy must be a decimal number from 0 to 1', { key });
    return n;
  }
  if (BOOLEAN_CLAUSES.has(key)) {
    if (value === 'true') return true;
    if (value === 'false') return false;
    throw syntaxError(raw, position, `${key} must be true or false`, { key });
  }
  return value; // span, sprint: identifier-like tokens, already checked by scanValue
}

/**
 * Parses an AGENTESE path. Throws ApiError ERR_AGENTESE_PATH_SYNTAX (with the 0-based position of
 * the offending character in the message and in details.position) for malformed input, and
 * ERR_AGENTESE_PATH_NOT_FOUND when the syntax is valid but the context is not one of the five.
 * Never throws anything else, whatever the input.
 */
export function parsePath(raw: string): ParsedPath {
  if (typeof raw !== 'string') {
    throw new ApiError('ERR_AGENTESE_PATH_SYNTAX', 'Invalid AGENTESE path at position 0: the path must be a string', { position: 0 });
  }
  if (raw.length > MAX_PATH_LENGTH) {
    throw syntaxError(raw, MAX_PATH_LENGTH, `the path is longer than ${MAX_PATH_LENGTH} characters`, { max_length: MAX_PATH_LENGTH });
  }
  const n = raw.length;
  const segments: string[] = [];
  let i = 0;
  for (;;) {
    const role = SEGMENT_ROLES[segments.length] ?? 'aspect';
    const start = i;
    i = scanName(raw, start, role, MAX_SEGMENT_LENGTH);
    segments.push(raw.slice(start, i));
    if (i < n && raw.charCodeAt(i) === DOT) {
      if (segments.length === 3) {
        throw syntaxError(raw, i, 'a path has at most three segments (context.holon.aspect)');
      }
      i++;
      continue;
    }
    break;
  }
  if (segments.length < 2) throw syntaxError(raw, i, "expected '.' followed by a holon after the context");

  const clauses: Record<string, ClauseValue> = {};
  const annotations: Record<string, string> = {};
  let annotationCount = 0;
  while (i < n) {
    const c = raw.charCodeAt(i);
    if (c === OPEN) {
      const keyStart = i + 1;
      i = scanName(raw, keyStart, 'clause key', MAX_KEY_LENGTH);
      const key = raw.slice(keyStart, i);
      if (!CLAUSE_KEY_SET.has(key)) {
        throw syntaxError(raw, keyStart, `unknown clause key "${key}"; known keys: ${CLAUSE_KEYS.join(', ')}`, { key, known: [...CLAUSE_KEYS] });
      }
      if (Object.hasOwn(clauses, key)) throw syntaxError(raw, keyStart, `duplicate clause key "${key}"`, { key });
      if (i >= n || raw.charCodeAt(i) !== EQUALS) throw syntaxError(raw, i, `expected '=' after clause key "${key}"`, { key });
      const valueStart = i + 1;
      i = scanValue(raw, valueStart, `${key} clause`);
      if (i >= n) throw syntaxError(raw, i, "unterminated clause: expected ']'", { key });
      if (raw.charCodeAt(i) !== CLOSE) throw syntaxError(raw, i, `unexpected character in the ${key} clause: expected ']'`, { key });
      clauses[key] = clauseValue(raw, key, raw.slice(valueStart, i), valueStart);
      i++;
    } else if (c === AT) {
      if (annotationCount >= MAX_ANNOTATIONS) throw syntaxError(raw, i, `a path has at most ${MAX_ANNOTATIONS} annotations`);
      const keyStart = i + 1;
      i = scanName(raw, keyStart, 'annotation key', MAX_KEY_LENGTH);
      const key = raw.slice(keyStart, i);
      if (Object.hasOwn(annotations, key)) throw syntaxError(raw, keyStart, `duplicate annotation "${key}"`, { key });
      if (i >= n || raw.charCodeAt(i) !== EQUALS) throw syntaxError(raw, i, `expected '=' after annotation key "${key}"`, { key });
      const valueStart = i + 1;
      i = scanValue(raw, valueStart, 'annotation value');
      annotations[key] = raw.slice(valueStart, i);
      annotationCount++;
      // The value ends at '[', '@' or the end; anything else is reported by the loop head.
    } else {
      throw syntaxError(raw, i, "unexpected character: expected '[', '@' or the end of the path");
    }
  }

  const [context = '', holon = '', aspect] = segments;
  if (!CONTEXT_SET.has(context)) {
    throw new ApiError(
      'ERR_AGENTESE_PATH_NOT_FOUND',
      `Unknown AGENTESE context "${context}"; valid contexts: ${AGENTESE_CONTEXTS.join(', ')}`,
      { context, contexts: [...AGENTESE_CONTEXTS] },
    );
  }
  const known = context as AgenteseContext;
  return aspect === undefined
    ? { raw, context: known, holon, clauses, annotations }
    : { raw, context: known, holon, aspect, clauses, annotations };
}
