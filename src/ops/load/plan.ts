import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../../cli/command.js';
import { TIERS, type Tier } from '../../config/schema.js';
import { parseDurationMs } from './duration.js';
import type { LoadModel } from './protocol.js';
import { runStamp } from './report.js';
import { defaultWorkers } from './runner.js';
import { DEFAULT_MIX, MixSyntaxError, parseMix, type Scenario } from './scenarios.js';
import { parseStages, peakLevel, StageSyntaxError, type Stage } from './schedule.js';
import { parseThreshold, ThresholdSyntaxError, type Threshold } from './thresholds.js';
import { normaliseUrl, readStackState } from './target.js';

/** The options `kgents load` and `kgents soak` share (node:util parseArgs shapes). */
export const LOAD_OPTIONS = {
  target: { type: 'string' },
  rate: { type: 'string' },
  vus: { type: 'string' },
  stages: { type: 'string' },
  duration: { type: 'string' },
  mix: { type: 'string' },
  key: { type: 'string', multiple: true },
  'create-keys': { type: 'boolean', default: false },
  keys: { type: 'string' },
  tier: { type: 'string' },
  threshold: { type: 'string', multiple: true },
  out: { type: 'string' },
  'max-in-flight': { type: 'string' },
  think: { type: 'string' },
  timeout: { type: 'string' },
  workers: { type: 'string' },
  'late-tolerance': { type: 'string' },
  json: { type: 'boolean', default: false },
  quiet: { type: 'boolean', default: false },
} as const;

export interface LoadOptionValues {
  target?: string;
  rate?: string;
  vus?: string;
  stages?: string;
  duration?: string;
  mix?: string;
  key?: string[];
  'create-keys'?: boolean;
  keys?: string;
  tier?: string;
  threshold?: string[];
  out?: string;
  'max-in-flight'?: string;
  think?: string;
  timeout?: string;
  workers?: string;
  'late-tolerance'?: string;
  json?: boolean;
  quiet?: boolean;
}

export type KeyPlan =
  | { readonly kind: 'none' }
  | { readonly kind: 'given'; readonly keys: readonly string[] }
  | { readonly kind: 'create'; readonly count: number; readonly tier: Tier };

export interface LoadPlan {
  readonly target: string;
  readonly model: LoadModel;
  readonly scenarios: readonly Scenario[];
  readonly keys: KeyPlan;
  readonly thresholds: readonly Threshold[];
  readonly outDir: string;
  readonly timeoutMs: number;
  readonly workers: number;
  readonly lateTolerance: number;
  readonly lateThresholdMs: number;
  readonly json: boolean;
  readonly quiet: boolean;
  /** The local stack's NATS, when the target is that stack: run keys go there unless NATS_URLS is set. */
  readonly stackNatsUrls?: readonly string[];
}

export interface PlanDefaults {
  /** `kgents load`: open model at 100/s; `kgents soak`: closed model with 10 VUs. */
  readonly model: 'open' | 'closed';
  readonly level: number;
  readonly durationMs: number;
  readonly mix: string;
  readonly thresholds: readonly string[];
  /** Subdirectory of data/ for reports. */
  readonly outKind: 'load' | 'soak';
}

export const LOAD_DEFAULTS: PlanDefaults = { model: 'open', level: 100, durationMs: 60_000, mix: DEFAULT_MIX, thresholds: [], outKind: 'load' };

function positiveNumber(raw: string, what: string, integer = false): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new UsageError(`${what} must be a positive ${integer ? 'whole ' : ''}number (got "${raw.slice(0, 40)}")`);
  }
  return n;
}

function duration(raw: string, what: string, allowZero = false): number {
  const ms = parseDurationMs(raw);
  if (ms === undefined || ms < 0 || (!allowZero && ms === 0)) throw new UsageError(`${what} must be a duration such as 500ms, 30s, 5m or 4h (got "${raw.slice(0, 40)}")`);
  return ms;
}

/** The target: --target, else the `url` of ./.stack/stack.json. */
export function resolveTarget(flag: string | undefined): string {
  if (flag !== undefined) {
    const url = normaliseUrl(flag);
    if (!url) throw new UsageError(`--target must be an http:// or https:// URL without query (got "${flag.slice(0, 80)}")`);
    return url;
  }
  const stack = readStackState();
  if (stack?.url) return normaliseUrl(stack.url) ?? stack.url;
  throw new UsageError('give --target URL (no local stack found: ./.stack/stack.json does not exist or has no url)');
}

