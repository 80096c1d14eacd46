import { UsageError } from '../../cli/command.js';
import { VERSION } from '../../version.js';
import { parseDurationMs } from '../load/duration.js';
import { interruptOnSignals, prepareKeys, preflight, runPlanned, type Console } from '../load/execute.js';
import { buildPlan, type LoadOptionValues, type LoadPlan, type PlanDefaults } from '../load/plan.js';
import { loadText } from '../load/report.js';
import { DEFAULT_MIX } from '../load/scenarios.js';
import { EXIT } from '../load/summary.js';
import { normaliseUrl, readStackState } from '../load/target.js';
import { analyseSoak, WindowCollector, type Verdict } from './analysis.js';
import { writeSoakReports, type SoakCheck, type SoakSummary } from './report.js';
import { MetricsSampler, type InstanceSample } from './sampler.js';

/** The seeds' soak: 10 virtual users, mixed endpoints, 4 hours; p95 < 200 ms, errors < 0.1 %, memory growth < 10 %. */
export const SOAK_DEFAULTS: PlanDefaults = {
  model: 'closed', level: 10, durationMs: 4 * 3_600_000, mix: DEFAULT_MIX,
  thresholds: ['http_req_duration: p(95)<200', 'http_req_failed: rate<0.001'], outKind: 'soak',
};

export const SOAK_OPTIONS = {
  window: { type: 'string' },
  warmup: { type: 'string' },
  instances: { type: 'string' },
  'sample-interval': { type: 'string' },
  'max-memory-growth': { type: 'string' },
  'skip-memory': { type: 'boolean', default: false },
} as const;

export interface SoakOptionValues extends LoadOptionValues {
  window?: string;
  warmup?: string;
  instances?: string;
  'sample-interval'?: string;
  'max-memory-growth'?: string;
  'skip-memory'?: boolean;
}

export interface SoakPlan extends LoadPlan {
  readonly instances: readonly string[];
  readonly windowMs: number;
  readonly warmupMs: number;
  readonly sampleIntervalMs: number;
  readonly maxGrowthPct: number;
  readonly checkMemory: boolean;
}

function durationOption(raw: string, what: string): number {
  const ms = parseDurationMs(raw);
  if (ms === undefined || ms <= 0) throw new UsageError(`${what} must be a positive duration such as 2s, 60s or 5m (got "${raw.slice(0, 40)}")`);
  return ms;
}

export function buildSoakPlan(values: SoakOptionValues, now: Date = new Date()): SoakPlan {
  const plan = buildPlan(values, SOAK_DEFAULTS, now);
  const plannedMs = plan.model.stages.reduce((a, s) => a + s.durationMs, 0);
  // At least ten windows, so a short (accelerated or smoke) soak still has a trend to fit.
  const windowMs = values.window === undefined ? Math.max(1000, Math.min(60_000, Math.floor(plannedMs / 10 / 1000) * 1000)) : durationOption(values.window, '--window');
  if (windowMs * 2 > plannedMs) throw new UsageError(`--window ${values.window ?? ''} is too long for a ${plannedMs / 1000} s soak: it needs several windows`);
  const warmupMs = values.warmup === undefined ? Math.max(windowMs, plannedMs * 0.1) : durationOption(values.warmup, '--warmup');
  if (warmupMs >= plannedMs) throw new UsageError('--warmup must be shorter than the soak');
  const sampleIntervalMs = values['sample-interval'] === undefined ? Math.min(5000, Math.max(250, windowMs / 4)) : durationOption(values['sample-interval'], '--sample-interval');
  if (sampleIntervalMs > windowMs) throw new UsageError('--sample-interval must not exceed --window: each window needs samples for its floor');
  const maxGrowthPct = values['max-memory-growth'] === undefined ? 10 : Number(values['max-memory-growth'].replace(/%$/, ''));
  if (!Number.isFinite(maxGrowthPct) || maxGrowthPct <= 0) throw new UsageError('--max-memory-growth must be a positive percentage, e.g. 10');
  let instances: string[];
  if (values.instances !== undefined) {
    instances = values.instances.split(',').map((u) => u.trim()).filter((u) => u !== '').map((u) => {
      const url = normaliseUrl(u);
      if (!url) throw new UsageError(`--instances: "${u.slice(0, 80)}" is not an http(s) URL`);
      return url;
    });
    if (instances.length === 0) throw new UsageError('--instances needs at least one URL');
  } else {
    const stack = values.target === undefined ? readStackState() : undefined;
    instances = stack?.instances?.map((u) => normaliseUrl(u) ?? u) ?? [plan.target];
  }
  return { ...plan, instances, windowMs, warmupMs, sampleIntervalMs, maxGrowthPct, checkMemory: !(values['skip-memory'] ?? false) };
}

function memoryText(latest: ReadonlyMap<string, InstanceSample>): string {
  const parts = [...latest.values()].map((s) => (s.heapUsedBytes === undefined ? '' : `${(s.heapUsedBytes / 1048576).toFixed(1)}MB`)).filter((p) => p !== '');
  return parts.length ? `heap ${parts.join(' ')}` : '';
}

