import { eventChecks, recoveryCheck, servingCheck } from '../measure.js';
import { ScenarioUnsupportedError, type Fault, type Scenario } from '../scenario.js';

const FULL_SERVICE_MS = 30_000;

/**
 * kill -9 of one API instance under load (on Kubernetes: force-delete of one API pod). The
 * supervisor (or the Deployment) starts a replacement; the balancer (or the Service) routes around
 * the dead one meanwhile. Full recovery: the slot runs a new process that is back in rotation.
 */
export const apiKill: Scenario = {
  name: 'api-kill',
  summary: 'kill -9 one API instance under load',
  sla: 'full service within 30 s; the other instances keep serving throughout; no usage event lost or duplicated',
  targets: ['stack', 'k8s'],
  recoveryTimeoutMs: 90_000,

  async inject(ctx): Promise<Fault> {
    const t = ctx.target;
    if (t.kind === 'stack') {
      const state = await t.state();
      const part = state.parts.find((p) => p.kind === 'api' && p.process !== null && p.in_rotation !== false);
      if (!part?.process) throw new Error('no running API instance to kill');
      const at = Date.now();
      const sent = await t.control.signal(part.id, 'SIGKILL');
      return { description: `kill -9 ${part.id} (${part.instance_id ?? part.id}, pid ${sent.pid})`, at, details: { part: part.id, pid: sent.pid } };
    }
    if (t.kind === 'k8s') {
      const pods = (await t.kubectl.apiPods()).sort();
      const pod = pods[0];
      if (pod === undefined) throw new Error(`no API pod in namespace ${t.kubectl.layout.apiNamespace}`);
      if (pods.length < 2) throw new Error(`only one API pod (${pod}): killing it is an outage, not this scenario`);
      const at = Date.now();
      await t.kubectl.deletePod(t.kubectl.layout.apiNamespace, pod);
      return { description: `kubectl delete pod ${pod} --grace-period=0 --force`, at, details: { pod, pods: pods.length, pods_before: pods.join(' ') } };
    }
    throw new ScenarioUnsupportedError('api-kill', t.kind);
  },

  async recovered(ctx, fault) {
    const t = ctx.target;
    if (t.kind === 'stack') {
      const part = (await t.state()).parts.find((p) => p.id === fault.details?.part);
      return part?.status === 'running' && part.process !== null && part.process.pid !== fault.details?.pid && part.in_rotation === true;
    }
    if (t.kind === 'k8s') {
      // The Deployment's ready count lags a force-delete, so also require the deleted pod gone and its
      // replacement (a pod that was not there before) listed.
      const before = String(fault.details?.pods_before ?? '').split(' ');
      const pods = await t.kubectl.apiPods();
      if (pods.includes(String(fault.details?.pod)) || !pods.some((p) => !before.includes(p))) return false;
      const { ready, desired } = await t.kubectl.replicas(t.kubectl.layout.apiNamespace, `deployment/${t.kubectl.layout.apiDeployment}`);
      return desired > 0 && ready >= desired;
    }
    return false;
  },

  judge(f) {
    return [
      recoveryCheck(f, FULL_SERVICE_MS, 'full service'),
      // Requests in flight on the killed process may fail (a POST it had read is not retried); nothing else may.
      servingCheck(f, 'the other instances keep serving throughout', f.requests.in_flight_at_fault),
      ...eventChecks(f),
    ];
  },
};