export function buildPlan(values: LoadOptionValues, defaults: PlanDefaults, now: Date = new Date()): LoadPlan {
  const target = resolveTarget(values.target);
  if (values.rate !== undefined && values.vus !== undefined) throw new UsageError('give either --rate (open model) or --vus (closed model), not both');
  const kind = values.vus !== undefined ? 'closed' : values.rate !== undefined ? 'open' : defaults.model;
  const levelRaw = kind === 'open' ? values.rate : values.vus;
  let stages: Stage[];
  let start: number;
  try {
    if (values.stages !== undefined) {
      if (values.duration !== undefined) throw new UsageError('give either --stages or --duration, not both (the stages set the duration)');
      stages = parseStages(values.stages);
      start = levelRaw === undefined ? 0 : positiveNumber(levelRaw, kind === 'open' ? '--rate' : '--vus', kind === 'closed');
    } else {
      start = levelRaw === undefined ? defaults.level : positiveNumber(levelRaw, kind === 'open' ? '--rate' : '--vus', kind === 'closed');
      stages = [{ durationMs: values.duration === undefined ? defaults.durationMs : duration(values.duration, '--duration'), target: start }];
    }
  } catch (err) {
    if (err instanceof StageSyntaxError) throw new UsageError(`--stages: ${err.message}`);
    throw err;
  }
  if (kind === 'closed' && stages.some((s) => !Number.isInteger(s.target))) throw new UsageError('--stages: with --vus, stage targets are whole numbers of virtual users');
  const peak = peakLevel(start, stages);
  if (peak <= 0) throw new UsageError('the load never rises above zero');

  let model: LoadModel;
  if (kind === 'open') {
    if (values.think !== undefined) throw new UsageError('--think applies to the closed model (--vus)');
    const maxInFlight = values['max-in-flight'] === undefined ? Math.min(10_000, Math.max(100, Math.ceil(peak))) : positiveNumber(values['max-in-flight'], '--max-in-flight', true);
    model = { kind: 'open', startRate: start, stages, maxInFlight, maxBacklog: maxInFlight * 10 };
  } else {
    if (values['max-in-flight'] !== undefined) throw new UsageError('--max-in-flight applies to the open model (--rate); in the closed model the VUs are the concurrency');
    model = { kind: 'closed', startVus: start, stages, thinkMs: values.think === undefined ? 0 : duration(values.think, '--think', true) };
  }

  let scenarios: Scenario[];
  try {
    scenarios = parseMix(values.mix ?? defaults.mix);
  } catch (err) {
    if (err instanceof MixSyntaxError) throw new UsageError(`--mix: ${err.message}`);
    throw err;
  }

  const thresholds: Threshold[] = [];
  try {
    // Thresholds given replace the defaults (soak's), so they can be loosened as well as added to.
    const given = values.threshold ?? [];
    for (const text of given.length > 0 ? given : defaults.thresholds) thresholds.push(...parseThreshold(text));
  } catch (err) {
    if (err instanceof ThresholdSyntaxError) throw new UsageError(`--threshold: ${err.message}`);
    throw err;
  }
  for (const t of thresholds) {
    if (t.scenario !== undefined && !scenarios.some((s) => s.name === t.scenario)) {
      throw new UsageError(`--threshold "${t.source}": the mix has no scenario "${t.scenario}" (it has ${scenarios.map((s) => s.name).join(', ')})`);
    }
  }

  const needsKey = scenarios.some((s) => s.auth);
  const given = (values.key ?? []).flatMap((k) => k.split(',')).map((k) => k.trim()).filter((k) => k !== '');
  let keys: KeyPlan = { kind: 'none' };
  if (values['create-keys'] && given.length > 0) throw new UsageError('give either --key or --create-keys, not both');
  if (values['create-keys']) {
    const tier = values.tier ?? 'enterprise';
    const found = TIERS.find((t) => t === tier);
    if (!found) throw new UsageError(`--tier must be one of ${TIERS.join(', ')}`);
    const authWeight = scenarios.filter((s) => s.auth).reduce((a, s) => a + s.weight, 0) / scenarios.reduce((a, s) => a + s.weight, 0);
    // Enterprise keys allow 6000 requests a minute by default (RATE_LIMITS); plan for half of that per key.
    const count = values.keys !== undefined ? positiveNumber(values.keys, '--keys', true)
      : kind === 'open' ? Math.max(1, Math.ceil((peak * authWeight) / 50)) : Math.max(4, peak * 8);
    if (count > 1000) throw new UsageError('--keys: at most 1000');
    keys = { kind: 'create', count, tier: found };
  } else if (given.length > 0) {
    if (values.keys !== undefined || values.tier !== undefined) throw new UsageError('--keys and --tier go with --create-keys');
    keys = { kind: 'given', keys: given };
  } else if (needsKey) {
    const names = scenarios.filter((s) => s.auth).map((s) => s.name).join(', ');
    throw new UsageError(`the mix has authenticated scenarios (${names}): give --key kg_... or --create-keys (with NATS_URLS set to the target's NATS; the local stack's by default), or use --mix health=1`);
  }

  const lateTolerance = values['late-tolerance'] === undefined ? 0.01 : Number(values['late-tolerance']);
  if (!Number.isFinite(lateTolerance) || lateTolerance < 0 || lateTolerance >= 1) throw new UsageError('--late-tolerance must be a fraction from 0 to below 1, e.g. 0.01');
  const cpus = availableParallelism();
  const workers = values.workers === undefined ? defaultWorkers(model, cpus) : positiveNumber(values.workers, '--workers', true);
  if (workers > 64) throw new UsageError('--workers: at most 64');

  const stackNatsUrls = values.target === undefined ? readStackState()?.natsUrls : undefined;
  return {
    target, model, scenarios, keys, thresholds, ...(stackNatsUrls && { stackNatsUrls }),
    outDir: values.out ?? join('data', defaults.outKind, runStamp(now)),
    timeoutMs: values.timeout === undefined ? 30_000 : duration(values.timeout, '--timeout'),
    workers, lateTolerance, lateThresholdMs: 10, json: values.json ?? false, quiet: values.quiet ?? false,
  };
}