/** `kgents soak`: the load with memory sampling, windowed analysis, verdicts and reports; resolves the exit code. */
export async function executeSoak(plan: SoakPlan, c: Console): Promise<number> {
  await preflight(plan.target);
  const { keys, created } = await prepareKeys(plan, c, 'soak');
  const signals = interruptOnSignals(c);
  const collector = new WindowCollector(plan.windowMs);
  const latest = new Map<string, InstanceSample>();
  const sampler = new MetricsSampler(plan.instances, plan.sampleIntervalMs, (s) => latest.set(s.instance, s));
  try {
    c.err.write(`kgents: sampling /metrics of ${plan.instances.join(', ')} every ${plan.sampleIntervalMs / 1000} s; windows of ${plan.windowMs / 1000} s, warm-up ${plan.warmupMs / 1000} s\n`);
    sampler.start();
    const { result, summary: load } = await runPlanned(plan, keys, c, {
      signal: signals.signal,
      hooks: { onInterval: (i) => collector.add(i) },
      intervalMs: plan.windowMs % 1000 === 0 ? 1000 : plan.windowMs,
      extra: () => memoryText(latest),
    });
    await sampler.stop();
    await sampler.scrapeAll();
    const ranMs = result.interrupted ? result.elapsedS * 1000 : result.plannedS * 1000;
    const analysis = analyseSoak({
      startAt: result.startAt, ranMs, windowMs: plan.windowMs, warmupMs: plan.warmupMs, maxGrowthPct: plan.maxGrowthPct,
      load: collector.windows, samples: sampler.samples,
    });

    const checks: SoakCheck[] = [];
    if (plan.checkMemory) {
      const detail = analysis.memory.length === 0
        ? `no memory samples from ${plan.instances.join(', ')}${sampler.failures[0] ? ` (${sampler.failures[0].error})` : ''}`
        : analysis.memory.map((m) => `${m.instance}: ${m.growth_pct === null ? m.reason : `${m.growth_pct.toFixed(2)} %, ${(m.slope_mb_per_hour ?? 0).toFixed(2)} MB/hour`}`).join('; ');
      checks.push({ check: `memory growth < ${plan.maxGrowthPct} %`, verdict: analysis.memory_verdict, detail });
    }
    for (const t of load.thresholds) {
      checks.push({ check: t.threshold, verdict: t.ok ? 'PASS' : 'FAIL', detail: t.observed === null ? t.note ?? 'no data' : `observed ${t.observed}` });
    }
    const failed = checks.some((ch) => ch.verdict !== 'PASS');
    const verdict = !load.valid ? 'INVALID' : failed ? 'FAIL' : 'PASS';
    const exitCode = verdict === 'INVALID' ? EXIT.invalid : verdict === 'FAIL' ? EXIT.thresholdFailed : EXIT.ok;
    const { timeline: _timeline, ...loadWithoutTimeline } = load;
    const summary: SoakSummary = {
      tool: 'kgents soak', version: VERSION, target: plan.target, instances: plan.instances,
      started_at: load.started_at, ended_at: load.ended_at,
      settings: {
        planned_s: result.plannedS, window_s: plan.windowMs / 1000, warmup_s: analysis.warmup_s, sample_interval_s: plan.sampleIntervalMs / 1000,
        max_memory_growth_pct: plan.maxGrowthPct, memory_checked: plan.checkMemory,
      },
      verdict, checks, exit_code: exitCode,
      scrapes: {
        samples: sampler.samples.length, failures: sampler.failures.length,
        first_failure: sampler.failures[0] ? `${new Date(sampler.failures[0].at).toISOString()} ${sampler.failures[0].url}: ${sampler.failures[0].error}` : null,
      },
      analysis, load: loadWithoutTimeline,
    };
    const p95Limit = load.thresholds.find((t) => /^http_req_duration: p\(95\)<\d/.test(t.threshold));
    const files = writeSoakReports(plan.outDir, summary, p95Limit ? Number(/<(\d+(?:\.\d+)?)/.exec(p95Limit.threshold)?.[1]) : undefined);
    if (plan.json) {
      c.out.write(`${JSON.stringify(summary, null, 2)}\n`);
    } else {
      c.out.write(loadText(load));
      // loadText already printed the thresholds; add the checks only soak makes.
      for (const ch of checks.slice(0, plan.checkMemory ? 1 : 0)) c.out.write(`${verdictWord(ch.verdict)} ${ch.check}: ${ch.detail}\n`);
      c.out.write(`soak: ${verdict}\n`);
    }
    c.err.write(`kgents: reports: ${files.markdown}, ${files.json}, ${files.chart}\n`);
    return exitCode;
  } finally {
    await sampler.stop();
    signals.dispose();
    if (created) await created.revoke().catch((err: unknown) => c.err.write(`kgents: could not revoke the run's keys: ${String(err)}\n`));
  }
}

function verdictWord(v: Verdict): string {
  return v === 'PASS' ? 'ok  ' : v === 'FAIL' ? 'FAIL' : 'N/A ';
}
