import { VERSION } from '../../version.js';
import { formatDuration } from './duration.js';
import { createRunKeys, waitForKey, type RunKeys } from './keys.js';
import type { LoadPlan } from './plan.js';
import { ProgressPrinter } from './progress.js';
import { loadText, modelText, writeLoadReports } from './report.js';
import { startLoad, type LoadHooks, type LoadResult, type ProgressState } from './runner.js';
import { summarizeLoad, type LoadSummary } from './summary.js';
import { httpGet } from './target.js';

/** Where a command writes: progress and notes to `err`, results to `out`. */
export interface Console {
  readonly out: NodeJS.WritableStream;
  readonly err: NodeJS.WriteStream;
}

/** A failure before or around the run that is not the target's answer (unreachable target, refused keys). */
export class RunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunError';
  }
}

/** Checks the target answers HTTP at all (any status), so an unreachable target is one clear error, not a run of failures. */
export async function preflight(target: string): Promise<void> {
  const r = await httpGet(`${target}/health`, { timeoutMs: 5000, maxBytes: 64 * 1024 });
  if (!r.ok) throw new RunError(`the target ${target} does not answer (${r.error ?? 'no response'}); is it running?`);
}

/** Keys for the run: given ones, or new ones (a tenant `load-<time>` of the chosen tier) checked against the target. */
export async function prepareKeys(plan: LoadPlan, c: Console, tenantPrefix: string): Promise<{ keys: readonly string[]; created?: RunKeys }> {
  if (plan.keys.kind === 'none') return { keys: [] };
  if (plan.keys.kind === 'given') return { keys: plan.keys.keys };
  const tenant = `${tenantPrefix}-${new Date().toISOString().replace(/[^0-9]/g, '').slice(0, 14)}`;
  const created = await createRunKeys({
    count: plan.keys.count, tier: plan.keys.tier, tenant,
    notice: (line) => c.err.write(`kgents: ${line}\n`), ...(plan.stackNatsUrls && { stackNatsUrls: plan.stackNatsUrls }),
  });
  c.err.write(`kgents: created tenant ${tenant} (${plan.keys.tier}) with ${created.keys.length} key${created.keys.length > 1 ? 's' : ''} in ${created.location}; they are revoked after the run\n`);
  const status = await waitForKey(plan.target, created.keys[0] ?? '', 15_000);
  if (status === 401 || status === 0) {
    await created.revoke().catch(() => undefined);
    throw new RunError(`the target does not accept the new keys (status ${status || 'none'} after 15 s): they went to ${created.location}, which is not the target's key store; set NATS_URLS to the target's NATS, or pass --key`);
  }
  return { keys: created.keys, created };
}

/** An AbortSignal raised by the first SIGINT/SIGTERM (the run stops and reports); a second one exits. */
export function interruptOnSignals(c: Console): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onSignal = (name: string): void => {
    if (controller.signal.aborted) {
      c.err.write(`\nkgents: second ${name}: exiting without a report\n`);
      process.exit(130);
    }
    c.err.write(`\nkgents: ${name}: stopping; the report covers what ran so far (again to quit at once)\n`);
    controller.abort();
  };
  const onInt = (): void => onSignal('SIGINT');
  const onTerm = (): void => onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    },
  };
}

export interface RunOutput {
  readonly result: LoadResult;
  readonly summary: LoadSummary;
}

/** Runs the plan's load with a progress line; `hooks` lets soak watch intervals; `extra` adds to the progress line. */
export async function runPlanned(plan: LoadPlan, keys: readonly string[], c: Console, options: { hooks?: Omit<LoadHooks, 'signal'>; signal?: AbortSignal; extra?: () => string; intervalMs?: number } = {}): Promise<RunOutput> {
  c.err.write(`kgents: ${plan.target}: ${modelText(summaryModel(plan))}; mix ${plan.scenarios.map((s) => `${s.name}=${s.weight}`).join(',')}; ${plan.workers} generator thread${plan.workers > 1 ? 's' : ''}; ${formatDuration(plan.model.stages.reduce((a, s) => a + s.durationMs, 0))}\n`);
  const run = startLoad({
    target: plan.target, scenarios: plan.scenarios, keys, model: plan.model, workers: plan.workers, timeoutMs: plan.timeoutMs,
    lateThresholdMs: plan.lateThresholdMs, ...(options.intervalMs !== undefined && { intervalMs: options.intervalMs }),
  }, { ...options.hooks, ...(options.signal && { signal: options.signal }) });
  const printer = plan.quiet ? undefined : new ProgressPrinter((): ProgressState => run.progress(), { stream: c.err, ...(options.extra && { extra: options.extra }) });
  printer?.start();
  try {
    const result = await run.result;
    const summary = summarizeLoad(result, {
      version: VERSION, target: plan.target, model: plan.model, scenarios: plan.scenarios, thresholds: plan.thresholds,
      lateTolerance: plan.lateTolerance, lateThresholdMs: plan.lateThresholdMs,
    });
    return { result, summary };
  } finally {
    printer?.stop();
  }
}

function summaryModel(plan: LoadPlan): LoadSummary['model'] {
  const m = plan.model;
  const start = m.kind === 'open' ? m.startRate : m.startVus;
  return {
    kind: m.kind, start, stages: m.stages.map((s) => ({ duration_s: s.durationMs / 1000, target: s.target })), peak: 0,
    ...(m.kind === 'open' ? { max_in_flight: m.maxInFlight } : { think_ms: m.thinkMs }),
  };
}

/** `kgents load`: pre-flight, keys, the run, reports; resolves the exit code. */
export async function executeLoad(plan: LoadPlan, c: Console): Promise<number> {
  await preflight(plan.target);
  const { keys, created } = await prepareKeys(plan, c, 'load');
  const signals = interruptOnSignals(c);
  try {
    const { summary } = await runPlanned(plan, keys, c, { signal: signals.signal });
    const files = writeLoadReports(plan.outDir, summary);
    if (plan.json) c.out.write(`${JSON.stringify(summary, null, 2)}\n`);
    else c.out.write(loadText(summary));
    c.err.write(`kgents: reports: ${files.markdown}, ${files.json}\n`);
    return summary.exit_code;
  } finally {
    signals.dispose();
    if (created) await created.revoke().catch((err: unknown) => c.err.write(`kgents: could not revoke the run's keys: ${String(err)}\n`));
  }
}
