import { join, resolve } from 'node:path';
import { UsageError } from '../../cli/command.js';
import { parseDurationMs } from '../load/duration.js';
import { runStamp } from '../load/report.js';
import { DEFAULT_MIX, MixSyntaxError, parseMix, type Scenario } from '../load/scenarios.js';
import { normaliseUrl } from '../load/target.js';
import { ControlError, StackClient } from '../stack/control.js';
import { PartStateError } from '../stack/errors.js';
import type { StackControl } from '../stack/stack.js';
import { StateFileError, type StackState } from '../stack/state.js';
import { RolloutError } from './errors.js';
import { runK8sRollout, type K8sRolloutOptions } from './k8s.js';
import type { KubeTarget } from './kubectl.js';
import { runStackRollout } from './local.js';
import { rolloutText, writeRolloutReports, type RolloutReport } from './report.js';
import type { RolloutSettings } from './session.js';

/** node:util parseArgs options of `kgents rollout`. */
export const ROLLOUT_OPTIONS = {
  dir: { type: 'string' },
  k8s: { type: 'boolean', default: false },
  target: { type: 'string' },
  namespace: { type: 'string' },
  deployment: { type: 'string' },
  context: { type: 'string' },
  image: { type: 'string' },
  container: { type: 'string' },
  kubectl: { type: 'string' },
  timeout: { type: 'string' },
  'load-rate': { type: 'string' },
  mix: { type: 'string' },
  key: { type: 'string', multiple: true },
  'create-keys': { type: 'boolean', default: false },
  settle: { type: 'string' },
  'max-failed': { type: 'string' },
  workers: { type: 'string' },
  out: { type: 'string' },
  json: { type: 'boolean', default: false },
  quiet: { type: 'boolean', default: false },
} as const;

export interface RolloutOptionValues {
  dir?: string;
  k8s?: boolean;
  target?: string;
  namespace?: string;
  deployment?: string;
  context?: string;
  image?: string;
  container?: string;
  kubectl?: string;
  timeout?: string;
  'load-rate'?: string;
  mix?: string;
  key?: string[];
  'create-keys'?: boolean;
  settle?: string;
  'max-failed'?: string;
  workers?: string;
  out?: string;
  json?: boolean;
  quiet?: boolean;
}

export const ROLLOUT_DEFAULTS = {
  dir: '.stack', namespace: 'kgents-api', deployment: 'kgents-api', container: 'api', kubectl: 'kubectl',
  loadRate: 50, settleMs: 10_000, stackDeadlineMs: 120_000, k8sDeadlineMs: 600_000,
} as const;

interface CommonPlan {
  readonly rate: number;
  readonly mixText: string;
  readonly scenarios: readonly Scenario[];
  readonly keys: readonly string[];
  readonly settleBeforeMs: number;
  readonly settleAfterMs: number;
  readonly maxFailed: number;
  readonly deadlineMs: number;
  readonly workers?: number;
  readonly outDir: string;
  readonly json: boolean;
  readonly quiet: boolean;
}

export type RolloutPlan =
  | (CommonPlan & { readonly mode: 'stack'; readonly dir: string })
  | (CommonPlan & { readonly mode: 'k8s'; readonly target: string; readonly kube: KubeTarget; readonly image?: string; readonly container: string; readonly createKeys: boolean });

function durationOption(raw: string, what: string, allowZero: boolean): number {
  const ms = parseDurationMs(raw);
  if (ms === undefined || ms < 0 || (!allowZero && ms === 0)) throw new UsageError(`${what} must be a duration such as 5s, 30s or 2m (got "${raw.slice(0, 40)}")`);
  return ms;
}

/** A Kubernetes name (namespace, deployment, container): lower-case DNS label characters. */
function kubeName(raw: string, what: string): string {
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(raw)) throw new UsageError(`${what} "${raw.slice(0, 60)}" is not a valid Kubernetes name`);
  return raw;
}

