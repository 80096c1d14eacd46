import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { ApiError } from '../../errors/api-error.js';
import {
  affordanceSet, ASPECT_DESCRIPTIONS, type Aspect, lensOf, normalizeArchetype,
} from './affordances.js';
import { type CatalogNode, lookupNode } from './catalog.js';
import { type AgenteseContext, type ClauseValue, parsePath } from './grammar.js';
import { canonicalJson, type JsonObject, type JsonValue, previewJson, truncate } from './json.js';
import { manifestJson, type JsonText } from './manifest-json.js';

/** Who is grasping the handle. Only `archetype` changes affordances; the rest is reported back. */
export interface Observer {
  name?: string;
  archetype?: string;
  capabilities?: string[];
}

export interface ResolveResult {
  /** The path as given. */
  path: string;
  /** Canonical `context.holon`, plus `.aspect` when the path names one (clauses and annotations dropped). */
  handle: string;
  context: AgenteseContext;
  holon: string;
  aspect: string | null;
  /** The catalog description, or a generic one for an uncatalogued holon. */
  description: string;
  /** True when the holon is not in the catalog and resolved to a generic node. */
  generic: boolean;
  affordances: string[];
}

export interface AffordancesResult {
  path: string;
  affordances: string[];
  observer_archetype: string;
}

export interface InvokeResult {
  path: string;
  result: JsonValue;
  tokens_used: number;
  cached: false;
}

const MAX_ECHO_NAME = 64;
const MAX_ECHO_CAPABILITIES = 16;
const MAX_ECHO_TEXT = 128;
const DEFAULT_SIP = 0.05;
const DEFAULT_HORIZON = 3;
const MAX_HORIZON = 12;
const SIGNALS = ['steady', 'rising', 'falling', 'turbulent'] as const;

export function resolve(path: string, observer: Observer): ResolveResult {
  const parsed = parsePath(path);
  const archetype = normalizeArchetype(observer?.archetype);
  const node = lookupNode(parsed.context, parsed.holon);
  return {
    path,
    handle: parsed.aspect === undefined ? node.handle : `${node.handle}.${parsed.aspect}`,
    context: parsed.context,
    holon: parsed.holon,
    aspect: parsed.aspect ?? null,
    description: node.description,
    generic: node.generic,
    affordances: affordanceSet(parsed.context, archetype).list.slice(),
  };
}

/** The aspects the observer's archetype affords in the path's context (an aspect in the path is ignored). */
export function affordances(path: string, observer: Observer): AffordancesResult {
  const parsed = parsePath(path);
  const archetype = normalizeArchetype(observer?.archetype);
  return { path, affordances: affordanceSet(parsed.context, archetype).list.slice(), observer_archetype: archetype };
}

interface Invocation {
  readonly node: CatalogNode;
  readonly aspect: Aspect;
  readonly archetype: string;
  readonly available: readonly Aspect[];
  readonly clauses: Readonly<Record<string, ClauseValue>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly kwargs: Readonly<Record<string, unknown>>;
  /** Deterministic fingerprint of (path, observer, kwargs): 16 hex digits; hashed on first use. */
  readonly fingerprint: () => string;
  readonly observerName: string | null;
  readonly capabilities: string[];
  readonly minimal: boolean;
}

type AspectHandler = (inv: Invocation) => JsonObject;

function invalidKwarg(name: string, requirement: string): ApiError {
  return new ApiError('ERR_VALIDATION', `kwargs.${name} ${requirement}`, { field: `kwargs.${name}` });
}

function optionalText(kwargs: Readonly<Record<string, unknown>>, name: string): string | undefined {
  const value = kwargs[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw invalidKwarg(name, 'must be a string');
  return truncate(value, MAX_ECHO_TEXT);
}

/** The amount for sip/tithe: kwargs.amount, else the path's entropy clause, else 0.05. */
function entropyAmount(inv: Invocation): number {
  const value = inv.kwargs.amount;
  if (value === undefined || value === null) {
    const clause = inv.clauses.entropy;
    return typeof clause === 'number' ? clause : DEFAULT_SIP;
  }
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) throw invalidKwarg('amount', 'must be a number from 0 to 1');
  return value;
}

