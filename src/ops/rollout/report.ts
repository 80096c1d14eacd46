import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cell, ms } from '../load/report.js';
import type { PhaseFigures, WatchFigures } from './watch.js';

/** One replaced instance (stack) or one updated pod as seen by `kubectl rollout status` (k8s). */
export interface RolloutStep {
  readonly id: string;
  readonly from: string | null;
  readonly to: string | null;
  readonly ok: boolean;
  /** Seconds after the load started. */
  readonly at_s: number;
  readonly end_s: number;
  /** Wall time of the step. */
  readonly took_s: number;
  /** Stack: until the new process answered /ready. */
  readonly ready_s?: number;
  /** Failed requests answered while the step ran (by interval, so approximate at the edges). */
  readonly failed: number;
  readonly error?: string;
}

export interface KubectlCall {
  readonly args: readonly string[];
  readonly exit_code: number | null;
  readonly signal: string | null;
  readonly took_s: number;
  /** Last lines of its output (stdout and stderr). */
  readonly output: string;
}

export interface K8sSection {
  readonly context: string | null;
  readonly namespace: string;
  readonly deployment: string;
  readonly action: 'restart' | 'set-image';
  readonly image: string | null;
  readonly revision_before: string | null;
  /** How the rollout ended. */
  readonly outcome: 'complete' | 'status-failed' | 'deadline' | 'failed-requests' | 'not-started' | 'interrupted';
  readonly undo: { readonly ok: boolean; readonly status_ok: boolean; readonly took_s: number; readonly to_revision: string | null } | null;
  /** `kubectl rollout status` lines with the second (after the load started) each was seen. */
  readonly progress: readonly { readonly t_s: number; readonly line: string }[];
  readonly commands: readonly KubectlCall[];
}

export interface StackInstanceView {
  readonly id: string;
  readonly instance_id: string;
  readonly pid: number | null;
  readonly status: string;
  readonly in_rotation: boolean | null;
}

export interface StackSection {
  readonly dir: string;
  readonly before: readonly StackInstanceView[];
  readonly after: readonly StackInstanceView[];
  /** The balancer's counters over the run: retries are requests it saved by sending them to another instance. */
  readonly balancer: { readonly requests: number; readonly retries: number; readonly failed: number } | null;
}

export type Verdict = 'PASS' | 'FAIL';

export interface RolloutReport {
  readonly tool: 'kgents rollout';
  readonly version: string;
  readonly mode: 'stack' | 'k8s';
  readonly target: string;
  readonly started_at: string;
  readonly ended_at: string;
  readonly settings: {
    readonly load_rate: number;
    readonly mix: string;
    readonly settle_before_s: number;
    readonly settle_after_s: number;
    readonly max_failed: number;
    readonly keys: number;
    readonly deadline_s: number;
  };
  readonly verdict: Verdict;
  readonly reasons: readonly string[];
  readonly exit_code: 0 | 1;
  readonly rollout: { readonly took_s: number; readonly steps: readonly RolloutStep[] };
  /** p95/p99 while the rollout ran against the quiet period before it (ratio > 1: slower). */
  readonly latency: {
    readonly before_p95_ms: number | null;
    readonly during_p95_ms: number | null;
    readonly p95_ratio: number | null;
    readonly before_p99_ms: number | null;
    readonly during_p99_ms: number | null;
    readonly p99_ratio: number | null;
  };
  readonly stack?: StackSection;
  readonly k8s?: K8sSection;
  readonly load: WatchFigures;
  readonly warnings: readonly string[];
}

function num(v: number | undefined): number | null {
  return v === undefined || Number.isNaN(v) ? null : v;
}

function ratio(a: number | null, b: number | null): number | null {
  return a === null || b === null || a <= 0 ? null : Math.round((b / a) * 100) / 100;
}

export function latencyChange(load: WatchFigures): RolloutReport['latency'] {
  const before = load.phases.find((p) => p.phase === 'before');
  const during = load.phases.find((p) => p.phase === 'during');
  const b95 = num(before?.latency_ms.p95);
  const d95 = num(during?.latency_ms.p95);
  const b99 = num(before?.latency_ms.p99);
  const d99 = num(during?.latency_ms.p99);
  return { before_p95_ms: b95, during_p95_ms: d95, p95_ratio: ratio(b95, d95), before_p99_ms: b99, during_p99_ms: d99, p99_ratio: ratio(b99, d99) };
}

