import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { VERSION } from '../../version.js';
import { auditEvents, type EventAudit } from './audit.js';
import { ChaosLoad } from './load.js';
import { measure, overallVerdict, type Measurement } from './measure.js';
import { HealthMonitor } from './monitor.js';
import { ScenarioUnsupportedError, type ChaosContext, type ChaosTarget, type Fault, type Mark, type Scenario, type SlaCheck } from './scenario.js';

export interface ChaosRunOptions {
  readonly target: ChaosTarget;
  /** Minimum time the load runs, from its start (warm-up included). */
  readonly durationMs: number;
  /** Steady load before the fault; default 20 % of the duration, 2-10 s. */
  readonly warmupMs?: number;
  /** How long a healable fault is held; default the scenario's, else 30 % of the duration. */
  readonly faultMs?: number;
  /** Load after full recovery, so the report shows service after the fault; default 5 s. */
  readonly tailMs?: number;
  readonly rate: number;
  readonly concurrency: number;
  readonly keys: readonly string[];
  /** The keys' tenant: narrows the USAGE read to its subjects. */
  readonly tenant?: string;
  /** Longest wait for the last 2xx answers' events after the load stopped; default 90 s. */
  readonly settleMs?: number;
  /** A request slower than this counts as a detection signal; default 1000 ms. */
  readonly slowMs?: number;
  readonly idempotencyKeys?: boolean;
  /** Overrides the scenario's recovery timeout. */
  readonly recoveryTimeoutMs?: number;
  /** Health endpoints to poll; default: the target's URL (and each API instance of a stack). */
  readonly healthEndpoints?: () => Promise<readonly string[]>;
  readonly log?: (line: string) => void;
  readonly signal?: AbortSignal;
}

export interface ChaosResult {
  readonly tool: 'kgents chaos';
  readonly version: string;
  readonly scenario: string;
  readonly summary: string;
  readonly sla: string;
  readonly target: { readonly kind: ChaosTarget['kind']; readonly url: string };
  readonly started_at: string;
  readonly ended_at: string;
  readonly settings: {
    readonly duration_s: number;
    readonly warmup_s: number;
    readonly fault_s: number | null;
    readonly rate: number;
    readonly concurrency: number;
    readonly slow_ms: number;
    readonly recovery_timeout_s: number;
    readonly idempotency_keys: boolean;
  };
  readonly fault: (Fault & { readonly injected_at: string; readonly healed_at: string | null }) | null;
  readonly figures: Measurement | null;
  readonly checks: readonly SlaCheck[];
  /** SKIPPED: the scenario cannot run against this deployment (ScenarioUnsupportedError); `all` passes over it. */
  readonly verdict: 'PASS' | 'FAIL' | 'INCOMPLETE' | 'SKIPPED';
  /** Set when the run could not complete (the fault could not be injected, the target was down...). */
  readonly error?: string;
}

/** Raised before any load when the target is not healthy to begin with. */
export class ChaosPreconditionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChaosPreconditionError';
  }
}

async function defaultEndpoints(target: ChaosTarget): Promise<readonly string[]> {
  if (target.kind !== 'stack') return [target.url];
  const state = await target.state();
  return [target.url, ...state.parts.filter((p) => p.kind === 'api').map((p) => p.url)];
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return sleep(ms, undefined, { signal }).catch(() => undefined);
}

/**
 * Runs one scenario: healthy check, steady load, warm-up, inject, (hold, heal), wait for full
 * recovery, tail, stop, audit USAGE, measure, judge. Always heals a fault it injected, even when
 * something fails or the run is interrupted.
 */
