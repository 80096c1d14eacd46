import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatDuration } from './duration.js';
import type { LatencySummary } from './histogram.js';
import type { LoadSummary, ScenarioSummary } from './summary.js';
import type { ThresholdResult } from './thresholds.js';

export function ms(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (v >= 1000) return `${(v / 1000).toFixed(2)} s`;
  if (v >= 100) return `${Math.round(v)} ms`;
  if (v >= 10) return `${v.toFixed(1)} ms`;
  return `${v.toFixed(2)} ms`;
}

export function pct(fraction: number): string {
  return `${(fraction * 100).toFixed(fraction !== 0 && fraction < 0.001 ? 3 : 2)} %`;
}

/** Escapes a value for a Markdown table cell. */
export function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function modelText(m: LoadSummary['model']): string {
  const unit = m.kind === 'open' ? 'req/s' : 'VUs';
  const stages = m.stages.length === 1 && m.stages[0]?.target === m.start
    ? `${m.start} ${unit} for ${formatDuration((m.stages[0]?.duration_s ?? 0) * 1000)}`
    : `from ${m.start} ${unit}: ${m.stages.map((st) => `${formatDuration(st.duration_s * 1000)} → ${st.target}`).join(', ')}`;
  return m.kind === 'open'
    ? `open (constant arrival rate), ${stages}, at most ${m.max_in_flight ?? '?'} in flight`
    : `closed (virtual users), ${stages}, think time ${m.think_ms ?? 0} ms`;
}

function latencyCells(l: LatencySummary): string[] {
  return [ms(l.p50), ms(l.p90), ms(l.p95), ms(l.p99), ms(l.max)];
}

function row(name: string, s: ScenarioSummary): string {
  return `| ${cell(name)} | ${s.requests} | ${s.throughput_rps.toFixed(1)} | ${s.failed} (${pct(s.failed_rate)}) | ${latencyCells(s.latency_ms).join(' | ')} |`;
}

export function thresholdRows(results: readonly ThresholdResult[]): string[] {
  return results.map((t) => {
    const observed = t.observed === null ? (t.note ?? 'no data') : t.metric === 'http_req_duration' ? ms(t.observed) : String(t.observed);
    return `| \`${cell(t.threshold)}\` | ${cell(observed)} | ${t.ok ? 'pass' : '**FAIL**'} |`;
  });
}

/** The errors of every scenario as table rows: scenario, status, code, count. */
export function errorRows(scenarios: Readonly<Record<string, ScenarioSummary>>): string[] {
  const rows: string[] = [];
  for (const [name, s] of Object.entries(scenarios)) {
    for (const [code, n] of Object.entries(s.errors).sort((a, b) => b[1] - a[1])) rows.push(`| ${cell(name)} | \`${cell(code)}\` | ${n} |`);
  }
  return rows;
}

export function statusRows(scenarios: Readonly<Record<string, ScenarioSummary>>): string[] {
  return Object.entries(scenarios).map(([name, s]) => `| ${cell(name)} | ${Object.entries(s.statuses).sort().map(([k, v]) => `${k === '0' ? 'no answer' : k}: ${v}`).join(', ') || '–'} |`);
}

