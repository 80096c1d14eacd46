import type { Scenario } from '../load/scenarios.js';
import { VERSION } from '../../version.js';
import type { RolloutKeys } from './keys.js';
import { latencyChange, loadReasons, type RolloutReport } from './report.js';
import { LoadWatch, type WatchFigures } from './watch.js';

/** What both modes share: the load, its settle times, the failure limit and the deadline. */
export interface RolloutSettings {
  /** The URL the load goes to (the stack's balancer, or --target). */
  readonly target: string;
  readonly scenarios: readonly Scenario[];
  readonly mix: string;
  readonly rate: number;
  readonly settleBeforeMs: number;
  readonly settleAfterMs: number;
  /** Most failed requests for a pass (default 0). */
  readonly maxFailed: number;
  /** Longest the rollout itself may take (k8s: `rollout status` deadline; stack: per instance). */
  readonly deadlineMs: number;
  readonly workers?: number;
  readonly requestTimeoutMs?: number;
  /** Progress lines (stderr in the CLI). */
  readonly log: (line: string) => void;
  /** Ctrl-C: settle periods end, no further step starts, the report covers what ran. */
  readonly signal?: AbortSignal;
}

/** The reason an interrupted run fails, or none. */
export function interruptedReason(s: RolloutSettings): string[] {
  return s.signal?.aborted ? ['interrupted before the run finished'] : [];
}

export const WATCH_INTERVAL_MS = 500;

/**
 * Runs `body` (the rollout) under steady load: the load starts, settles for `settleBeforeMs`, the
 * phase switches to "during" for the body, then "after" for `settleAfterMs`, and the load stops.
 */
export async function underLoad<T>(s: RolloutSettings, keys: RolloutKeys, budgetMs: number, body: (watch: LoadWatch) => Promise<T>): Promise<{ value: T; load: WatchFigures }> {
  const watch = new LoadWatch({
    target: s.target, scenarios: s.scenarios, keys: keys.keys, rate: s.rate, intervalMs: WATCH_INTERVAL_MS,
    maxDurationMs: s.settleBeforeMs + budgetMs + s.settleAfterMs + 60_000,
    ...(s.workers !== undefined && { workers: s.workers }), ...(s.requestTimeoutMs !== undefined && { timeoutMs: s.requestTimeoutMs }),
  });
  const ticker = setInterval(() => s.log(`${watch.elapsedS().toFixed(0)} s: ${watch.requests()} requests, ${watch.failed()} failed`), 5000);
  ticker.unref();
  let value: T;
  try {
    await watch.started();
    s.log(`load: ${s.rate} req/s to ${s.target} (${s.mix}); settling ${s.settleBeforeMs / 1000} s before the rollout`);
    await watch.hold(s.settleBeforeMs, () => s.signal?.aborted ?? false);
    watch.mark('during');
    value = await body(watch);
    watch.mark('after');
    s.log(`settling ${s.settleAfterMs / 1000} s after the rollout`);
    await watch.hold(s.settleAfterMs, () => s.signal?.aborted ?? false);
  } catch (err) {
    await watch.stop().catch(() => undefined);
    throw err;
  } finally {
    clearInterval(ticker);
  }
  return { value, load: await watch.stop() };
}

/** The report's common part; the mode adds its steps, section and reasons. */
export function assembleReport(
  s: RolloutSettings,
  run: { mode: 'stack' | 'k8s'; startedAt: Date; keys: number; load: WatchFigures; tookS: number; steps: RolloutReport['rollout']['steps']; reasons: readonly string[]; warnings?: readonly string[] },
  section: Pick<RolloutReport, 'stack' | 'k8s'>,
): RolloutReport {
  const reasons = [...run.reasons, ...loadReasons(run.load, s.maxFailed), ...interruptedReason(s)];
  const verdict = reasons.length === 0 ? 'PASS' : 'FAIL';
  return {
    tool: 'kgents rollout', version: VERSION, mode: run.mode, target: s.target,
    started_at: run.startedAt.toISOString(), ended_at: new Date().toISOString(),
    settings: {
      load_rate: s.rate, mix: s.mix, settle_before_s: s.settleBeforeMs / 1000, settle_after_s: s.settleAfterMs / 1000,
      max_failed: s.maxFailed, keys: run.keys, deadline_s: s.deadlineMs / 1000,
    },
    verdict, reasons, exit_code: verdict === 'PASS' ? 0 : 1,
    rollout: { took_s: Math.round(run.tookS * 1000) / 1000, steps: run.steps },
    latency: latencyChange(run.load),
    ...section,
    load: run.load,
    warnings: [...(run.warnings ?? []), ...run.load.warnings],
  };
}