/** The load's part of the verdict: failed requests within the limit, and an answer at all. */
export function loadReasons(load: WatchFigures, maxFailed: number): string[] {
  const reasons: string[] = [];
  if (load.total.failed > maxFailed) {
    reasons.push(`${load.total.failed} requests failed (limit ${maxFailed}): ${codes(load.total)}`);
  }
  if (load.total.requests === 0) reasons.push('no request was answered: the load did not reach the target');
  return reasons;
}

/** Failed requests of an interval range, from the timeline (for per-step counts). */
export function failedBetween(load: WatchFigures, fromS: number, toS: number, intervalS: number): number {
  return load.timeline.filter((p) => p.t > fromS && p.t - intervalS < toS).reduce((a, p) => a + p.failed, 0);
}

function codes(p: PhaseFigures): string {
  const parts = Object.entries(p.failed_by_code).sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ×${n}`);
  return parts.length ? parts.join(', ') : 'none';
}

function statuses(p: PhaseFigures): string {
  const parts = Object.entries(p.failed_by_status).sort().map(([s, n]) => `${s === '0' ? 'no answer' : s} ×${n}`);
  return parts.length ? parts.join(', ') : '–';
}

function secs(v: number | undefined): string {
  return v === undefined ? '–' : `${v.toFixed(1)} s`;
}

function ratioText(r: number | null): string {
  return r === null ? '–' : `×${r.toFixed(2)}`;
}

export function rolloutMarkdown(r: RolloutReport): string {
  const what = r.mode === 'stack'
    ? `local stack ${r.stack?.dir ?? ''}: ${r.rollout.steps.length} API instance${r.rollout.steps.length === 1 ? '' : 's'} replaced one at a time`
    : `Kubernetes deployment ${r.k8s?.namespace ?? ''}/${r.k8s?.deployment ?? ''}${r.k8s?.context ? ` (context ${r.k8s.context})` : ''}: ${r.k8s?.action === 'set-image' ? `set image ${r.k8s.image ?? ''}` : 'rollout restart'}`;
  const lines = [
    `# Rollout: ${r.verdict}`,
    '',
    `- **What:** ${what}`,
    `- **Target under load:** ${r.target}, ${r.settings.load_rate} req/s (open model), mix ${r.settings.mix}, ${r.settings.keys} key${r.settings.keys === 1 ? '' : 's'}`,
    `- **When:** ${r.started_at} → ${r.ended_at}; settle ${r.settings.settle_before_s} s before and ${r.settings.settle_after_s} s after`,
    `- **Rollout took:** ${secs(r.rollout.took_s)}`,
    `- **Failed requests:** ${r.load.total.failed} of ${r.load.total.requests} (limit ${r.settings.max_failed})`,
    `- **Result:** ${r.verdict} (exit code ${r.exit_code})${r.reasons.length ? `: ${r.reasons.join('; ')}` : ''}`,
    `- **Tool:** kgents rollout ${r.version}`,
    '',
    '## Steps',
    '',
  ];
  if (r.rollout.steps.length === 0) lines.push('None.', '');
  else {
    lines.push('| Step | From | To | Took | Ready after | Failed requests | Result |', '|---|---|---|---:|---:|---:|---|');
    for (const s of r.rollout.steps) {
      lines.push(`| ${cell(s.id)} | ${cell(s.from ?? '–')} | ${cell(s.to ?? '–')} | ${secs(s.took_s)} | ${secs(s.ready_s)} | ${s.failed} | ${s.ok ? 'ok' : `**failed**${s.error ? `: ${cell(s.error)}` : ''}`} |`);
    }
    lines.push('');
  }
  lines.push(
    '## Load by phase',
    '',
    '| Phase | Seconds | Requests | req/s | Failed | Failed by status | Failed by code | p50 | p95 | p99 | max |',
    '|---|---|---:|---:|---:|---|---|---:|---:|---:|---:|',
    ...[...r.load.phases, r.load.total].map((p) => `| ${p.phase} | ${p.from_s.toFixed(1)}–${p.to_s.toFixed(1)} | ${p.requests} | ${p.rps.toFixed(1)} | ${p.failed} | ${cell(statuses(p))} | ${cell(codes(p))} | ${ms(p.latency_ms.p50)} | ${ms(p.latency_ms.p95)} | ${ms(p.latency_ms.p99)} | ${ms(p.latency_ms.max)} |`),
    '',
    `During the rollout against before: p95 ${ms(r.latency.before_p95_ms)} → ${ms(r.latency.during_p95_ms)} (${ratioText(r.latency.p95_ratio)}), `
      + `p99 ${ms(r.latency.before_p99_ms)} → ${ms(r.latency.during_p99_ms)} (${ratioText(r.latency.p99_ratio)}). `
      + 'Latency runs from each request\'s scheduled start, so a stall counts in full. An interval that touches the rollout counts as "during".',
    '',
  );
  if (r.stack) {
    lines.push('## Stack', '', '| Slot | Before | After | In rotation after |', '|---|---|---|---|');
    for (const b of r.stack.before) {
      const a = r.stack.after.find((x) => x.id === b.id);
      lines.push(`| ${b.id} | ${b.instance_id} (pid ${b.pid ?? '–'}) | ${a ? `${a.instance_id} (pid ${a.pid ?? '–'}, ${a.status})` : '–'} | ${a?.in_rotation === null || a === undefined ? '–' : a.in_rotation ? 'yes' : '**no**'} |`);
    }
    if (r.stack.balancer) lines.push('', `Balancer over the run: ${r.stack.balancer.requests} requests, ${r.stack.balancer.retries} retried on another instance, ${r.stack.balancer.failed} answered 503 by the balancer.`);
    lines.push('');
  }
  if (r.k8s) {
    const k = r.k8s;
    lines.push('## Kubernetes', '',
      `- **Outcome:** ${k.outcome}; revision before: ${k.revision_before ?? 'unknown'}`,
      `- **Undo:** ${k.undo === null ? 'not needed' : `${k.undo.ok && k.undo.status_ok ? 'done' : '**failed**'}${k.undo.to_revision ? ` (to revision ${k.undo.to_revision})` : ''}, ${secs(k.undo.took_s)}`}`,
      '', '| Command | Exit | Took |', '|---|---:|---:|',
      ...k.commands.map((c) => `| \`kubectl ${cell(c.args.join(' '))}\` | ${c.exit_code ?? c.signal ?? '–'} | ${secs(c.took_s)} |`),
      '');
    if (k.progress.length > 0) lines.push('Rollout status:', '', '```', ...k.progress.map((p) => `${p.t_s.toFixed(1).padStart(7)} s  ${p.line}`), '```', '');
  }
  if (r.warnings.length > 0) lines.push('## Warnings', '', ...r.warnings.map((w) => `- ${w}`), '');
  return `${lines.join('\n')}\n`;
}

