import { hasNatsFaults, type NatsFaultControl } from '../../stack/faults.js';
import type { StackControl } from '../../stack/stack.js';
import type { Kubectl } from '../k8s.js';
import { eventChecks, recoveryCheck } from '../measure.js';
import { ScenarioUnsupportedError, type ChaosContext, type Fault, type Scenario, type ScenarioFigures, type SlaCheck } from '../scenario.js';

const RECOVERED_AFTER_HEAL_MS = 90_000;
/** Mark names this scenario records (they appear in the report with their times). */
export const MARK_BREAKER_OPEN = 'breaker_open';
export const MARK_QUEUE_PEAK = 'queue_peak';
export const MARK_QUEUE_DRAINED = 'queue_drained';
export const MARK_BREAKER_CLOSED = 'breaker_closed';

/** What the scenario watches during one run: the instances' breakers and fallback queues. */
class Watch {
  peak = 0;
  breakerOpened = false;
  drained = false;
  closed = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly ctx: ChaosContext) {}

  /**
   * One sample per API instance. On the stack the public URL answers for one of them, so it is left
   * out (it would count twice); on Kubernetes it is all there is (a different pod each time).
   */
  private samples(): ReturnType<ChaosContext['health']> {
    const local = this.ctx.target.kind === 'stack';
    return this.ctx.health().filter((s) => s.circuit !== undefined && (!local || s.endpoint !== this.ctx.target.url));
  }

  start(): void {
    this.timer = setInterval(() => this.look(), 100);
    this.timer.unref();
  }

  /** Reads the latest /health/saas sample of every API endpoint (circuit, fallback queue depth). */
  look(): void {
    const samples = this.samples();
    if (samples.length === 0) return;
    const open = samples.filter((s) => s.circuit !== 'closed');
    const depth = samples.reduce((sum, s) => sum + (s.queue_depth ?? 0), 0);
    this.peak = Math.max(this.peak, depth);
    if (!this.breakerOpened && open.length > 0) {
      this.breakerOpened = true;
      const detail = `circuit ${open.map((s) => `${s.circuit ?? '?'} at ${s.endpoint}`).join(', ')}; fallback queue depth ${depth}`;
      this.ctx.mark('detected', `breaker opened: ${detail}`);
      this.ctx.mark(MARK_BREAKER_OPEN, detail);
    }
  }

  /** After healing: marks when every queue is empty and every breaker closed again. */
  settle(): { drained: boolean; closed: boolean } {
    this.look();
    const samples = this.samples();
    const drained = samples.length > 0 && samples.every((s) => s.queue_depth === 0);
    const closed = samples.length > 0 && samples.every((s) => s.circuit === 'closed');
    if (drained && !this.drained) {
      this.drained = true;
      this.ctx.mark(MARK_QUEUE_DRAINED, `every fallback queue empty (peak total depth ${this.peak})`);
    }
    if (closed && !this.closed) {
      this.closed = true;
      this.ctx.mark(MARK_BREAKER_CLOSED, 'every instance publishes to JetStream again');
    }
    return { drained, closed };
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

const watches = new WeakMap<Fault, Watch>();

/** The API's egress NetworkPolicy in deploy/base/api/networkpolicy.yaml; its rule to NATS (port 4222) is what the partition removes. */
export const K8S_EGRESS_POLICY = 'kgents-api-egress';
const NATS_PORT = 4222;

interface EgressRule {
  readonly ports?: readonly { readonly port?: number | string }[];
}

function natsRuleIndex(policyJson: string): { index: number; rule: EgressRule | undefined } {
  const policy = JSON.parse(policyJson) as { spec?: { egress?: EgressRule[] } };
  const egress = policy.spec?.egress ?? [];
  const index = egress.findIndex((r) => r.ports?.some((p) => Number(p.port) === NATS_PORT));
  return { index, rule: egress[index] };
}

/**
 * Kubernetes: the namespaces deny by default and allow by rule (policies only add), so the partition
 * removes the API egress policy's rule to NATS with a JSON patch (`test` first, so only that rule
 * goes) and healing adds it back. With a default deny the CNI drops the packets: connections hang.
 */
async function cutK8s(kubectl: Kubectl): Promise<{ index: number; rule: EgressRule }> {
  const ns = kubectl.layout.apiNamespace;
  const { index, rule } = natsRuleIndex(await kubectl.run(['get', 'networkpolicy', K8S_EGRESS_POLICY, '-n', ns, '-o', 'json']));
  if (index < 0 || !rule) throw new ScenarioUnsupportedError('network-partition', 'k8s', `networkpolicy/${K8S_EGRESS_POLICY} in ${ns} has no egress rule to port ${NATS_PORT}`);
  await kubectl.run(['patch', 'networkpolicy', K8S_EGRESS_POLICY, '-n', ns, '--type=json', '-p',
    JSON.stringify([{ op: 'test', path: `/spec/egress/${index}`, value: rule }, { op: 'remove', path: `/spec/egress/${index}` }])]);
  return { index, rule };
}

async function healK8s(kubectl: Kubectl, fault: Fault): Promise<void> {
  const ns = kubectl.layout.apiNamespace;
  const { index } = natsRuleIndex(await kubectl.run(['get', 'networkpolicy', K8S_EGRESS_POLICY, '-n', ns, '-o', 'json']));
  if (index >= 0) return;
  const saved = String(fault.details?.removed_rule ?? '');
  const at = Number(fault.details?.rule_index ?? 0);
  await kubectl.run(['patch', 'networkpolicy', K8S_EGRESS_POLICY, '-n', ns, '--type=json', '-p', JSON.stringify([{ op: 'add', path: `/spec/egress/${at}`, value: JSON.parse(saved) as unknown }])]);
}

function faults(ctx: ChaosContext): StackControl & NatsFaultControl {
  const t = ctx.target;
  if (t.kind !== 'stack') throw new ScenarioUnsupportedError('network-partition', t.kind, 'it needs the local stack\'s NATS fault proxies');
  if (!hasNatsFaults(t.control)) throw new ScenarioUnsupportedError('network-partition', t.kind, 'this stack control cannot inject network faults');
  return t.control;
}

/**
 * The peak total fallback queue depth, from the marks: at healing (queue_peak) and, since the queue
 * keeps growing until the breaker closes, when it was drained (queue_drained).
 */
export function peakDepth(f: ScenarioFigures): number {
  const depths = f.marks.filter((m) => m.name === MARK_QUEUE_PEAK || m.name === MARK_QUEUE_DRAINED).map((m) => Number(/depth (\d+)/.exec(m.detail ?? '')?.[1] ?? 0));
  return Math.max(0, ...depths);
}

/**
 * Cuts every API instance off from NATS with hanging connections: the stack's fault proxies (one in
 * front of each NATS node, `kgents stack up --nats-faults`) stop forwarding in both directions and
 * keep every connection open, so the client sees silence rather than a refusal. Publishes time out,
 * the breaker opens, usage events go to the fallback queue and calls keep being answered. Healing
 * delivers what was held (stale publishes included: JetStream drops them as duplicates by id); the
 * drainer then empties the queue and the breaker closes.
 */
export const networkPartition: Scenario = {
  name: 'network-partition',
  summary: 'cut the API instances off from NATS with hanging (black-holed, not refused) connections, then heal (local stack: kgents stack up --nats-faults)',
  sla: 'breaker opens and the fallback queue fills during the partition; queue drained and breaker closed within 90 s of healing; no usage event lost or duplicated',
  targets: ['stack', 'k8s'],
  recoveryTimeoutMs: 120_000,
  defaultFaultMs: 20_000,

  async inject(ctx): Promise<Fault> {
    if (ctx.target.kind === 'k8s') {
      const at = Date.now();
      const { index, rule } = await cutK8s(ctx.target.kubectl);
      const fault: Fault = {
        description: `egress rule to NATS (port ${NATS_PORT}) removed from networkpolicy/${K8S_EGRESS_POLICY} in ${ctx.target.kubectl.layout.apiNamespace}`,
        at, details: { rule_index: index, removed_rule: JSON.stringify(rule) },
      };
      const watch = new Watch(ctx);
      watch.start();
      watches.set(fault, watch);
      return fault;
    }
    const control = faults(ctx);
    const before = await control.natsFaults();
    if (before.length === 0) throw new ScenarioUnsupportedError('network-partition', 'stack', 'the stack runs without NATS fault proxies: start it with kgents stack up --nats-faults');
    const at = Date.now();
    const proxies = await control.setNatsFault({ mode: 'hang' });
    const fault: Fault = {
      description: `every API instance's NATS connections black-holed (fault proxies in hang mode in front of ${proxies.map((p) => p.node).join(', ')})`,
      at,
      details: { mode: 'hang', nodes: proxies.length, connections_held: proxies.reduce((n, p) => n + p.connections_open, 0) },
    };
    const watch = new Watch(ctx);
    watch.start();
    watches.set(fault, watch);
    return fault;
  },

  async heal(ctx, fault) {
    const watch = watches.get(fault);
    watch?.look();
    if (watch) ctx.mark(MARK_QUEUE_PEAK, `peak total fallback queue depth ${watch.peak} until healing`);
    if (ctx.target.kind === 'k8s') await healK8s(ctx.target.kubectl, fault);
    else await faults(ctx).setNatsFault({ mode: 'pass' });
  },

  async recovered(ctx, fault) {
    const watch = watches.get(fault);
    if (ctx.target.kind === 'k8s') {
      const ns = ctx.target.kubectl.layout.apiNamespace;
      if (natsRuleIndex(await ctx.target.kubectl.run(['get', 'networkpolicy', K8S_EGRESS_POLICY, '-n', ns, '-o', 'json'])).index < 0) return false;
    } else if ((await faults(ctx).natsFaults()).some((p) => p.mode !== 'pass')) {
      return false;
    }
    const { drained, closed } = watch ? watch.settle() : { drained: false, closed: false };
    if (drained && closed) watch?.stop();
    return drained && closed;
  },

  judge(f) {
    const healed = f.marks.find((m) => m.name === 'healed')?.at ?? Number.POSITIVE_INFINITY;
    const opened = f.marks.find((m) => m.name === MARK_BREAKER_OPEN);
    const peak = peakDepth(f);
    const checks: SlaCheck[] = [
      {
        check: 'breaker opens during the partition',
        verdict: opened !== undefined && opened.at <= healed ? 'PASS' : 'FAIL',
        detail: opened ? `${(opened.at / 1000).toFixed(1)} s after the partition (${opened.detail ?? ''})` : 'never opened',
      },
      { check: 'fallback queue fills during the partition', verdict: peak > 0 ? 'PASS' : 'FAIL', detail: `peak total depth ${peak}` },
      recoveryCheck(f, RECOVERED_AFTER_HEAL_MS, 'queue drained and breaker closed', true),
      {
        check: 'calls keep being answered (events queued on disk)',
        verdict: f.requests.failed_during_fault === 0 ? 'PASS' : 'FAIL',
        detail: `${f.requests.failed_during_fault} failed during the fault`,
      },
      ...eventChecks(f),
    ];
    return checks;
  },
};
