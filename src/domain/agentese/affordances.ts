import { ApiError } from '../../errors/api-error.js';
import { AGENTESE_CONTEXTS, type AgenteseContext } from './grammar.js';

/** Every aspect any observer can be afforded, with the one-line description `help` shows. */
export const ASPECT_DESCRIPTIONS = {
  // base: every context, every archetype
  manifest: 'Show the node as this observer sees it.',
  witness: 'Record a deterministic trace of observing the node.',
  affordances: 'List the aspects this observer can invoke here.',
  help: 'Describe each afforded aspect.',
  // world, every archetype
  define: 'Give the definition of the node.',
  relate: 'List the nodes this one is related to, optionally checking a target.',
  transform: 'Describe the node turned into another form.',
  // world, per archetype
  renovate: 'Propose changes that keep the structure but renew it.',
  measure: 'Quantify the node along the dimensions this observer cares about.',
  blueprint: 'Draw the plan the node was or could be built from.',
  demolish: 'Describe what taking the node apart would free up and cost.',
  design: 'Sketch a new form for the node.',
  describe: 'Render the node in words.',
  metaphorize: 'Understand the node in terms of something else.',
  inhabit: 'Imagine living inside the node.',
  contemplate: 'Dwell on the node without acting on it.',
  appraise: 'Estimate what the node is worth.',
  forecast: 'Project the node forward over a horizon.',
  compare: 'Set the node beside related ones.',
  trade: 'Describe what the node could be exchanged for.',
  enter: 'Step into the node.',
  exit: 'Step out of the node.',
  furnish: 'Add what makes the node comfortable to use.',
  repair: 'Fix what is broken in the node.',
  use: 'Put the node to its everyday purpose.',
  analyze: 'Break the node into parts and mechanisms.',
  experiment: 'Design a test that could change what is known about the node.',
  hypothesize: 'State a falsifiable claim about the node.',
  build: 'Assemble the node from its parts.',
  deploy: 'Put the node into service.',
  debug: 'Find why the node misbehaves.',
  test: 'Check the node against expectations.',
  refactor: 'Restructure the node without changing what it does.',
  configure: 'Set the node\'s parameters.',
  monitor: 'Watch the node\'s health over time.',
  audit: 'Review who did what to the node.',
  provision: 'Allocate what the node needs to run.',
  // concept, per archetype
  refine: 'Sharpen the concept by removing what is accidental.',
  dialectic: 'Set the concept against its opposite.',
  synthesize: 'Combine the concept with another into something new.',
  critique: 'Examine the concept\'s assumptions.',
  validate: 'Check the concept against evidence.',
  falsify: 'Look for the observation that would refute the concept.',
  model: 'Express the concept as a model with parameters.',
  formalize: 'Write the concept down precisely.',
  specify: 'Turn the concept into requirements.',
  optimize: 'Find the best trade-off the concept allows.',
  implement: 'Outline how the concept becomes working code.',
  express: 'Give the concept a form others can feel.',
  interpret: 'Say what the concept means here.',
  juxtapose: 'Place the concept beside an unlikely neighbour.',
  remix: 'Recombine the concept\'s parts.',
  explain: 'Make the concept understandable.',
  exemplify: 'Give a concrete example of the concept.',
  simplify: 'Say the concept with fewer moving parts.',
  quiz: 'Ask questions that check understanding of the concept.',
  // self
  inspect: 'Report what the observer knows about itself.',
  // void
  sip: 'Draw a small, deterministic amount of entropy.',
  tithe: 'Give unspent entropy back.',
  // time
  trace: 'Follow the node\'s relations as an ordered trace.',
} as const satisfies Record<string, string>;

export type Aspect = keyof typeof ASPECT_DESCRIPTIONS;

/** Archetypes with their own affordances or lens; any other archetype is served the default set. */
export const KNOWN_ARCHETYPES = [
  'default', 'architect', 'poet', 'economist', 'inhabitant', 'scientist', 'developer', 'admin',
  'philosopher', 'engineer', 'artist', 'teacher',
] as const;
export type KnownArchetype = (typeof KNOWN_ARCHETYPES)[number];

/** How each archetype looks at a node; reported by `manifest`. */
export const ARCHETYPE_LENSES: Readonly<Record<KnownArchetype, string>> = {
  default: 'the plain surface: what the node is and what it affords',
  architect: 'structure, load and form',
  poet: 'image, rhythm and resonance',
  economist: 'value, scarcity and exchange',
  inhabitant: 'comfort, use and belonging',
  scientist: 'mechanism, measurement and evidence',
  developer: 'interfaces, failure modes and build steps',
  admin: 'configuration, access and health',
  philosopher: 'assumptions, tensions and essences',
  engineer: 'specifications, constraints and trade-offs',
  artist: 'expression, texture and contrast',
  teacher: 'what is hard to learn and how to show it',
};

