/**
 * The chaos framework's contract (`kgents chaos SCENARIO|all`).
 *
 * How a run goes (runner.ts, shared by every scenario): steady metered load starts against the
 * target's public URL (load.ts: every POST invoke carries its own x-request-id, which the API copies
 * into the usage event's data.request_id), health is polled (monitor.ts), and after the warm-up the
 * runner calls `inject`. If the scenario has `heal`, the fault is held for `faultMs` and then healed.
 * The runner then polls `recovered` (together with "every health endpoint ok") until it holds, keeps
 * the load going for a tail, stops it, and audits the USAGE stream against the 2xx answers
 * (audit.ts). measure.ts turns all that into the figures; `judge` turns the figures into SLA checks.
 *
 * How to add a scenario:
 *   1. Create `src/ops/chaos/scenarios/<name>.ts` exporting one `Scenario` object (see api-kill.ts for
 *      a short one). Use `ctx.target` (a discriminated union: `stack` gives you `StackControl` and the
 *      live StackState, `k8s` gives you `Kubectl`, `url` gives you only the URL) to inject the fault;
 *      list the target kinds you handle in `targets`, and throw `ScenarioUnsupportedError` from
 *      `inject` when this particular deployment cannot take the fault (the run is then SKIPPED).
 *   2. Call `ctx.mark('detected' | 'recovered' | any-name, detail)` for facts you observe yourself
 *      (e.g. "publishing resumed"); the runner also detects on its own (first failed or slow request,
 *      first health sample not ok).
 *   3. Write `judge(result)` returning one `SlaCheck` per SLA clause; measure.ts has the usual ones:
 *      `eventChecks` (no lost / no duplicated events), `recoveryCheck` (recovered within N s),
 *      `servingCheck` (no second without a 2xx, at most N failures).
 *   4. Add it to the list in `src/ops/chaos/registry.ts` (the order is the order of `kgents chaos all`).
 *   5. Add a test under test/ops/chaos/ that runs it against the shared test stack
 *      (test/ops/chaos/stack-fixture.ts) with a short duration, and a section in
 *      docs/chaos-baseline.md and docs/runbook.md.
 */
import type { StackControl } from '../stack/stack.js';
import type { StackState } from '../stack/state.js';
import type { Kubectl } from './k8s.js';
import type { HealthSample } from './monitor.js';

export type TargetKind = 'stack' | 'k8s' | 'url';

interface TargetBase {
  /** The public URL the load goes to (the stack's balancer, the ingress, a port-forward). */
  readonly url: string;
  /** NATS servers whose USAGE stream is audited; empty: events are not audited. */
  readonly natsUrls: readonly string[];
}

/** The local stack (in this process or detached behind its control endpoint). */
export interface StackTarget extends TargetBase {
  readonly kind: 'stack';
  readonly control: StackControl;
  /** The live state: part ids, pids, ports (NATS monitor ports), API instance URLs. */
  state(): Promise<StackState>;
}

/** A Kubernetes deployment driven with kubectl (see k8s.ts for names and namespaces). */
export interface K8sTarget extends TargetBase {
  readonly kind: 'k8s';
  readonly kubectl: Kubectl;
}

/** Any deployment reachable only over HTTP: load and health only, no fault injection of its own. */
export interface UrlTarget extends TargetBase {
  readonly kind: 'url';
}

export type ChaosTarget = StackTarget | K8sTarget | UrlTarget;

/** A moment of the run worth reporting, `t_ms` after the fault was injected (negative: before). */
export interface Mark {
  readonly name: string;
  readonly at: number;
  readonly detail?: string;
}

export interface ChaosContext {
  readonly target: ChaosTarget;
  /** How long the fault is held before `heal` (scenarios without heal ignore it). */
  readonly faultMs: number;
  /** Notes for the operator (stderr in the CLI). */
  log(line: string): void;
  /**
   * Records a fact with the current time. `detected` and `recovered` are special: the earliest
   * `detected` and the latest `recovered` take part in time-to-detect and time-to-recovery.
   */
  mark(name: string, detail?: string): void;
  /** The latest /health/saas sample of each polled endpoint (circuit, fallback queue depth, Redis mode). */
  health(): readonly HealthSample[];
  /** Aborted when the run is interrupted; long waits should give up. */
  readonly signal: AbortSignal;
}

/** What `inject` did; `details` end up in the report as they are. */
export interface Fault {
  readonly description: string;
  /** When the fault took effect (Date.now()); default: when inject resolved. Set it when inject looks things up first. */
  readonly at?: number;
  readonly details?: Readonly<Record<string, string | number | boolean | null>>;
}

export type Verdict = 'PASS' | 'FAIL' | 'N/A';

export interface SlaCheck {
  readonly check: string;
  readonly verdict: Verdict;
  readonly detail: string;
}

export interface Scenario {
  /** The CLI name: `kgents chaos <name>`. */
  readonly name: string;
  readonly summary: string;
  /** The SLA as one line, for help and reports. */
  readonly sla: string;
  readonly targets: readonly TargetKind[];
  /** Longest wait for recovery after the fault (or after heal); the runner gives up then and reports. */
  readonly recoveryTimeoutMs: number;
  /** Default time the fault is held (scenarios with `heal`). */
  readonly defaultFaultMs?: number;
  /** Injects the fault once the load is steady. */
  inject(ctx: ChaosContext): Promise<Fault>;
  /** Ends the fault (restart what was stopped, heal the partition); absent when the system heals itself. */
  heal?(ctx: ChaosContext, fault: Fault): Promise<void>;
  /**
   * Whether the system is back to full service by the scenario's own measure (the killed part is
   * back and in rotation, the stream has a leader...). Polled every ~250 ms; the runner also
   * requires every health endpoint to answer ok.
   */
  recovered(ctx: ChaosContext, fault: Fault): Promise<boolean>;
  /** The SLA checks from the measured figures. */
  judge(result: ScenarioFigures): SlaCheck[];
}

/** The figures a scenario's `judge` sees (see measure.ts for how each one is measured). */
export interface ScenarioFigures {
  /** From the injection to the first sign of trouble; null when nothing was noticed. */
  readonly detect_ms: number | null;
  readonly detected_by: string | null;
  /** From the injection to full recovery; null when it did not recover within the timeout. */
  readonly recovery_ms: number | null;
  /** From `heal` to full recovery (scenarios with heal). */
  readonly recovery_after_heal_ms: number | null;
  readonly requests: {
    readonly total: number;
    readonly ok: number;
    readonly failed: number;
    /** Failed requests between the injection and recovery. */
    readonly failed_during_fault: number;
    /** Requests in flight while the fault was being injected (what a killed process could take with it). */
    readonly in_flight_at_fault: number;
    /** 1-second buckets between the injection and recovery with no 2xx answer at all. */
    readonly seconds_without_success: number;
  };
  readonly events: {
    readonly audited: boolean;
    readonly expected: number;
    readonly lost: number;
    readonly duplicated: number;
  };
  readonly marks: readonly Mark[];
}

/** Raised by `inject` when the scenario cannot run against this kind of target. */
export class ScenarioUnsupportedError extends Error {
  constructor(scenario: string, target: TargetKind, why = '') {
    super(`scenario ${scenario} cannot run against a ${target} target${why ? `: ${why}` : ''}`);
    this.name = 'ScenarioUnsupportedError';
  }
}
