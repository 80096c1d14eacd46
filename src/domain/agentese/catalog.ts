import catalogFile from './catalog.json' with { type: 'json' };
import { AGENTESE_CONTEXTS, type AgenteseContext } from './grammar.js';

/**
 * The holon catalog. The data lives in catalog.json (shipped with the code; tsc copies it to dist
 * because it is imported). Assigning the imported JSON to CatalogFile makes the compiler check its
 * shape, including that all five contexts are present.
 */
export interface HolonEntry {
  readonly description: string;
  /** Canonical `context.holon` handles of other catalog holons. */
  readonly related: readonly string[];
}

export interface ContextEntry {
  readonly description: string;
  readonly holons: Readonly<Record<string, HolonEntry>>;
}

export interface CatalogFile {
  readonly version: number;
  readonly contexts: Readonly<Record<AgenteseContext, ContextEntry>>;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** The catalog as loaded, frozen so that no caller can change what later lookups see. */
export const CATALOG: CatalogFile = deepFreeze(catalogFile);

/** What a path's context.holon resolves to: a catalog holon, or a generic node for an unknown holon. */
export interface CatalogNode {
  readonly context: AgenteseContext;
  readonly holon: string;
  /** `context.holon` */
  readonly handle: string;
  readonly description: string;
  readonly contextDescription: string;
  readonly generic: boolean;
  readonly related: readonly string[];
}

// Maps (not the JSON objects) so that names such as "constructor" or "toString" never hit Object.prototype.
const NODES: ReadonlyMap<AgenteseContext, ReadonlyMap<string, CatalogNode>> = new Map(
  AGENTESE_CONTEXTS.map((context) => {
    const entry = CATALOG.contexts[context];
    const holons = new Map<string, CatalogNode>();
    for (const [holon, h] of Object.entries(entry.holons)) {
      holons.set(holon, Object.freeze({
        context,
        holon,
        handle: `${context}.${holon}`,
        description: h.description,
        contextDescription: entry.description,
        generic: false,
        related: Object.freeze([...h.related]),
      }));
    }
    return [context, holons] as const;
  }),
);

const NO_RELATIONS: readonly string[] = Object.freeze([]);

/** The catalog node for context.holon, or a generic node when the holon is not catalogued. */
export function lookupNode(context: AgenteseContext, holon: string): CatalogNode {
  const found = NODES.get(context)?.get(holon);
  if (found) return found;
  return {
    context,
    holon,
    handle: `${context}.${holon}`,
    description: `An uncatalogued holon in the ${context} context: it has no description of its own and affords what every ${context} node affords.`,
    contextDescription: CATALOG.contexts[context].description,
    generic: true,
    related: NO_RELATIONS,
  };
}

/** Catalogued holon names of a context, in catalog order. */
export function catalogHolons(context: AgenteseContext): string[] {
  return [...(NODES.get(context)?.keys() ?? [])];
}
