import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatDuration } from '../load/duration.js';
import { cell, errorRows, modelText, ms, pct, thresholdRows } from '../load/report.js';
import type { LoadSummary } from '../load/summary.js';
import type { SoakAnalysis, Verdict } from './analysis.js';
import { soakChart } from './chart.js';

export interface SoakCheck {
  readonly check: string;
  readonly verdict: Verdict;
  readonly detail: string;
}

export interface SoakSummary {
  readonly tool: 'kgents soak';
  readonly version: string;
  readonly target: string;
  readonly instances: readonly string[];
  readonly started_at: string;
  readonly ended_at: string;
  readonly settings: {
    readonly planned_s: number;
    readonly window_s: number;
    readonly warmup_s: number;
    readonly sample_interval_s: number;
    readonly max_memory_growth_pct: number;
    readonly memory_checked: boolean;
  };
  /** PASS, FAIL, or INVALID (the load generator did not keep its schedule). */
  readonly verdict: 'PASS' | 'FAIL' | 'INVALID';
  readonly checks: readonly SoakCheck[];
  readonly exit_code: number;
  readonly scrapes: { readonly samples: number; readonly failures: number; readonly first_failure: string | null };
  readonly analysis: SoakAnalysis;
  /** The load's summary, without its per-second timeline (the windows cover it). */
  readonly load: Omit<LoadSummary, 'timeline'>;
}

const mb = (v: number | null): string => (v === null ? '–' : `${v.toFixed(1)} MB`);

function windowRows(s: SoakSummary): string[] {
  const rows = s.analysis.windows;
  const every = Math.max(1, Math.ceil(rows.length / 60));
  const shown = rows.filter((w, i) => i % every === 0 || i === rows.length - 1);
  const names = s.analysis.memory.map((m) => m.instance);
  const warmup = Math.round(s.analysis.warmup_s / s.analysis.window_s);
  return shown.map((w) => {
    const memCells = names.map((n) => {
      const i = w.instances[n];
      return i ? `${mb(i.heap_floor_mb)} / ${mb(i.retained_floor_mb)} / ${mb(i.rss_max_mb)}${i.major_gcs ? ` (${i.major_gcs} GC)` : ''}` : '–';
    });
    const breaker = names.map((n) => w.instances[n]?.circuit_state_max ?? '–').join(', ');
    const depth = names.map((n) => w.instances[n]?.fallback_depth_max ?? '–').join(', ');
    return `| ${formatDuration(w.start_s * 1000)}–${formatDuration(w.end_s * 1000)}${w.index < warmup ? ' (warm-up)' : ''} | ${w.requests} | ${w.failed} | ${ms(w.p95_ms)} | ${ms(w.p99_ms)} | ${memCells.join(' | ')} | ${breaker} | ${depth} |`;
  });
}

