import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LatencySummary } from './measure.js';
import type { ChaosResult } from './runner.js';

const sec = (ms: number | null | undefined): string => (ms === null || ms === undefined ? '–' : `${(ms / 1000).toFixed(1)} s`);
const msText = (v: number | null): string => (v === null ? '–' : `${v} ms`);
const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function latency(l: LatencySummary): string {
  return `p50 ${msText(l.p50_ms)}, p95 ${msText(l.p95_ms)}, p99 ${msText(l.p99_ms)}, max ${msText(l.max_ms)} (${l.count} requests)`;
}

/** A few lines for the terminal. */
export function chaosText(r: ChaosResult): string {
  const lines = [`${r.scenario}: ${r.verdict}${r.error ? ` (${r.error})` : ''}`];
  if (r.fault) lines.push(`  fault: ${r.fault.description} at ${r.fault.injected_at}${r.fault.healed_at ? `, healed at ${r.fault.healed_at}` : ''}`);
  const f = r.figures;
  if (f) {
    lines.push(`  detect ${sec(f.detect_ms)}${f.detected_by ? ` (${f.detected_by})` : ''}; full recovery ${sec(f.recovery_ms)}${f.recovery_after_heal_ms !== null ? ` (${sec(f.recovery_after_heal_ms)} after heal)` : ''}`);
    lines.push(`  requests ${f.requests.total}: ${f.requests.ok} ok, ${f.requests.failed} failed (${f.requests.failed_during_fault} during the fault)`);
    lines.push(f.events.audited
      ? `  usage events: ${f.events.expected} expected, ${f.events.lost} lost, ${f.events.duplicated} duplicated, ${f.events.unacknowledged} for unanswered requests, ${f.events.stray} stray`
      : `  usage events: not audited (${f.events.note ?? ''})`);
    for (const m of f.marks) lines.push(`  ${sec(m.at)}: ${m.name}${m.detail ? ` (${m.detail})` : ''}`);
  }
  for (const c of r.checks) lines.push(`  ${c.verdict === 'PASS' ? 'ok  ' : c.verdict === 'FAIL' ? 'FAIL' : 'N/A '} ${c.check}: ${c.detail}`);
  return `${lines.join('\n')}\n`;
}

export function chaosMarkdown(r: ChaosResult): string {
  const out = [`# kgents chaos ${r.scenario}: ${r.verdict}`, '', `${r.summary}. SLA: ${r.sla}.`, '',
    `Target: ${r.target.kind} ${r.target.url}; ${r.started_at} – ${r.ended_at}; kgents ${r.version}.`,
    `Load: ${r.settings.rate} invokes/s over ${r.settings.concurrency} connections, at least ${r.settings.duration_s} s, warm-up ${r.settings.warmup_s} s${r.settings.fault_s !== null ? `, fault held ${r.settings.fault_s} s` : ''}.`, ''];
  if (r.error) out.push(`**The run did not complete:** ${r.error}`, '');
  if (r.fault) out.push(`Fault: ${r.fault.description}, at ${r.fault.injected_at}${r.fault.healed_at ? `; healed at ${r.fault.healed_at}` : ''}.`, '');
  if (r.checks.length) {
    out.push('| SLA check | Verdict | Measured |', '|---|---|---|');
    for (const c of r.checks) out.push(`| ${cell(c.check)} | ${c.verdict} | ${cell(c.detail)} |`);
    out.push('');
  }
  const f = r.figures;
  if (f) {
    out.push('| Figure | Value |', '|---|---|',
      `| time to detect | ${sec(f.detect_ms)}${f.detected_by ? ` (${cell(f.detected_by)})` : ''} |`,
      `| time to full recovery | ${sec(f.recovery_ms)} |`,
      ...(f.recovery_after_heal_ms !== null ? [`| full recovery after heal | ${sec(f.recovery_after_heal_ms)} |`] : []),
      `| requests | ${f.requests.total} (${f.requests.ok} ok, ${f.requests.failed} failed, ${f.requests.failed_during_fault} of them during the fault; ${f.requests.in_flight_at_fault} in flight at the fault) |`,
      `| seconds without a 2xx during the fault | ${f.requests.seconds_without_success} |`,
      `| latency | ${latency(f.requests.latency)} |`,
      `| latency during the fault | ${latency(f.requests.latency_during_fault)} |`,
      f.events.audited
        ? `| usage events | ${f.events.expected} expected, ${f.events.lost} lost, ${f.events.duplicated} duplicated, ${f.events.unacknowledged} for requests without a 2xx, ${f.events.stray} stray; last one in USAGE ${sec(f.events.settle_ms)} after the load stopped |`
        : `| usage events | not audited: ${cell(f.events.note ?? '')} |`,
      `| health samples | ${f.health.samples} (${f.health.not_ok} not ok${f.health.first_not_ok ? `; first: ${cell(f.health.first_not_ok)}` : ''}) |`, '');
    out.push('Outcomes: ' + Object.entries(f.requests.by_outcome).map(([k, v]) => `${k}: ${v}`).join(', ') + '.', '');
    if (Object.keys(f.requests.by_backend).length) out.push('Answered by: ' + Object.entries(f.requests.by_backend).map(([k, v]) => `${k}: ${v}`).join(', ') + '.', '');
    if (f.marks.length) {
      out.push('| Time after the fault | Event |', '|---|---|');
      for (const m of f.marks) out.push(`| ${sec(m.at)} | ${cell(m.name)}${m.detail ? `: ${cell(m.detail)}` : ''} |`);
      out.push('');
    }
    if (f.health.transitions.length) {
      out.push('Health changes (time after the fault, endpoint, state):', '');
      for (const h of f.health.transitions) out.push(`- ${sec(h.at)} ${h.endpoint}: ${h.state}`);
      out.push('');
    }
    if (f.events.lost || f.events.duplicated || f.events.stray) {
      out.push(`Examples: lost ${f.events.examples.lost.join(', ') || '–'}; duplicated ${f.events.examples.duplicated.join(', ') || '–'}; stray ${f.events.examples.stray.join(', ') || '–'}.`, '');
    }
  }
  return `${out.join('\n')}\n`;
}

/** Writes `<scenario>.json` and `<scenario>.md` per result, plus `summary.md` when there are several. */
export function writeChaosReports(dir: string, results: readonly ChaosResult[]): string[] {
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (const r of results) {
    const base = join(dir, r.scenario);
    writeFileSync(`${base}.json`, `${JSON.stringify(r, null, 2)}\n`);
    writeFileSync(`${base}.md`, chaosMarkdown(r));
    files.push(`${base}.md`, `${base}.json`);
  }
  if (results.length > 1) {
    const rows = results.map((r) => `| ${r.scenario} | ${r.verdict} | ${sec(r.figures?.detect_ms)} | ${sec(r.figures?.recovery_ms)} | ${r.figures?.requests.failed ?? '–'} | ${r.figures?.events.audited ? r.figures.events.lost : '–'} | ${r.figures?.events.audited ? r.figures.events.duplicated : '–'} |`);
    writeFileSync(join(dir, 'summary.md'), ['# kgents chaos all', '', '| Scenario | Verdict | Detect | Full recovery | Failed requests | Events lost | Events duplicated |', '|---|---|---|---|---|---|---|', ...rows, ''].join('\n'));
    files.push(join(dir, 'summary.md'));
  }
  return files;
}
