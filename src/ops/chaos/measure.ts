import type { EventAudit } from './audit.js';
import type { RequestRecord } from './load.js';
import type { HealthSample } from './monitor.js';
import type { Mark, ScenarioFigures, SlaCheck } from './scenario.js';

/** Everything the runner observed, in absolute Date.now() ms. */
export interface Observations {
  readonly records: readonly RequestRecord[];
  readonly samples: readonly HealthSample[];
  /** Marks with absolute times. */
  readonly marks: readonly Mark[];
  readonly injectedAt: number;
  /** When `inject` returned: the fault took effect somewhere between injectedAt and this. */
  readonly injectReturnedAt?: number;
  readonly healedAt: number | null;
  /** When the scenario's `recovered` and "every health endpoint ok" first held together (and kept holding); null: never. */
  readonly recoveredAt: number | null;
  readonly audit: EventAudit;
  /** A request slower than this is a detection signal. */
  readonly slowMs: number;
}

export interface LatencySummary {
  readonly count: number;
  readonly p50_ms: number | null;
  readonly p95_ms: number | null;
  readonly p99_ms: number | null;
  readonly max_ms: number | null;
}

export interface Measurement extends ScenarioFigures {
  readonly requests: ScenarioFigures['requests'] & {
    readonly by_outcome: Readonly<Record<string, number>>;
    readonly by_backend: Readonly<Record<string, number>>;
    readonly latency: LatencySummary;
    readonly latency_during_fault: LatencySummary;
    /** "Normal": requests answered in the second half of the time before the fault (the first half warms up JIT and connections). */
    readonly latency_before_fault: LatencySummary;
  };
  readonly events: EventAudit;
  readonly health: {
    readonly samples: number;
    readonly not_ok: number;
    readonly first_not_ok: string | null;
    /** Changes of each endpoint's state (status, circuit, Redis mode), ms after the fault; at most 60. */
    readonly transitions: readonly HealthTransition[];
  };
}

export interface HealthTransition {
  readonly at: number;
  readonly endpoint: string;
  readonly state: string;
}

function stateWord(s: HealthSample): string {
  return [s.status, s.circuit !== undefined ? `circuit ${s.circuit}` : '', s.redis_mode !== undefined ? `redis ${s.redis_mode}` : ''].filter((x) => x !== '').join(', ');
}

/** When each endpoint's health state changed (the first sample of each endpoint counts as a change). */
export function healthTransitions(samples: readonly HealthSample[], t0: number, limit = 60): HealthTransition[] {
  const last = new Map<string, string>();
  const out: HealthTransition[] = [];
  for (const s of [...samples].sort((a, b) => a.at - b.at)) {
    const state = stateWord(s);
    if (last.get(s.endpoint) === state) continue;
    last.set(s.endpoint, state);
    out.push({ at: s.at - t0, endpoint: s.endpoint, state });
  }
  return out.length > limit ? [...out.slice(0, limit - 1), out[out.length - 1] as HealthTransition] : out;
}

const isOk = (r: RequestRecord): boolean => r.status >= 200 && r.status < 300;

function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? null;
}

export function latencySummary(records: readonly RequestRecord[]): LatencySummary {
  const sorted = records.map((r) => r.end - r.start).sort((a, b) => a - b);
  return { count: sorted.length, p50_ms: percentile(sorted, 50), p95_ms: percentile(sorted, 95), p99_ms: percentile(sorted, 99), max_ms: sorted.at(-1) ?? null };
}

function outcome(r: RequestRecord): string {
  if (isOk(r)) return String(r.status);
  return r.status === 0 ? `no answer (${r.error ?? '?'})` : `${r.status}${r.error ? ` ${r.error}` : ''}`;
}

/**
 * Turns observations into figures:
 * - detect: the earliest of the first request that failed or ran slower than `slowMs` (when it
 *   became slow), the first health sample not ok, and a scenario `detected` mark, at or after the
 *   injection;
 * - full recovery: the latest of `recoveredAt`, the last failed request's answer and the last
 *   `recovered` mark; measured from the injection (and from heal, when there was one);
 * - requests failed during the fault, and 1-second stretches with no success at all, between the
 *   injection and recovery (or the end of the run).
 */