export async function runScenario(scenario: Scenario, options: ChaosRunOptions): Promise<ChaosResult> {
  const log = options.log ?? (() => undefined);
  const controller = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, controller.signal]) : controller.signal;
  const warmupMs = options.warmupMs ?? Math.min(10_000, Math.max(2000, options.durationMs * 0.2));
  const faultMs = scenario.heal ? (options.faultMs ?? scenario.defaultFaultMs ?? options.durationMs * 0.3) : 0;
  const tailMs = options.tailMs ?? 5000;
  const slowMs = options.slowMs ?? 1000;
  const recoveryTimeoutMs = options.recoveryTimeoutMs ?? scenario.recoveryTimeoutMs;
  const target = options.target;
  const marks: Mark[] = [];
  const monitor = new HealthMonitor(options.healthEndpoints ?? (() => defaultEndpoints(target)));
  const ctx: ChaosContext = {
    target, faultMs, signal, log, health: () => monitor.current(),
    mark: (name, detail) => {
      marks.push({ name, at: Date.now(), ...(detail !== undefined && { detail }) });
      log(`${name}${detail ? `: ${detail}` : ''}`);
    },
  };
  const startedAt = new Date();
  const settings: ChaosResult['settings'] = {
    duration_s: options.durationMs / 1000, warmup_s: warmupMs / 1000, fault_s: scenario.heal ? faultMs / 1000 : null, rate: options.rate,
    concurrency: options.concurrency, slow_ms: slowMs, recovery_timeout_s: recoveryTimeoutMs / 1000, idempotency_keys: options.idempotencyKeys === true,
  };
  const base = { tool: 'kgents chaos' as const, version: VERSION, scenario: scenario.name, summary: scenario.summary, sla: scenario.sla, target: { kind: target.kind, url: target.url }, settings };

  if (!scenario.targets.includes(target.kind)) {
    return { ...base, started_at: startedAt.toISOString(), ended_at: new Date().toISOString(), fault: null, figures: null, checks: [], verdict: 'INCOMPLETE', error: `scenario ${scenario.name} does not support a ${target.kind} target (it supports ${scenario.targets.join(', ')})` };
  }

  // Healthy before the fault, or the figures would measure something else.
  const healthyBy = Date.now() + 60_000;
  for (;;) {
    await monitor.pollOnce();
    if (monitor.allOk()) break;
    if (Date.now() > healthyBy || signal.aborted) {
      throw new ChaosPreconditionError(`the target is not healthy before the fault: ${monitor.current().filter((s) => !s.ok).map((s) => `${s.endpoint} ${s.status}`).join('; ') || 'no health endpoint answered'}`);
    }
    await abortableSleep(500, signal);
  }

  const prefix = `chaos-${scenario.name}-${randomBytes(4).toString('hex')}`;
  const load = new ChaosLoad({ url: target.url, keys: options.keys, rate: options.rate, concurrency: options.concurrency, idPrefix: prefix, idempotencyKeys: options.idempotencyKeys === true });
  let fault: Fault | undefined;
  let injectedAt = 0;
  let injectReturnedAt = 0;
  let healedAt: number | null = null;
  let healed = !scenario.heal;
  let recoveredAt: number | null = null;
  let error: string | undefined;
  let skipped = false;
  const loadStartedAt = Date.now();
  monitor.start();
  load.start();
  try {
    log(`${scenario.name}: load ${options.rate}/s over ${options.concurrency} connections; warm-up ${warmupMs / 1000} s`);
    await abortableSleep(warmupMs, signal);
    if (signal.aborted) throw new Error('interrupted before the fault');
    const before = Date.now();
    fault = await scenario.inject(ctx);
    injectedAt = fault.at ?? before;
    injectReturnedAt = Date.now();
    log(`${scenario.name}: fault injected: ${fault.description}`);
    if (scenario.heal) {
      await abortableSleep(Math.max(0, injectedAt + faultMs - Date.now()), signal);
      healedAt = Date.now();
      healed = true;
      await scenario.heal(ctx, fault);
      ctx.mark('healed', 'fault ended by the tool');
    }
    // Full recovery: the scenario's own condition and every health endpoint ok, holding for 1 s.
    const from = healedAt ?? injectedAt;
    let streakStart: number | null = null;
    while (!signal.aborted && Date.now() - from < recoveryTimeoutMs) {
      const now = Date.now();
      // Always ask the scenario (it marks what it observes on the way), then require health too.
      const own = await scenario.recovered(ctx, fault).catch(() => false);
      const ok = own && monitor.allOk();
      if (!ok) streakStart = null;
      else {
        streakStart ??= now;
        if (Date.now() - streakStart >= 1000) {
          recoveredAt = streakStart;
          break;
        }
      }
      await abortableSleep(250, signal);
    }
    if (recoveredAt === null) log(`${scenario.name}: not recovered within ${recoveryTimeoutMs / 1000} s`);
    else log(`${scenario.name}: recovered ${((recoveredAt - injectedAt) / 1000).toFixed(1)} s after the fault`);
    const endAt = Math.max(loadStartedAt + options.durationMs, Date.now() + tailMs);
    await abortableSleep(endAt - Date.now(), signal);
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
    skipped = err instanceof ScenarioUnsupportedError && fault === undefined;
    log(`${scenario.name}: ${skipped ? 'skipped: ' : ''}${error}`);
  } finally {
    if (!healed && fault && scenario.heal) {
      healedAt ??= Date.now();
      await scenario.heal(ctx, fault).catch((err: unknown) => log(`${scenario.name}: heal failed: ${String(err)}; heal it by hand`));
    }
    await load.stop();
    await monitor.stop();
  }

  let audit: EventAudit | undefined;
  if (fault) {
    log(`${scenario.name}: auditing USAGE (${load.records.length} requests)`);
    audit = await auditEvents(target.natsUrls, load.records, {
      ...(options.tenant !== undefined && { tenant: options.tenant }), since: startedAt, prefix, settleMs: options.settleMs ?? 90_000, ...(options.signal && { signal: options.signal }),
    });
  }
  const figures = fault && audit ? measure({ records: load.records, samples: monitor.samples, marks, injectedAt, injectReturnedAt, healedAt, recoveredAt, audit, slowMs }) : null;
  const checks = figures ? scenario.judge(figures) : [];
  const verdict = skipped ? 'SKIPPED' : error !== undefined ? (checks.some((c) => c.verdict === 'FAIL') ? 'FAIL' : 'INCOMPLETE') : overallVerdict(checks);
  return {
    ...base, started_at: startedAt.toISOString(), ended_at: new Date().toISOString(),
    fault: fault ? { ...fault, injected_at: new Date(injectedAt).toISOString(), healed_at: healedAt === null ? null : new Date(healedAt).toISOString() } : null,
    figures, checks, verdict, ...(error !== undefined && { error }),
  };
}