export function loadMarkdown(s: LoadSummary): string {
  const verdict = !s.valid ? '**INVALID RUN**: the generator did not keep to its schedule, so no figure below can be trusted'
    : s.thresholds.length === 0 ? 'valid; no thresholds given'
      : s.thresholds_ok ? 'valid; **all thresholds held**' : 'valid; **thresholds FAILED**';
  const g = s.generator;
  const lines = [
    `# Load test: ${s.target}`,
    '',
    `- **Result:** ${verdict} (exit code ${s.exit_code})`,
    `- **When:** ${s.started_at} → ${s.ended_at}; ran ${s.elapsed_s.toFixed(1)} s of a planned ${s.planned_s} s${s.interrupted ? ' (interrupted)' : ''}`,
    `- **Model:** ${modelText(s.model)}`,
    `- **Mix:** ${s.mix.map((m) => `${m.name}=${m.weight} (${m.method} ${m.path})`).join(', ')}`,
    `- **Generator:** ${g.workers} thread${g.workers > 1 ? 's' : ''}, busy ${g.event_loop_utilization.map((u) => `${Math.round(u * 100)} %`).join(', ')}; `
      + (s.model.kind === 'open'
        ? `late starts (> ${g.late_threshold_ms} ms) ${g.late_starts} of ${g.scheduled} (${g.capped} waited for a free slot), dropped ${g.dropped}; tolerance ${pct(g.late_tolerance)}`
        : 'closed model: each virtual user waits for its answer, so there are no late starts to count'),
    `- **Tool:** kgents load ${s.version}`,
    '',
  ];
  if (s.invalid_reasons.length > 0) lines.push('## Why the run is invalid', '', ...s.invalid_reasons.map((r) => `- ${r}`), '');
  lines.push(
    '## Results',
    '',
    '| Scenario | Requests | req/s | Failed | p50 | p90 | p95 | p99 | max |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    row('all', s.overall),
    ...Object.entries(s.scenarios).map(([name, sc]) => row(name, sc)),
    '',
    s.model.kind === 'open'
      ? 'Latency runs from each request\'s **scheduled** start to the end of its answer, so time a request spent waiting because the target was slow counts (no coordinated omission). '
        + `Service time (from the actual send): p50 ${ms(s.overall.service_ms.p50)}, p99 ${ms(s.overall.service_ms.p99)}, max ${ms(s.overall.service_ms.max)}.`
      : 'Closed model: latency runs from the send to the end of the answer. A virtual user sends nothing while it waits, so this measures service time at a fixed concurrency; use the open model (`--rate`) for latency objectives.',
    '',
    '### Statuses',
    '',
    '| Scenario | Statuses |',
    '|---|---|',
    ...statusRows(s.scenarios),
    '',
  );
  const errors = errorRows(s.scenarios);
  lines.push('### Errors', '');
  if (errors.length === 0) lines.push('None.', '');
  else lines.push('| Scenario | Code | Count |', '|---|---|---:|', ...errors, '');
  lines.push('## Thresholds', '');
  if (s.thresholds.length === 0) lines.push('None given.', '');
  else lines.push('| Threshold | Observed | Result |', '|---|---:|---|', ...thresholdRows(s.thresholds), '');
  if (s.warnings.length > 0) lines.push('## Warnings', '', ...s.warnings.map((w) => `- ${w}`), '');
  return `${lines.join('\n').trimEnd()}\n`;
}

/** A terminal summary (stdout) after a run. */
export function loadText(s: LoadSummary): string {
  const head = `${'scenario'.padEnd(16)} ${'requests'.padStart(9)} ${'req/s'.padStart(9)} ${'failed'.padStart(8)} ${'p50'.padStart(9)} ${'p95'.padStart(9)} ${'p99'.padStart(9)} ${'max'.padStart(9)}`;
  const line = (name: string, sc: ScenarioSummary): string =>
    `${name.slice(0, 16).padEnd(16)} ${String(sc.requests).padStart(9)} ${sc.throughput_rps.toFixed(1).padStart(9)} ${String(sc.failed).padStart(8)} ${ms(sc.latency_ms.p50).padStart(9)} ${ms(sc.latency_ms.p95).padStart(9)} ${ms(sc.latency_ms.p99).padStart(9)} ${ms(sc.latency_ms.max).padStart(9)}`;
  const out = [head, line('all', s.overall), ...Object.entries(s.scenarios).map(([n, sc]) => line(n, sc))];
  const errors = Object.entries(s.overall.errors);
  if (errors.length > 0) out.push(`errors: ${errors.map(([c, n]) => `${c} ${n}`).join(', ')}`);
  for (const t of s.thresholds) {
    const observed = t.observed === null ? t.note ?? 'nothing' : t.metric === 'http_req_duration' ? ms(t.observed) : String(t.observed);
    out.push(`${t.ok ? 'ok  ' : 'FAIL'} ${t.threshold}  (observed ${observed})`);
  }
  for (const r of s.invalid_reasons) out.push(`INVALID: ${r}`);
  for (const w of s.warnings) out.push(`warning: ${w}`);
  return `${out.join('\n')}\n`;
}

/** Writes summary.json and report.md into `dir` (created); returns their paths. */
export function writeLoadReports(dir: string, s: LoadSummary): { json: string; markdown: string } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, 'summary.json');
  const markdown = join(dir, 'report.md');
  writeFileSync(json, `${JSON.stringify(s, null, 2)}\n`);
  writeFileSync(markdown, loadMarkdown(s));
  return { json, markdown };
}

/** A directory name for a run started at `when`: 2025-01-31T12-00-00Z. */
export function runStamp(when: Date): string {
  return when.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}