/** A number in [0, 1) derived from the fingerprint and a salt, so "random" outputs are reproducible. */
function unitFrom(fingerprint: string, salt: number): number {
  // murmur3's 32-bit finaliser over (first 32 bits of the fingerprint) xor (salt * golden ratio)
  let h = (Number.parseInt(fingerprint.slice(0, 8), 16) ^ Math.imul(salt + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) >>> 0) / 0x1_0000_0000;
}

function round4(n: number): number {
  return Math.round(n * 10_000) / 10_000;
}

const HANDLERS: Partial<Record<Aspect, AspectHandler>> = {
  manifest: (inv): JsonObject => (inv.minimal
    ? { description: inv.node.description }
    : {
      description: inv.node.description,
      context_description: inv.node.contextDescription,
      generic: inv.node.generic,
      related: [...inv.node.related],
      archetype: inv.archetype,
      lens: lensOf(inv.archetype),
      affordances: [...inv.available],
      observer: { name: inv.observerName, capabilities: inv.capabilities },
    }),

  witness: (inv) => {
    const events: JsonObject[] = [
      { event: 'grasp', detail: inv.node.handle },
      { event: 'resolve', detail: inv.node.generic ? 'generic node' : 'catalog node' },
      { event: 'observe', detail: `${inv.archetype}: ${lensOf(inv.archetype)}` },
    ];
    for (const key of ['phase', 'sprint', 'span'] as const) {
      const value = inv.clauses[key];
      if (value !== undefined) events.push({ event: key, detail: String(value) });
    }
    for (const [key, value] of Object.entries(inv.annotations)) events.push({ event: 'annotation', detail: `${key}=${value}` });
    events.push({ event: 'witness', detail: `kwargs ${Object.keys(inv.kwargs).length} keys` });
    return {
      trace_id: inv.fingerprint(),
      observer: inv.observerName,
      archetype: inv.archetype,
      ...(inv.minimal ? {} : { events: events.map((e, i) => ({ seq: i + 1, ...e })) }),
    };
  },

  affordances: (inv) => ({ archetype: inv.archetype, affordances: [...inv.available] }),

  help: (inv) => ({
    archetype: inv.archetype,
    aspects: inv.minimal
      ? [...inv.available]
      : inv.available.map((aspect) => ({ aspect, description: ASPECT_DESCRIPTIONS[aspect] })),
  }),

  define: (inv) => ({
    term: inv.node.holon,
    definition: inv.node.description,
    context: inv.node.contextDescription,
    generic: inv.node.generic,
  }),

  relate: (inv): JsonObject => {
    const target = optionalText(inv.kwargs, 'target');
    const related = [...inv.node.related];
    if (target === undefined) return { related };
    return { related, target, connected: target === inv.node.handle || related.includes(target) };
  },

  transform: (inv) => {
    const into = optionalText(inv.kwargs, 'into') ?? 'another form';
    return {
      from: inv.node.handle,
      into,
      summary: `${inv.node.handle} recast as ${into}; what carries over: ${inv.node.description}`,
    };
  },

  inspect: (inv) => ({
    observer: { name: inv.observerName, archetype: inv.archetype, capabilities: inv.capabilities },
    lens: lensOf(inv.archetype),
    affordance_count: inv.available.length,
    focus: inv.node.description,
  }),

  sip: (inv) => {
    const requested = entropyAmount(inv);
    return { requested, drawn: round4(requested * unitFrom(inv.fingerprint(), 0)) };
  },

  tithe: (inv) => {
    const offered = entropyAmount(inv);
    return { offered, returned: offered, note: 'Unspent entropy goes back to the void, where the next cycle can draw on it.' };
  },

  trace: (inv) => ({
    steps: [inv.node.handle, ...inv.node.related].map((node, i) => ({ step: i + 1, node })),
  }),

  forecast: (inv) => {
    const raw = inv.kwargs.horizon;
    let horizon = DEFAULT_HORIZON;
    if (raw !== undefined && raw !== null) {
      if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 1 || raw > MAX_HORIZON) {
        throw invalidKwarg('horizon', `must be an integer from 1 to ${MAX_HORIZON}`);
      }
      horizon = raw;
    }
    const outlook: JsonObject[] = [];
    for (let step = 1; step <= horizon; step++) {
      outlook.push({ step, signal: SIGNALS[Math.floor(unitFrom(inv.fingerprint(), step) * SIGNALS.length)] ?? 'steady' });
    }
    return { horizon, outlook };
  },
};