export function soakMarkdown(s: SoakSummary): string {
  const a = s.analysis;
  const lines = [
    `# Soak test: ${s.target}`,
    '',
    `- **Verdict:** **${s.verdict}** (exit code ${s.exit_code})`,
    `- **When:** ${s.started_at} → ${s.ended_at} (${formatDuration(s.load.elapsed_s * 1000)} of a planned ${formatDuration(s.settings.planned_s * 1000)}${s.load.interrupted ? ', interrupted' : ''})`,
    `- **Load:** ${modelText(s.load.model)}; mix ${s.load.mix.map((m) => `${m.name}=${m.weight}`).join(', ')}; ${s.load.overall.requests} requests, ${s.load.overall.throughput_rps.toFixed(1)}/s`,
    `- **Memory:** /metrics of ${s.instances.join(', ')} every ${s.settings.sample_interval_s} s (${s.scrapes.samples} samples, ${s.scrapes.failures} failed scrapes); windows of ${s.settings.window_s} s, warm-up ${s.settings.warmup_s} s`,
    `- **Tool:** kgents soak ${s.version}`,
    '',
    '![memory and latency over time](chart.svg)',
    '',
    '## Checks',
    '',
    '| Check | Verdict | Detail |',
    '|---|---|---|',
    ...s.checks.map((c) => `| ${cell(c.check)} | ${c.verdict === 'PASS' ? 'PASS' : `**${c.verdict}**`} | ${cell(c.detail)} |`),
    '',
  ];
  if (s.load.invalid_reasons.length > 0) lines.push('The run is **invalid**:', '', ...s.load.invalid_reasons.map((r) => `- ${r}`), '');
  lines.push(
    '## Memory',
    '',
    'Each window\'s heap floor is its lowest heap-used sample: what remains after collections. The trend is fitted to the *retained* heap (heap used minus the young generation, which every scavenge empties) measured right after each full collection, so garbage waiting in the old generation cannot pass for a leak; without those figures, to the window floors. Growth is the fitted line\'s rise over the span after the warm-up, as a share of its starting value.',
    '',
    '| Instance | Fitted to | Points | Baseline | Growth | Growth % | MB/hour | R² | RSS first → last | Verdict |',
    '|---|---|---:|---:|---:|---:|---:|---:|---|---|',
    ...a.memory.map((m) => `| ${cell(m.instance)} | ${m.series}, ${m.method === 'post-gc' ? 'after full GCs' : 'window floors'} | ${m.points_used} | ${mb(m.baseline_mb)} | ${m.growth_mb === null ? '–' : `${m.growth_mb.toFixed(2)} MB`} | ${m.growth_pct === null ? '–' : `${m.growth_pct.toFixed(2)} %`} | ${m.slope_mb_per_hour === null ? '–' : m.slope_mb_per_hour.toFixed(2)} | ${m.r2 === null ? '–' : m.r2.toFixed(3)} | ${mb(m.rss_first_mb)} → ${mb(m.rss_last_mb)} | ${m.verdict}: ${cell(m.reason)} |`),
    '',
  );
  if (a.memory.length === 0) lines.push('No memory samples: no instance exposed the kgents memory metrics at /metrics.', '');
  lines.push(
    '## Latency and errors',
    '',
    `Overall: p50 ${ms(s.load.overall.latency_ms.p50)}, p95 ${ms(s.load.overall.latency_ms.p95)}, p99 ${ms(s.load.overall.latency_ms.p99)}, max ${ms(s.load.overall.latency_ms.max)}; failed ${s.load.overall.failed} (${pct(s.load.overall.failed_rate)}).`,
    '',
    `Drift of the per-window p95 after the warm-up: ${a.latency_drift.slope_ms_per_hour === null ? '–' : `${a.latency_drift.slope_ms_per_hour.toFixed(2)} ms/hour`} (first ${ms(a.latency_drift.first_window_p95_ms)}, last ${ms(a.latency_drift.last_window_p95_ms)}, worst ${ms(a.latency_drift.worst_window_p95_ms)} in window ${a.latency_drift.worst_window_index ?? '–'}).`,
    '',
  );
  const errors = errorRows(s.load.scenarios);
  if (errors.length === 0) lines.push('Errors: none.', '');
  else lines.push('| Scenario | Code | Count |', '|---|---|---:|', ...errors, '');
  if (s.load.thresholds.length > 0) lines.push('| Threshold | Observed | Result |', '|---|---:|---|', ...thresholdRows(s.load.thresholds), '');
  lines.push(
    '## Circuit breaker, fallback queue and dependency switches',
    '',
    '| Instance | Transitions during the soak | State at the end | Fallback queue max | at the end | Dependency switches during the soak |',
    '|---|---|---|---:|---:|---|',
    ...a.circuits.map((c) => `| ${cell(c.instance)} | ${Object.entries(c.transitions).map(([to, n]) => `to ${to}: ${n}`).join(', ') || 'none'} | ${c.state_at_end === null ? '–' : ['closed', 'half-open', 'open'][c.state_at_end] ?? String(c.state_at_end)} | ${c.fallback_depth_max ?? '–'} | ${c.fallback_depth_end ?? '–'} | ${cell(Object.entries(c.mode_switches).filter(([, n]) => n > 0).map(([change, n]) => `${change}: ${n}`).join(', ') || 'none')} |`),
    '',
    '## Windows',
    '',
    `Memory cells: heap floor / retained floor / RSS peak (full collections). Breaker: highest state in the window (0 closed, 1 half-open, 2 open).${a.windows.length > 60 ? ` One window in ${Math.ceil(a.windows.length / 60)} shown; soak.json has them all.` : ''}`,
    '',
    `| Window | Requests | Failed | p95 | p99 | ${a.memory.map((m) => cell(m.instance)).join(' | ')}${a.memory.length ? ' | ' : ''}Breaker | Fallback queue |`,
    `|---|---:|---:|---:|---:|${a.memory.map(() => '---:|').join('')}---|---|`,
    ...windowRows(s),
  );
  if (s.load.warnings.length > 0) lines.push('', '## Warnings', '', ...s.load.warnings.map((w) => `- ${w}`));
  return `${lines.join('\n')}\n`;
}

/** Writes soak.json, report.md and chart.svg into `dir`. */
export function writeSoakReports(dir: string, s: SoakSummary, p95LimitMs: number | undefined): { json: string; markdown: string; chart: string } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, 'soak.json');
  const markdown = join(dir, 'report.md');
  const chart = join(dir, 'chart.svg');
  writeFileSync(json, `${JSON.stringify(s, null, 2)}\n`);
  writeFileSync(markdown, soakMarkdown(s));
  const growth = s.analysis.memory.map((m) => (m.growth_pct === null ? m.verdict : `${m.growth_pct.toFixed(1)} %`)).join(', ');
  writeFileSync(chart, soakChart(s.analysis, {
    title: `kgents soak ${s.target}: ${s.verdict}; memory growth ${growth || 'not measured'}; p95 ${ms(s.load.overall.latency_ms.p95)}`,
    ...(p95LimitMs !== undefined && { p95LimitMs }),
  }));
  return { json, markdown, chart };
}
