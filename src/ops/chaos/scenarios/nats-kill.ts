import { httpGet } from '../../load/target.js';
import { eventChecks, recoveryCheck } from '../measure.js';
import { clusterView, parseJsz, pickView, type JszView, type MonitorNode } from '../nats-leader.js';
import { ScenarioUnsupportedError, type ChaosContext, type Fault, type Scenario, type SlaCheck, type ScenarioFigures } from '../scenario.js';

const PUBLISH_RESUMED_MS = 60_000;
const PUBLISHING_RESUMED = 'publishing_resumed';

type Which = 'stream' | 'meta';

function stackNodes(ctx: ChaosContext): Promise<MonitorNode[]> {
  const t = ctx.target;
  if (t.kind !== 'stack') return Promise.resolve([]);
  return t.state().then((s) => s.parts.filter((p) => p.kind === 'nats').map((p) => ({ id: p.id, monitorUrl: `http://127.0.0.1:${p.ports.monitor ?? 0}` })));
}

/** The cluster as one surviving node sees it; on Kubernetes through kubectl exec (server names are pod names). */
async function view(ctx: ChaosContext, exclude: readonly string[]): Promise<{ view: JszView | undefined; names: Map<string, string> }> {
  const t = ctx.target;
  if (t.kind === 'stack') return clusterView(await stackNodes(ctx), exclude);
  if (t.kind === 'k8s') {
    const pods = (await t.kubectl.natsPods()).sort();
    const names = new Map(pods.map((p) => [p, p]));
    const views: JszView[] = [];
    for (const pod of pods.filter((p) => !exclude.includes(p))) {
      try {
        views.push({ ...parseJsz(await t.kubectl.natsMonitor(pod, '/jsz?streams=true')), server: pod });
      } catch {
        // that pod is not answering (yet): ask the next
      }
    }
    const found = pickView(views);
    return { view: found, names };
  }
  throw new ScenarioUnsupportedError('nats-kill', t.kind);
}

/** Every node answers /healthz (stack) or the StatefulSet is fully ready (k8s). */
async function allNodesHealthy(ctx: ChaosContext): Promise<boolean> {
  const t = ctx.target;
  if (t.kind === 'stack') {
    const nodes = await stackNodes(ctx);
    const answers = await Promise.all(nodes.map((n) => httpGet(`${n.monitorUrl}/healthz`, { timeoutMs: 2000 })));
    return answers.every((a) => a.ok && a.status === 200);
  }
  if (t.kind === 'k8s') {
    const { ready, desired } = await t.kubectl.replicas(t.kubectl.layout.agentsNamespace, `statefulset/${t.kubectl.layout.natsStatefulSet}`);
    return desired > 0 && ready >= desired;
  }
  return false;
}

/** Whether the killed server runs again as a new process (stack) or a new pod (k8s: same name, new uid). */
async function killedReplaced(ctx: ChaosContext, fault: Fault): Promise<boolean> {
  const t = ctx.target;
  const killed = String(fault.details?.part ?? '');
  if (t.kind === 'stack') {
    const part = (await t.state()).parts.find((p) => p.id === killed);
    return part?.status === 'running' && part.process !== null && part.process.pid !== fault.details?.pid;
  }
  if (t.kind === 'k8s') {
    const uid = await t.kubectl.podUid(t.kubectl.layout.agentsNamespace, killed);
    return uid !== undefined && uid !== fault.details?.uid;
  }
  return false;
}

/**
 * Kills the USAGE stream leader (`stream`) or the JetStream meta leader (`meta`) of the 3-node
 * cluster with kill -9 (k8s: force-deletes its pod). The API keeps answering: publishes that fail
 * or time out go to each instance's fallback queue and are drained once a new leader is elected.
 */