/** Aspects without a dedicated handler: a deterministic summary plus a bounded echo of kwargs. */
function genericAspect(inv: Invocation): JsonObject {
  const summary = `${inv.aspect} ${inv.node.handle} as ${inv.archetype}: ${ASPECT_DESCRIPTIONS[inv.aspect]}`;
  if (inv.minimal) return { summary };
  return {
    summary,
    archetype: inv.archetype,
    lens: lensOf(inv.archetype),
    subject: inv.node.description,
    inputs: previewJson(inv.kwargs),
    fingerprint: inv.fingerprint(),
  };
}

function observerName(observer: Observer | undefined): string | null {
  const name = observer?.name;
  return typeof name === 'string' ? truncate(name, MAX_ECHO_NAME) : null;
}

function observerCapabilities(observer: Observer | undefined): string[] {
  const caps: unknown = observer?.capabilities;
  if (!Array.isArray(caps)) return [];
  const out: string[] = [];
  for (const cap of caps as readonly unknown[]) {
    if (out.length >= MAX_ECHO_CAPABILITIES) break;
    if (typeof cap === 'string') out.push(truncate(cap, MAX_ECHO_NAME));
  }
  return out;
}

function checkKwargs(kwargs: unknown): Readonly<Record<string, unknown>> {
  if (kwargs === undefined || kwargs === null) return {};
  if (typeof kwargs !== 'object' || Array.isArray(kwargs)) {
    throw new ApiError('ERR_VALIDATION', 'kwargs must be a JSON object', { field: 'kwargs' });
  }
  return kwargs as Readonly<Record<string, unknown>>;
}

/** A prepared invocation: the handlers' input and the UTF-8 size of the call's input. */
interface Prepared {
  readonly inv: Invocation;
  readonly inputBytes: number;
}

function prepare(path: string, observer: Observer, kwargs: Record<string, unknown>): Prepared {
  const parsed = parsePath(path);
  const archetype = normalizeArchetype(observer?.archetype);
  const set = affordanceSet(parsed.context, archetype);
  const aspect = parsed.aspect ?? 'manifest';
  const node = lookupNode(parsed.context, parsed.holon);
  if (!set.has(aspect)) {
    throw new ApiError(
      'ERR_AGENTESE_AFFORDANCE_DENIED',
      `The ${archetype} archetype cannot invoke "${aspect}" on ${node.handle}; available: ${set.list.join(', ')}`,
      { aspect, archetype, available: [...set.list] },
    );
  }
  const args = checkKwargs(kwargs);
  const kwargsJson = canonicalJson(args, 'kwargs');
  const observerJson = canonicalJson(observer ?? {}, 'observer');
  let digest: string | undefined;
  const fingerprint = (): string => {
    digest ??= createHash('sha256').update(`${path}\n${observerJson}\n${kwargsJson}`).digest('hex').slice(0, 16);
    return digest;
  };
  const inv: Invocation = {
    node,
    aspect: aspect as Aspect,
    archetype,
    available: set.list,
    clauses: parsed.clauses,
    annotations: parsed.annotations,
    kwargs: args,
    fingerprint,
    observerName: observerName(observer),
    capabilities: observerCapabilities(observer),
    minimal: parsed.clauses.minimal_output === true,
  };
  const inputBytes = Buffer.byteLength(path, 'utf8') + Buffer.byteLength(observerJson, 'utf8') + Buffer.byteLength(kwargsJson, 'utf8');
  return { inv, inputBytes };
}

