import { join } from 'node:path';
import { UsageError } from '../../cli/command.js';
import { parseDurationMs } from '../load/duration.js';
import { interruptOnSignals, type Console } from '../load/execute.js';
import { createRunKeys, waitForKey, type RunKeys } from '../load/keys.js';
import { normaliseUrl } from '../load/target.js';
import { findScenario, SCENARIOS } from './registry.js';
import { chaosText, writeChaosReports } from './report.js';
import { ChaosPreconditionError, runScenario, type ChaosResult } from './runner.js';
import type { ChaosTarget, Scenario } from './scenario.js';
import { detachedStackTarget, describeTarget, k8sTarget, urlTarget } from './targets.js';

export const CHAOS_OPTIONS = {
  target: { type: 'string' },
  dir: { type: 'string' },
  url: { type: 'string' },
  nats: { type: 'string' },
  key: { type: 'string', multiple: true },
  context: { type: 'string' },
  kubectl: { type: 'string' },
  duration: { type: 'string' },
  warmup: { type: 'string' },
  fault: { type: 'string' },
  settle: { type: 'string' },
  'recovery-timeout': { type: 'string' },
  rate: { type: 'string' },
  concurrency: { type: 'string' },
  'idempotency-keys': { type: 'boolean', default: false },
  out: { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

export interface ChaosOptionValues {
  target?: string; dir?: string; url?: string; nats?: string; key?: string[]; context?: string; kubectl?: string;
  duration?: string; warmup?: string; fault?: string; settle?: string; 'recovery-timeout'?: string; rate?: string; concurrency?: string;
  'idempotency-keys'?: boolean; out?: string; json?: boolean;
}

export type TargetSpec =
  | { readonly kind: 'stack'; readonly dir: string }
  | { readonly kind: 'k8s'; readonly url: string; readonly context?: string; readonly kubectl?: string }
  | { readonly kind: 'url'; readonly url: string };

export interface ChaosPlan {
  readonly scenarios: readonly Scenario[];
  readonly target: TargetSpec;
  readonly natsUrls?: readonly string[];
  readonly keys: readonly string[];
  readonly durationMs: number;
  readonly warmupMs?: number;
  readonly faultMs?: number;
  readonly settleMs?: number;
  readonly recoveryTimeoutMs?: number;
  readonly rate: number;
  readonly concurrency: number;
  readonly idempotencyKeys: boolean;
  readonly outDir: string;
  readonly json: boolean;
}

function duration(raw: string | undefined, what: string): number | undefined {
  if (raw === undefined) return undefined;
  const ms = parseDurationMs(raw);
  if (ms === undefined || ms <= 0) throw new UsageError(`${what} must be a positive duration such as 30s or 2m (got "${raw.slice(0, 40)}")`);
  return ms;
}

function positive(raw: string | undefined, what: string, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${what} must be a positive number (got "${raw.slice(0, 40)}")`);
  return n;
}

function stamp(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

export function buildChaosPlan(positionals: readonly string[], values: ChaosOptionValues, now: Date = new Date()): ChaosPlan {
  const name = positionals[0];
  if (name === undefined) throw new UsageError(`name a scenario: ${SCENARIOS.map((s) => s.name).join(', ')} or all`);
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]?.slice(0, 40) ?? ''}"`);
  let target: TargetSpec;
  const raw = values.target;
  if (raw === undefined || raw === 'stack') {
    target = { kind: 'stack', dir: values.dir ?? '.stack' };
  } else if (raw === 'k8s') {
    const url = values.url === undefined ? undefined : normaliseUrl(values.url);
    if (!url) throw new UsageError('--target k8s needs --url URL: the public URL of the API (an ingress, or kubectl port-forward svc/kgents-api)');
    target = { kind: 'k8s', url, ...(values.context !== undefined && { context: values.context }), ...(values.kubectl !== undefined && { kubectl: values.kubectl }) };
  } else {
    const url = normaliseUrl(raw);
    if (!url) throw new UsageError(`--target must be stack, k8s or an http(s) URL (got "${raw.slice(0, 80)}")`);
    target = { kind: 'url', url };
  }
  const scenarios = name === 'all' ? SCENARIOS.filter((s) => s.targets.includes(target.kind)) : [findScenario(name)].filter((s): s is Scenario => s !== undefined);
  if (scenarios.length === 0) {
    throw new UsageError(name === 'all' ? `no scenario supports a ${target.kind} target` : `unknown scenario "${name.slice(0, 40)}"; one of ${SCENARIOS.map((s) => s.name).join(', ')} or all`);
  }
  const natsUrls = values.nats?.split(',').map((u) => u.trim()).filter((u) => u !== '');
  const keys = values.key ?? [];
  if (target.kind !== 'stack' && keys.length === 0 && (natsUrls?.length ?? 0) === 0) {
    throw new UsageError('against a deployment other than the local stack, pass --key KEY, or --nats URL so the run can make its own keys');
  }
  const durationMs = duration(values.duration, '--duration') ?? 60_000;
  const warmupMs = duration(values.warmup, '--warmup');
  const faultMs = duration(values.fault, '--fault');
  const settleMs = duration(values.settle, '--settle');
  const recoveryTimeoutMs = duration(values['recovery-timeout'], '--recovery-timeout');
  return {
    scenarios, target, ...(natsUrls && { natsUrls }), keys, durationMs,
    ...(warmupMs !== undefined && { warmupMs }), ...(faultMs !== undefined && { faultMs }), ...(settleMs !== undefined && { settleMs }),
    ...(recoveryTimeoutMs !== undefined && { recoveryTimeoutMs }),
    rate: positive(values.rate, '--rate', 40), concurrency: Math.round(positive(values.concurrency, '--concurrency', 8)),
    idempotencyKeys: values['idempotency-keys'] === true, outDir: values.out ?? join('data', 'chaos', stamp(now)), json: values.json === true,
  };
}

async function openTarget(plan: ChaosPlan): Promise<ChaosTarget> {
  const t = plan.target;
  if (t.kind === 'stack') {
    const target = await detachedStackTarget(t.dir);
    return plan.natsUrls ? { ...target, natsUrls: plan.natsUrls } : target;
  }
  if (t.kind === 'k8s') return k8sTarget(t.url, plan.natsUrls ?? [], { ...(t.context !== undefined && { context: t.context }), ...(t.kubectl !== undefined && { binary: t.kubectl }) });
  return urlTarget(t.url, plan.natsUrls ?? []);
}

/** `kgents chaos`: runs the plan's scenarios one after another; exit code 0 only if every one passed. */
export async function executeChaos(plan: ChaosPlan, c: Console): Promise<number> {
  const target = await openTarget(plan);
  const log = (line: string): void => {
    c.err.write(`kgents chaos: ${line}\n`);
  };
  let keys = plan.keys;
  let created: RunKeys | undefined;
  let tenant: string | undefined;
  if (keys.length === 0) {
    tenant = `chaos-${stamp(new Date()).toLowerCase()}`;
    created = await createRunKeys({ count: 2, tier: 'enterprise', tenant, notice: log, stackNatsUrls: target.natsUrls });
    keys = created.keys;
    log(`created tenant ${tenant} with ${keys.length} enterprise keys in ${created.location}; revoked after the run`);
    const status = await waitForKey(target.url, keys[0] ?? '', 15_000);
    if (status === 401 || status === 0) {
      await created.revoke().catch(() => undefined);
      log(`the target does not accept the new keys (status ${status || 'none'}); pass --key`);
      return 1;
    }
  }
  log(`target: ${describeTarget(target)}; scenarios: ${plan.scenarios.map((s) => s.name).join(', ')}`);
  const signals = interruptOnSignals(c);
  const results: ChaosResult[] = [];
  try {
    for (const scenario of plan.scenarios) {
      if (signals.signal.aborted) break;
      try {
        results.push(await runScenario(scenario, {
          target, durationMs: plan.durationMs, rate: plan.rate, concurrency: plan.concurrency, keys, log, signal: signals.signal,
          idempotencyKeys: plan.idempotencyKeys, ...(tenant !== undefined && { tenant }),
          ...(plan.warmupMs !== undefined && { warmupMs: plan.warmupMs }), ...(plan.faultMs !== undefined && { faultMs: plan.faultMs }),
          ...(plan.settleMs !== undefined && { settleMs: plan.settleMs }), ...(plan.recoveryTimeoutMs !== undefined && { recoveryTimeoutMs: plan.recoveryTimeoutMs }),
        }));
      } catch (err) {
        if (!(err instanceof ChaosPreconditionError)) throw err;
        log(`${scenario.name}: ${err.message}`);
        const now = new Date().toISOString();
        results.push({
          tool: 'kgents chaos', version: '', scenario: scenario.name, summary: scenario.summary, sla: scenario.sla, target: { kind: target.kind, url: target.url },
          started_at: now, ended_at: now, settings: { duration_s: plan.durationMs / 1000, warmup_s: 0, fault_s: null, rate: plan.rate, concurrency: plan.concurrency, slow_ms: 0, recovery_timeout_s: 0, idempotency_keys: plan.idempotencyKeys },
          fault: null, figures: null, checks: [], verdict: 'INCOMPLETE', error: err.message,
        });
      }
      const last = results.at(-1);
      if (last && !plan.json) c.out.write(chaosText(last));
    }
  } finally {
    signals.dispose();
    if (created) await created.revoke().catch((err: unknown) => log(`could not revoke the run's keys: ${String(err)}`));
  }
  const files = writeChaosReports(plan.outDir, results);
  if (plan.json) c.out.write(`${JSON.stringify(results.length === 1 ? results[0] : results, null, 2)}\n`);
  log(`reports: ${files.join(', ')}`);
  // `all` passes over scenarios this deployment cannot run (e.g. network-partition without fault proxies); a named one must pass.
  const passed = (r: ChaosResult): boolean => r.verdict === 'PASS' || (plan.scenarios.length > 1 && r.verdict === 'SKIPPED');
  return results.length === plan.scenarios.length && results.some((r) => r.verdict === 'PASS') && results.every(passed) ? 0 : 1;
}