/** A few lines for the terminal. */
export function rolloutText(r: RolloutReport): string {
  const lines = r.rollout.steps.map((s) => `${s.ok ? 'ok  ' : 'FAIL'} ${s.id}: ${s.from ?? '–'} → ${s.to ?? '–'} in ${secs(s.took_s)}${s.ready_s !== undefined ? ` (ready after ${secs(s.ready_s)})` : ''}, ${s.failed} failed${s.error ? `: ${s.error}` : ''}`);
  if (r.k8s) lines.push(`kubernetes: ${r.k8s.outcome}${r.k8s.undo ? `; undo ${r.k8s.undo.ok && r.k8s.undo.status_ok ? 'done' : 'FAILED'}` : ''}`);
  for (const p of r.load.phases) {
    lines.push(`${p.phase.padEnd(6)} ${p.requests} requests, ${p.failed} failed${p.failed ? ` (${codes(p)})` : ''}, p95 ${ms(p.latency_ms.p95)}, p99 ${ms(p.latency_ms.p99)}`);
  }
  lines.push(`rollout took ${secs(r.rollout.took_s)}; ${r.load.total.failed} of ${r.load.total.requests} requests failed (limit ${r.settings.max_failed}); p95 ${ratioText(r.latency.p95_ratio)}, p99 ${ratioText(r.latency.p99_ratio)} against before`);
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  lines.push(`rollout: ${r.verdict}${r.reasons.length ? ` (${r.reasons.join('; ')})` : ''}`);
  return `${lines.join('\n')}\n`;
}

export function writeRolloutReports(dir: string, r: RolloutReport): { json: string; markdown: string } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, 'rollout.json');
  const markdown = join(dir, 'report.md');
  writeFileSync(json, `${JSON.stringify(r, null, 2)}\n`);
  writeFileSync(markdown, rolloutMarkdown(r));
  return { json, markdown };
}