function hasKeys(record: Readonly<Record<string, unknown>>): boolean {
  for (const key in record) if (Object.hasOwn(record, key)) return true;
  return false;
}

function resultOf({ inv }: Prepared): JsonObject {
  const body = (HANDLERS[inv.aspect] ?? genericAspect)(inv);
  const echo: JsonObject = {};
  if (!inv.minimal) {
    if (hasKeys(inv.clauses)) echo.clauses = { ...inv.clauses };
    if (hasKeys(inv.annotations)) echo.annotations = { ...inv.annotations };
  }
  return { node: inv.node.handle, aspect: inv.aspect, ...body, ...echo };
}

/** The result's echo of clauses and annotations as JSON members (`,"clauses":{…}`), or ''. */
function echoJson({ inv }: Prepared): string {
  if (inv.minimal) return '';
  let text = '';
  if (hasKeys(inv.clauses)) text += `,"clauses":${JSON.stringify(inv.clauses)}`;
  if (hasKeys(inv.annotations)) text += `,"annotations":${JSON.stringify(inv.annotations)}`;
  return text;
}

function tokensFor(inputBytes: number, resultBytes: number): number {
  return Math.max(1, Math.ceil((inputBytes + resultBytes) / 4));
}

/**
 * Invokes the path's aspect (default `manifest`) as the observer. Deterministic: the same
 * (path, observer, kwargs) always gives the same result.
 *
 * tokens_used = ceil((input bytes + result bytes) / 4), at least 1, where input bytes are the
 * UTF-8 sizes of the path and of the JSON of observer and kwargs, and result bytes the UTF-8 size
 * of JSON.stringify(result). Four bytes per token is the usual rule of thumb for BPE tokenizers
 * on English and JSON text, so this approximates what a model would be charged for the exchange.
 */
export function invoke(path: string, observer: Observer, kwargs: Record<string, unknown>): InvokeResult {
  const prepared = prepare(path, observer, kwargs);
  const result = resultOf(prepared);
  return { path, result, tokens_used: tokensFor(prepared.inputBytes, Buffer.byteLength(JSON.stringify(result), 'utf8')), cached: false };
}

/** invoke()'s answer as the HTTP layer sends it. */
export interface InvokeText {
  /** Exactly `JSON.stringify(invoke(path, observer, kwargs))`. */
  readonly json: string;
  /** UTF-8 size of `json` (the answer's Content-Length). */
  readonly bytes: number;
  readonly tokens_used: number;
  /** The aspect invoked (the path's, else `manifest`). */
  readonly aspect: string;
}

const ANSWER_FIXED_BYTES = Buffer.byteLength('{"path":,"result":,"tokens_used":,"cached":false}', 'utf8');

/**
 * invoke() as JSON text, without building the result object where the text can be written from
 * pieces serialised once (manifest: manifest-json.ts); other aspects serialise their result.
 */
export function invokeText(path: string, observer: Observer, kwargs: Record<string, unknown>): InvokeText {
  const prepared = prepare(path, observer, kwargs);
  const { inv } = prepared;
  const result = inv.aspect === 'manifest'
    ? manifestJson(inv, echoJson(prepared))
    : jsonWithSize(JSON.stringify(resultOf(prepared)));
  const tokens = tokensFor(prepared.inputBytes, result.bytes);
  const pathJson = JSON.stringify(path);
  const tokensText = String(tokens);
  return {
    json: `{"path":${pathJson},"result":${result.text},"tokens_used":${tokensText},"cached":false}`,
    bytes: ANSWER_FIXED_BYTES + Buffer.byteLength(pathJson, 'utf8') + result.bytes + tokensText.length,
    tokens_used: tokens,
    aspect: inv.aspect,
  };
}

function jsonWithSize(text: string): JsonText {
  return { text, bytes: Buffer.byteLength(text, 'utf8') };
}
