import { Buffer } from 'node:buffer';
import { lensOf, isKnownArchetype } from './affordances.js';
import type { CatalogNode } from './catalog.js';

/** JSON text and its UTF-8 size. */
export interface JsonText {
  readonly text: string;
  readonly bytes: number;
}

/** What a manifest result is made of (logos.ts's Invocation, the fields manifest reads). */
export interface ManifestInput {
  readonly node: CatalogNode;
  readonly archetype: string;
  readonly available: readonly string[];
  readonly observerName: string | null;
  readonly capabilities: readonly string[];
  readonly minimal: boolean;
}

function jsonText(text: string): JsonText {
  return { text, bytes: Buffer.byteLength(text, 'utf8') };
}

// Catalog nodes, affordance lists and known archetypes are fixed at load, so each piece is
// serialised once; uncatalogued nodes are new objects per lookup and are serialised each time.
const heads = new WeakMap<CatalogNode, JsonText>();
const bodies = new WeakMap<CatalogNode, JsonText>();
const lists = new WeakMap<readonly string[], JsonText>();
const archetypes = new Map<string, JsonText>();
const NO_OBSERVER = jsonText(',"observer":{"name":null,"capabilities":[]}');
const CLOSE = jsonText('}');

/** `{"node":…,"aspect":"manifest","description":…`: what the minimal and the full result begin with. */
function headOf(node: CatalogNode): JsonText {
  let piece = heads.get(node);
  if (piece === undefined) {
    piece = jsonText(`{"node":${JSON.stringify(node.handle)},"aspect":"manifest","description":${JSON.stringify(node.description)}`);
    if (!node.generic) heads.set(node, piece);
  }
  return piece;
}

/** The node's fields after the description, up to the archetype's value. */
function bodyOf(node: CatalogNode): JsonText {
  let piece = bodies.get(node);
  if (piece === undefined) {
    piece = jsonText(`,"context_description":${JSON.stringify(node.contextDescription)},"generic":${node.generic},"related":${JSON.stringify(node.related)},"archetype":`);
    if (!node.generic) bodies.set(node, piece);
  }
  return piece;
}

/** The archetype's value, its lens and the key of the affordances. */
function archetypeOf(archetype: string): JsonText {
  let piece = archetypes.get(archetype);
  if (piece === undefined) {
    piece = jsonText(`${JSON.stringify(archetype)},"lens":${JSON.stringify(lensOf(archetype))},"affordances":`);
    if (isKnownArchetype(archetype)) archetypes.set(archetype, piece);
  }
  return piece;
}

function listOf(list: readonly string[]): JsonText {
  let piece = lists.get(list);
  if (piece === undefined) {
    piece = jsonText(JSON.stringify(list));
    if (Object.isFrozen(list)) lists.set(list, piece);
  }
  return piece;
}

function observerOf(name: string | null, capabilities: readonly string[]): JsonText {
  if (name === null && capabilities.length === 0) return NO_OBSERVER;
  return jsonText(`,"observer":{"name":${JSON.stringify(name)},"capabilities":${JSON.stringify(capabilities)}}`);
}

/**
 * The JSON text of a manifest result, exactly JSON.stringify of the object logos.ts's manifest
 * handler builds (`{node, aspect, ...body, ...echo}`; test/domain/agentese/invoke-text.test.ts holds
 * them equal), with its UTF-8 size. `echo`: the result's clauses and annotations as JSON members
 * (`,"clauses":{…}`), or ''. Why: manifest is the default aspect, and serialising its
 * catalog strings again on every call was the largest single item of invoke's instructions beyond
 * bare Fastify's (`node dist/bench/instructions.js`, docs/benchmarks.md, twelfth session).
 */
export function manifestJson(input: ManifestInput, echo: string): JsonText {
  const head = headOf(input.node);
  if (input.minimal) return { text: `${head.text}}`, bytes: head.bytes + 1 };
  const body = bodyOf(input.node);
  const archetype = archetypeOf(input.archetype);
  const list = listOf(input.available);
  const observer = observerOf(input.observerName, input.capabilities);
  const end = echo === '' ? CLOSE : jsonText(`${echo}}`);
  return {
    text: head.text + body.text + archetype.text + list.text + observer.text + end.text,
    bytes: head.bytes + body.bytes + archetype.bytes + list.bytes + observer.bytes + end.bytes,
  };
}
