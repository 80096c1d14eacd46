/**
 * AGENTESE: paths of the form context.holon[.aspect][key=value]@key=value, resolved against a
 * catalog and invoked as an observer whose archetype decides what is afforded. Pure code: no I/O,
 * deterministic, and every failure is an ApiError. Reference: docs/agentese.md.
 */
export {
  AGENTESE_CONTEXTS, CLAUSE_KEYS, MAX_PATH_LENGTH, PHASES, parsePath,
  type AgenteseContext, type ClauseKey, type ClauseValue, type ParsedPath, type Phase,
} from './grammar.js';
export { ASPECT_DESCRIPTIONS, KNOWN_ARCHETYPES, type Aspect, type KnownArchetype } from './affordances.js';
export { CATALOG, catalogHolons, type CatalogFile, type ContextEntry, type HolonEntry } from './catalog.js';
export type { JsonObject, JsonValue } from './json.js';
export {
  affordances, invoke, invokeText, resolve,
  type AffordancesResult, type InvokeResult, type InvokeText, type Observer, type ResolveResult,
} from './logos.js';