export function measure(o: Observations): Measurement {
  const t0 = o.injectedAt;
  const candidates: { at: number; by: string }[] = [];
  const failures = o.records.filter((r) => !isOk(r));
  const firstFail = failures.filter((r) => r.end >= t0).sort((a, b) => a.end - b.end)[0];
  if (firstFail) candidates.push({ at: firstFail.end, by: `failed request (${outcome(firstFail)})` });
  const firstSlow = o.records.filter((r) => r.end - r.start > o.slowMs && r.start + o.slowMs >= t0).sort((a, b) => a.start - b.start)[0];
  if (firstSlow) candidates.push({ at: firstSlow.start + o.slowMs, by: `request slower than ${o.slowMs} ms` });
  const firstBad = o.samples.filter((s) => !s.ok && s.at >= t0).sort((a, b) => a.at - b.at)[0];
  if (firstBad) candidates.push({ at: firstBad.at, by: `health ${firstBad.status} at ${firstBad.endpoint}` });
  const detectedMark = o.marks.filter((m) => m.name === 'detected' && m.at >= t0).sort((a, b) => a.at - b.at)[0];
  if (detectedMark) candidates.push({ at: detectedMark.at, by: detectedMark.detail ?? 'scenario' });
  const detection = candidates.sort((a, b) => a.at - b.at)[0];

  let recoveredPoint: number | null = null;
  if (o.recoveredAt !== null) {
    const lastFail = failures.filter((r) => r.end >= t0).reduce((m, r) => Math.max(m, r.end), 0);
    const lastMark = o.marks.filter((m) => m.name === 'recovered').reduce((m, x) => Math.max(m, x.at), 0);
    recoveredPoint = Math.max(o.recoveredAt, lastFail, lastMark);
  }
  const lastAnswer = o.records.reduce((m, r) => Math.max(m, r.end), t0);
  const faultEnd = recoveredPoint ?? lastAnswer;
  const inFault = (r: RequestRecord): boolean => r.end >= t0 && r.start <= faultEnd;
  let withoutSuccess = 0;
  const okEnds = o.records.filter(isOk).map((r) => r.end);
  for (let s = t0; s + 1000 <= faultEnd; s += 1000) {
    if (!okEnds.some((e) => e >= s && e < s + 1000)) withoutSuccess++;
  }
  const byOutcome: Record<string, number> = {};
  const byBackend: Record<string, number> = {};
  for (const r of o.records) {
    const k = outcome(r);
    byOutcome[k] = (byOutcome[k] ?? 0) + 1;
    if (r.backend !== undefined) byBackend[r.backend] = (byBackend[r.backend] ?? 0) + 1;
  }
  const notOk = o.samples.filter((s) => !s.ok);
  const loadStart = o.records.reduce((m, r) => Math.min(m, r.start), t0);
  const normalFrom = loadStart + (t0 - loadStart) / 2;
  return {
    detect_ms: detection ? Math.max(0, detection.at - t0) : null,
    detected_by: detection?.by ?? null,
    recovery_ms: recoveredPoint === null ? null : recoveredPoint - t0,
    recovery_after_heal_ms: recoveredPoint === null || o.healedAt === null ? null : Math.max(0, recoveredPoint - o.healedAt),
    requests: {
      total: o.records.length, ok: o.records.length - failures.length, failed: failures.length,
      failed_during_fault: failures.filter(inFault).length, seconds_without_success: withoutSuccess,
      in_flight_at_fault: o.records.filter((r) => r.start <= Math.max(t0, o.injectReturnedAt ?? t0) && r.end >= t0).length,
      by_outcome: byOutcome, by_backend: byBackend,
      latency: latencySummary(o.records), latency_during_fault: latencySummary(o.records.filter(inFault)),
      latency_before_fault: latencySummary(o.records.filter((r) => r.start >= normalFrom && r.end < t0)),
    },
    events: o.audit,
    health: { samples: o.samples.length, not_ok: notOk.length, first_not_ok: notOk[0] ? `${notOk[0].endpoint}: ${notOk[0].status}` : null, transitions: healthTransitions(o.samples, t0) },
    marks: o.marks.map((m) => ({ ...m, at: m.at - t0 })),
  };
}

const seconds = (ms: number | null): string => (ms === null ? 'never' : `${(ms / 1000).toFixed(1)} s`);

/** "Full recovery within N s" (from the injection, or from heal with `fromHeal`). */
export function recoveryCheck(f: ScenarioFigures, limitMs: number, what = 'full recovery', fromHeal = false): SlaCheck {
  const ms = fromHeal ? f.recovery_after_heal_ms : f.recovery_ms;
  return {
    check: `${what} within ${limitMs / 1000} s${fromHeal ? ' of healing' : ''}`,
    verdict: ms !== null && ms <= limitMs ? 'PASS' : 'FAIL',
    detail: `${seconds(ms)}${ms === null ? ' (did not recover before the timeout)' : ''}`,
  };
}

/** "Zero usage events lost" and "zero duplicated": N/A when USAGE could not be read. */
export function eventChecks(f: ScenarioFigures & { events: ScenarioFigures['events'] & { note?: string } }): SlaCheck[] {
  if (!f.events.audited) {
    const detail = f.events.note ?? 'USAGE not audited';
    return [{ check: 'zero usage events lost', verdict: 'N/A', detail }, { check: 'zero usage events duplicated', verdict: 'N/A', detail }];
  }
  return [
    { check: 'zero usage events lost', verdict: f.events.lost === 0 ? 'PASS' : 'FAIL', detail: `${f.events.lost} of ${f.events.expected} 2xx answers without an event` },
    { check: 'zero usage events duplicated', verdict: f.events.duplicated === 0 ? 'PASS' : 'FAIL', detail: `${f.events.duplicated} request ids with more than one event` },
  ];
}

/** "Requests kept succeeding": no 1-second stretch without a 2xx answer, at most `maxFailed` failures. */
export function servingCheck(f: ScenarioFigures, what: string, maxFailed: number): SlaCheck {
  const ok = f.requests.seconds_without_success === 0 && f.requests.failed_during_fault <= maxFailed;
  return {
    check: what, verdict: ok ? 'PASS' : 'FAIL',
    detail: `${f.requests.failed_during_fault} failed during the fault (limit ${maxFailed}); ${f.requests.seconds_without_success} one-second stretch(es) with no 2xx answer`,
  };
}

/** Combines checks: FAIL if any failed, PASS if all passed, INCOMPLETE when something could not be measured. */
export function overallVerdict(checks: readonly SlaCheck[]): 'PASS' | 'FAIL' | 'INCOMPLETE' {
  if (checks.some((c) => c.verdict === 'FAIL')) return 'FAIL';
  return checks.every((c) => c.verdict === 'PASS') ? 'PASS' : 'INCOMPLETE';
}