function natsKillScenario(which: Which): Scenario {
  const name = which === 'stream' ? 'nats-kill' : 'nats-kill-meta';
  const resumed = new WeakMap<Fault, boolean>();
  const elected = new WeakMap<Fault, boolean>();
  const metaElected = new WeakMap<Fault, boolean>();
  return {
    name,
    summary: which === 'stream' ? 'kill -9 the USAGE stream leader of the NATS cluster under load' : 'kill -9 the JetStream meta leader of the NATS cluster under load',
    sla: 'publishing resumes within 60 s; zero usage events lost, zero duplicated',
    targets: ['stack', 'k8s'],
    recoveryTimeoutMs: 120_000,

    async inject(ctx): Promise<Fault> {
      const t = ctx.target;
      const { view: v, names } = await view(ctx, []);
      const leader = which === 'stream' ? v?.streamLeader : v?.metaLeader;
      if (!v || !leader) throw new Error(`no ${which === 'stream' ? 'USAGE stream' : 'meta'} leader found (is the cluster healthy?)`);
      const details = { leader, stream_leader: v.streamLeader, meta_leader: v.metaLeader, last_seq: v.lastSeq };
      if (t.kind === 'stack') {
        const part = names.get(leader);
        if (!part) throw new Error(`leader ${leader} is not one of the stack's NATS nodes`);
        const at = Date.now();
        const sent = await t.control.signal(part, 'SIGKILL');
        return { description: `kill -9 ${part} (server ${leader}, pid ${sent.pid}), the ${which === 'stream' ? 'USAGE stream' : 'meta'} leader`, at, details: { ...details, part, pid: sent.pid } };
      }
      if (t.kind === 'k8s') {
        const uid = await t.kubectl.podUid(t.kubectl.layout.agentsNamespace, leader);
        const at = Date.now();
        await t.kubectl.deletePod(t.kubectl.layout.agentsNamespace, leader);
        return { description: `kubectl delete pod ${leader} --grace-period=0 --force (the ${which === 'stream' ? 'USAGE stream' : 'meta'} leader)`, at, details: { ...details, part: leader, uid: uid ?? null } };
      }
      throw new ScenarioUnsupportedError(name, t.kind);
    },

    async recovered(ctx, fault) {
      const killed = String(fault.details?.part ?? '');
      const killedServer = String(fault.details?.leader ?? '');
      // The supervisor (or the StatefulSet) restarts the killed server, often within a second, and
      // it may well lead again: a leader with the killed server's name counts once it is a new process.
      const replaced = await killedReplaced(ctx, fault);
      const { view: v } = await view(ctx, replaced ? [] : [killed]);
      const live = (leader: string | null | undefined): leader is string => typeof leader === 'string' && (leader !== killedServer || replaced);
      const note = (leader: string): string => (leader === killedServer ? ' (the restarted server)' : '');
      if (!elected.get(fault) && live(v?.streamLeader)) {
        elected.set(fault, true);
        ctx.mark('stream_leader', `USAGE led by ${v.streamLeader}${note(v.streamLeader)}`);
      }
      if (which === 'meta' && !metaElected.get(fault) && live(v?.metaLeader)) {
        metaElected.set(fault, true);
        ctx.mark('meta_leader', `meta leader ${v.metaLeader}${note(v.metaLeader)}`);
      }
      // Publishing resumed: a live stream leader, the stream growing again, and every API instance
      // publishing to it (circuit closed), not only draining a batch while half-open.
      const health = ctx.health();
      const circuitsClosed = health.some((h) => h.circuit !== undefined) && health.every((h) => h.circuit === undefined || h.circuit === 'closed');
      if (!resumed.get(fault) && live(v?.streamLeader) && v.lastSeq !== null && v.lastSeq > Number(fault.details?.last_seq ?? 0) && circuitsClosed) {
        resumed.set(fault, true);
        ctx.mark(PUBLISHING_RESUMED, `USAGE leader ${v.streamLeader}, last_seq ${v.lastSeq}`);
      }
      // Full recovery: the killed node back (new process), every node healthy, every replica current
      // (as the leader sees them), every API instance's circuit closed with an empty fallback queue.
      if (!resumed.get(fault) || !replaced || !(await allNodesHealthy(ctx))) return false;
      if (!v?.streamLeader || v.replicas.length === 0 || !v.replicas.every((r) => r.current)) return false;
      return health.every((h) => h.ok && (h.queue_depth ?? 0) === 0);
    },

    judge(f: ScenarioFigures): SlaCheck[] {
      const mark = f.marks.find((m) => m.name === PUBLISHING_RESUMED);
      return [
        {
          check: `publishing resumes within ${PUBLISH_RESUMED_MS / 1000} s`,
          verdict: mark && mark.at <= PUBLISH_RESUMED_MS ? 'PASS' : 'FAIL',
          detail: mark ? `${(mark.at / 1000).toFixed(1)} s (${mark.detail ?? ''})` : 'never seen',
        },
        recoveryCheck(f, 120_000, 'full recovery (node back, replicas current, circuits closed, queues empty)'),
        { check: 'no request failed', verdict: f.requests.failed_during_fault === 0 ? 'PASS' : 'FAIL', detail: `${f.requests.failed_during_fault} failed during the fault` },
        ...eventChecks(f),
      ];
    },
  };
}

export const natsKill = natsKillScenario('stream');
export const natsKillMeta = natsKillScenario('meta');