export function buildRolloutPlan(values: RolloutOptionValues, now: Date = new Date()): RolloutPlan {
  const k8s = values.k8s ?? false;
  const rateRaw = values['load-rate'];
  const rate = rateRaw === undefined ? ROLLOUT_DEFAULTS.loadRate : Number(rateRaw);
  if (!Number.isFinite(rate) || rate <= 0 || rate > 100_000) throw new UsageError(`--load-rate must be a positive number of requests per second (got "${(rateRaw ?? '').slice(0, 40)}")`);
  const mixText = values.mix ?? DEFAULT_MIX;
  let scenarios: Scenario[];
  try {
    scenarios = parseMix(mixText);
  } catch (err) {
    if (err instanceof MixSyntaxError) throw new UsageError(`--mix: ${err.message}`);
    throw err;
  }
  let settleBeforeMs: number = ROLLOUT_DEFAULTS.settleMs;
  let settleAfterMs: number = ROLLOUT_DEFAULTS.settleMs;
  if (values.settle !== undefined) {
    const parts = values.settle.split(',');
    if (parts.length > 2) throw new UsageError('--settle takes one duration (before and after) or two: BEFORE,AFTER');
    settleBeforeMs = durationOption(parts[0] ?? '', '--settle', true);
    settleAfterMs = parts[1] === undefined ? settleBeforeMs : durationOption(parts[1], '--settle', true);
  }
  const maxFailed = values['max-failed'] === undefined ? 0 : Number(values['max-failed']);
  if (!Number.isInteger(maxFailed) || maxFailed < 0) throw new UsageError('--max-failed must be a whole number (0 or more)');
  const deadlineMs = values.timeout === undefined ? (k8s ? ROLLOUT_DEFAULTS.k8sDeadlineMs : ROLLOUT_DEFAULTS.stackDeadlineMs) : durationOption(values.timeout, '--timeout', false);
  let workers: number | undefined;
  if (values.workers !== undefined) {
    workers = Number(values.workers);
    if (!Number.isInteger(workers) || workers < 1 || workers > 16) throw new UsageError('--workers must be a whole number from 1 to 16');
  }
  const keys = (values.key ?? []).flatMap((k) => k.split(',')).map((k) => k.trim()).filter((k) => k !== '');
  if (keys.length > 0 && values['create-keys']) throw new UsageError('give either --key or --create-keys, not both');
  const common: CommonPlan = {
    rate, mixText, scenarios, keys, settleBeforeMs, settleAfterMs, maxFailed, deadlineMs, ...(workers !== undefined && { workers }),
    outDir: values.out ?? join('data', 'rollout', runStamp(now)), json: values.json ?? false, quiet: values.quiet ?? false,
  };

  const k8sOnly = (['target', 'namespace', 'deployment', 'context', 'image', 'container', 'kubectl'] as const).filter((n) => values[n] !== undefined);
  if (!k8s) {
    if (k8sOnly.length > 0) throw new UsageError(`--${k8sOnly[0] ?? ''} goes with --k8s (the local stack is found through --dir)`);
    if (values['create-keys']) throw new UsageError('--create-keys goes with --k8s: on the local stack the run makes its keys in the stack\'s key store');
    return { ...common, mode: 'stack', dir: resolve(values.dir ?? ROLLOUT_DEFAULTS.dir) };
  }
  if (values.dir !== undefined) throw new UsageError('--dir is for the local stack; with --k8s give --target URL');
  if (values.target === undefined) throw new UsageError('--k8s needs --target URL: the address the load goes to while the deployment rolls (e.g. the gateway)');
  const target = normaliseUrl(values.target);
  if (!target) throw new UsageError(`--target must be an http:// or https:// URL without query (got "${values.target.slice(0, 80)}")`);
  if (values.container !== undefined && values.image === undefined) throw new UsageError('--container goes with --image');
  if (values.image !== undefined && (values.image.trim() === '' || /\s|=/.test(values.image))) throw new UsageError('--image must be an image reference such as registry.example.com/kgents/api:0.2.0');
  const needsKey = scenarios.some((s) => s.auth);
  if (needsKey && keys.length === 0 && !values['create-keys']) {
    throw new UsageError(`the mix has authenticated scenarios (${scenarios.filter((s) => s.auth).map((s) => s.name).join(', ')}): give --key kg_... (a key the deployment accepts) or --create-keys (with NATS_URLS set to its NATS), or use --mix health=1`);
  }
  return {
    ...common, mode: 'k8s', target, createKeys: values['create-keys'] ?? false,
    kube: {
      kubectl: values.kubectl ?? ROLLOUT_DEFAULTS.kubectl, namespace: kubeName(values.namespace ?? ROLLOUT_DEFAULTS.namespace, '--namespace'),
      deployment: kubeName(values.deployment ?? ROLLOUT_DEFAULTS.deployment, '--deployment'), ...(values.context !== undefined && { context: values.context }),
    },
    ...(values.image !== undefined && { image: values.image }), container: kubeName(values.container ?? ROLLOUT_DEFAULTS.container, '--container'),
  };
}