export const BASE_ASPECTS: readonly Aspect[] = ['manifest', 'witness', 'affordances', 'help'];

interface ContextRule {
  /** Added for every archetype in this context, after the base set. */
  readonly common: readonly Aspect[];
  /** Added after `common` for the named archetypes. */
  readonly byArchetype: Readonly<Partial<Record<KnownArchetype, readonly Aspect[]>>>;
  /** Added after `common` for every archetype not in byArchetype (including `default`). */
  readonly otherwise: readonly Aspect[];
}

export const CONTEXT_RULES: Readonly<Record<AgenteseContext, ContextRule>> = {
  world: {
    common: ['define', 'relate', 'transform'],
    byArchetype: {
      architect: ['renovate', 'measure', 'blueprint', 'demolish', 'design'],
      poet: ['describe', 'metaphorize', 'inhabit', 'contemplate'],
      economist: ['appraise', 'forecast', 'compare', 'trade'],
      inhabitant: ['enter', 'exit', 'furnish', 'repair', 'use'],
      scientist: ['analyze', 'measure', 'experiment', 'hypothesize'],
      developer: ['build', 'deploy', 'debug', 'test', 'refactor'],
      admin: ['configure', 'monitor', 'audit', 'provision'],
    },
    otherwise: [],
  },
  concept: {
    common: [],
    byArchetype: {
      philosopher: ['refine', 'dialectic', 'synthesize', 'critique'],
      scientist: ['hypothesize', 'validate', 'falsify', 'model'],
      engineer: ['formalize', 'specify', 'optimize', 'implement'],
      artist: ['express', 'interpret', 'juxtapose', 'remix'],
      teacher: ['explain', 'exemplify', 'simplify', 'quiz'],
    },
    otherwise: ['relate'],
  },
  self: { common: ['inspect'], byArchetype: {}, otherwise: [] },
  void: { common: ['sip', 'tithe'], byArchetype: {}, otherwise: [] },
  time: { common: ['trace', 'forecast'], byArchetype: {}, otherwise: [] },
};

export interface AffordanceSet {
  /** Base set, then the context's common aspects, then the archetype's; deduplicated, first occurrence wins. */
  readonly list: readonly Aspect[];
  readonly has: (aspect: string) => boolean;
}

function buildSet(context: AgenteseContext, archetype: KnownArchetype): AffordanceSet {
  const rule = CONTEXT_RULES[context];
  const extra = rule.byArchetype[archetype] ?? rule.otherwise;
  const list = Object.freeze([...new Set<Aspect>([...BASE_ASPECTS, ...rule.common, ...extra])]);
  const members: ReadonlySet<string> = new Set(list);
  return Object.freeze({ list, has: (aspect: string) => members.has(aspect) });
}

/** Computed once at load: every (context, known archetype) pair. */
const SETS: ReadonlyMap<AgenteseContext, ReadonlyMap<string, AffordanceSet>> = new Map(
  AGENTESE_CONTEXTS.map((context) => [
    context,
    new Map(KNOWN_ARCHETYPES.map((archetype) => [archetype, buildSet(context, archetype)] as const)),
  ] as const),
);

const KNOWN_SET: ReadonlySet<string> = new Set(KNOWN_ARCHETYPES);

export function isKnownArchetype(archetype: string): archetype is KnownArchetype {
  return KNOWN_SET.has(archetype);
}

/** The precomputed set for (context, archetype); unknown archetypes get the `default` set. */
export function affordanceSet(context: AgenteseContext, archetype: string): AffordanceSet {
  const byArchetype = SETS.get(context);
  const found = byArchetype?.get(archetype) ?? byArchetype?.get('default');
  // Every context has a 'default' entry; this only satisfies the type checker.
  if (!found) throw new ApiError('ERR_AGENTESE_PATH_NOT_FOUND', `Unknown AGENTESE context "${context}"`, { contexts: [...AGENTESE_CONTEXTS] });
  return found;
}

export function lensOf(archetype: string): string {
  return isKnownArchetype(archetype) ? ARCHETYPE_LENSES[archetype] : ARCHETYPE_LENSES.default;
}

export const MAX_ARCHETYPE_LENGTH = 64;

/**
 * The observer's archetype, normalised: trimmed and lower-cased; missing, empty or non-string
 * means `default`. Longer than 64 characters is a validation error (it is a lookup key, not text).
 */
export function normalizeArchetype(archetype: unknown): string {
  if (typeof archetype !== 'string') return 'default';
  const trimmed = archetype.trim();
  if (trimmed === '') return 'default';
  if (trimmed.length > MAX_ARCHETYPE_LENGTH) {
    throw new ApiError('ERR_VALIDATION', `observer.archetype must be at most ${MAX_ARCHETYPE_LENGTH} characters`, {
      field: 'observer.archetype',
      max_length: MAX_ARCHETYPE_LENGTH,
    });
  }
  return trimmed.toLowerCase();
}
