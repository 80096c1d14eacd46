/**
 * What the load generator sends. A scenario is one kind of request (method, path, body, headers) with
 * a weight; each keeps its own figures. Requests of a scenario rotate through its `variants` so the
 * server does not answer the same path every time.
 */

export interface RequestVariant {
  readonly path: string;
  readonly body?: string;
}

export interface Scenario {
  readonly name: string;
  readonly weight: number;
  readonly method: 'GET' | 'POST';
  readonly variants: readonly RequestVariant[];
  readonly headers: Readonly<Record<string, string>>;
  /** Sends an API key (X-API-Key), rotating through the run's keys. */
  readonly auth: boolean;
}

type ScenarioTemplate = Omit<Scenario, 'weight'>;

const RESOLVE_PATHS = ['world.house', 'self.memory', 'concept.justice', 'time.present', 'void.entropy', 'world.garden'];

const INVOKE_BODIES: readonly unknown[] = [
  { path: 'world.house.manifest' },
  { path: 'world.house.renovate', observer: { name: 'load', archetype: 'architect' }, kwargs: { rooms: ['kitchen'], budget: 12000 } },
  { path: 'self.memory.inspect', observer: { name: 'load' } },
  { path: 'time.present.forecast', kwargs: { horizon: 3 } },
  { path: 'concept.justice.relate', kwargs: { target: 'concept.beauty' } },
  { path: 'void.entropy.sip', kwargs: { amount: 0.1 } },
];

/** The built-in scenarios: the endpoints of the seeds' soak plus the billable call. */
export const BUILTIN_SCENARIOS: Readonly<Record<string, ScenarioTemplate>> = {
  health: { name: 'health', method: 'GET', variants: [{ path: '/health/saas' }], headers: {}, auth: false },
  resolve: {
    name: 'resolve', method: 'GET', headers: {}, auth: true,
    variants: RESOLVE_PATHS.map((p) => ({ path: `/v1/agentese/resolve?path=${encodeURIComponent(p)}` })),
  },
  invoke: {
    name: 'invoke', method: 'POST', headers: { 'content-type': 'application/json' }, auth: true,
    variants: INVOKE_BODIES.map((b) => ({ path: '/v1/agentese/invoke', body: JSON.stringify(b) })),
  },
};

export const DEFAULT_MIX = 'health=1,resolve=3,invoke=6';

export class MixSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MixSyntaxError';
  }
}

/**
 * Parses `health=1,resolve=3,invoke=6`. An entry is a built-in name or a path starting with "/" (a plain
 * GET of that path, named after it); the weight defaults to 1. Weights are positive numbers.
 */
export function parseMix(text: string): Scenario[] {
  const entries = text.split(',').map((e) => e.trim()).filter((e) => e !== '');
  if (entries.length === 0) throw new MixSyntaxError('the mix is empty');
  const seen = new Set<string>();
  return entries.map((entry) => {
    const eq = entry.lastIndexOf('=');
    const name = (eq > 0 ? entry.slice(0, eq) : entry).trim();
    const weightText = eq > 0 ? entry.slice(eq + 1).trim() : '1';
    const weight = Number(weightText);
    if (weightText === '' || !Number.isFinite(weight) || weight <= 0) {
      throw new MixSyntaxError(`mix entry "${entry}": the weight must be a positive number`);
    }
    if (seen.has(name)) throw new MixSyntaxError(`mix entry "${entry}": "${name}" appears twice`);
    seen.add(name);
    if (name.startsWith('/')) {
      return { name, weight, method: 'GET', variants: [{ path: name }], headers: {}, auth: false };
    }
    const template = BUILTIN_SCENARIOS[name];
    if (!template) {
      throw new MixSyntaxError(`mix entry "${entry}": unknown scenario "${name}"; use ${Object.keys(BUILTIN_SCENARIOS).join(', ')} or a path such as /health`);
    }
    return { ...template, weight };
  });
}

/**
 * The order in which scenarios are picked: smooth weighted round-robin over one period (the weights
 * scaled to integers), so any stretch of requests follows the weights closely and a whole period exactly.
 */
export function weightedSequence(weights: readonly number[]): number[] {
  if (weights.length === 0) return [];
  // Scale to integers: up to three decimals, then divide by the greatest common divisor.
  const scaled = weights.map((w) => Math.max(1, Math.round(w * 1000)));
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const g = scaled.reduce((a, b) => gcd(a, b));
  let ints = scaled.map((w) => w / g);
  let period = ints.reduce((a, b) => a + b, 0);
  if (period > 10_000) {
    // Very uneven decimals: approximate within 0.01 %.
    const factor = 10_000 / period;
    ints = ints.map((w) => Math.max(1, Math.round(w * factor)));
    period = ints.reduce((a, b) => a + b, 0);
  }
  const current = ints.map(() => 0);
  const sequence: number[] = [];
  for (let step = 0; step < period; step++) {
    let best = 0;
    for (let i = 0; i < ints.length; i++) {
      current[i] = (current[i] ?? 0) + (ints[i] ?? 0);
      if ((current[i] ?? 0) > (current[best] ?? 0)) best = i;
    }
    current[best] = (current[best] ?? 0) - period;
    sequence.push(best);
  }
  return sequence;
}