export interface Console {
  readonly out: NodeJS.WritableStream;
  readonly err: NodeJS.WritableStream;
}

function settings(plan: RolloutPlan, target: string, c: Console, signal: AbortSignal | undefined): RolloutSettings {
  return {
    ...(signal && { signal }),
    target, scenarios: plan.scenarios, mix: plan.mixText, rate: plan.rate, settleBeforeMs: plan.settleBeforeMs, settleAfterMs: plan.settleAfterMs,
    maxFailed: plan.maxFailed, deadlineMs: plan.deadlineMs, ...(plan.workers !== undefined && { workers: plan.workers }),
    log: plan.quiet ? () => undefined : (line) => c.err.write(`kgents rollout: ${line}\n`),
  };
}

function openStack(dir: string): StackControl {
  try {
    return StackClient.open(dir);
  } catch (err) {
    if (err instanceof PartStateError || err instanceof StateFileError) throw new RolloutError(err.message);
    throw err;
  }
}

/** Runs the plan (against `control` when given: an in-process stack), writes the reports, prints; resolves the exit code. */
export async function executeRollout(plan: RolloutPlan, c: Console, options: { control?: StackControl; signal?: AbortSignal } = {}): Promise<{ exitCode: number; report: RolloutReport }> {
  let report: RolloutReport;
  if (plan.mode === 'stack') {
    const stack = options.control ?? openStack(plan.dir);
    let state: StackState;
    try {
      state = await stack.state();
    } catch (err) {
      if (err instanceof ControlError) throw new RolloutError(`the stack's control endpoint refused: ${err.message}`);
      throw new RolloutError(`cannot reach the stack in ${plan.dir} (${err instanceof Error ? err.message : String(err)}); is it running? (kgents stack status --dir ${plan.dir})`);
    }
    report = await runStackRollout({ ...settings(plan, state.url, c, options.signal), control: stack, keys: plan.keys });
  } else {
    const k8s: K8sRolloutOptions = {
      ...settings(plan, plan.target, c, options.signal), kube: plan.kube, container: plan.container, ...(plan.image !== undefined && { image: plan.image }),
      keys: plan.keys.length > 0 ? { kind: 'given', keys: plan.keys } : plan.createKeys ? { kind: 'create' } : { kind: 'none' },
    };
    report = await runK8sRollout(k8s);
  }
  const files = writeRolloutReports(plan.outDir, report);
  c.out.write(plan.json ? `${JSON.stringify(report, null, 2)}\n` : rolloutText(report));
  c.err.write(`kgents rollout: reports: ${files.markdown}, ${files.json}\n`);
  return { exitCode: report.exit_code, report };
}
