import { eventChecks, recoveryCheck, servingCheck } from '../measure.js';
import { ScenarioUnsupportedError, type Fault, type Scenario } from '../scenario.js';

const BACK_ON_REDIS_MS = 30_000;

/**
 * Stops Redis for the fault's duration (k8s: scales its StatefulSet to 0), then starts it again.
 * Rate limits, quotas and idempotency fall back to per-instance memory (docs/failure-policy.md), so
 * no request may fail; recovery is every instance back on Redis.
 */
export const redisDown: Scenario = {
  name: 'redis-down',
  summary: 'stop Redis under load, then start it again',
  sla: 'service continues on fallbacks (no failed request); every instance back on Redis within 30 s of its return; no usage event lost or duplicated',
  targets: ['stack', 'k8s'],
  recoveryTimeoutMs: 90_000,
  defaultFaultMs: 15_000,

  async inject(ctx): Promise<Fault> {
    const t = ctx.target;
    const at = Date.now();
    if (t.kind === 'stack') {
      await t.control.stopPart('redis');
      return { description: 'Redis stopped (kgents stack: stopPart redis)', at, details: { part: 'redis' } };
    }
    if (t.kind === 'k8s') {
      await t.kubectl.scale(t.kubectl.layout.agentsNamespace, `statefulset/${t.kubectl.layout.redisStatefulSet}`, 0);
      return { description: `kubectl scale statefulset/${t.kubectl.layout.redisStatefulSet} --replicas=0`, at };
    }
    throw new ScenarioUnsupportedError('redis-down', t.kind);
  },

  async heal(ctx) {
    const t = ctx.target;
    if (t.kind === 'stack') await t.control.startPart('redis');
    else if (t.kind === 'k8s') await t.kubectl.scale(t.kubectl.layout.agentsNamespace, `statefulset/${t.kubectl.layout.redisStatefulSet}`, 1);
  },

  async recovered(ctx) {
    const t = ctx.target;
    if (t.kind === 'stack') {
      const part = (await t.state()).parts.find((p) => p.id === 'redis');
      if (part?.status !== 'running') return false;
    } else if (t.kind === 'k8s') {
      const { ready } = await t.kubectl.replicas(t.kubectl.layout.agentsNamespace, `statefulset/${t.kubectl.layout.redisStatefulSet}`);
      if (ready < 1) return false;
    }
    return ctx.health().every((s) => s.ok && (s.redis_mode === undefined || s.redis_mode === 'redis'));
  },

  judge(f) {
    return [
      servingCheck(f, 'service continues on fallbacks (no failed request)', 0),
      recoveryCheck(f, BACK_ON_REDIS_MS, 'every instance back on Redis', true),
      ...eventChecks(f),
    ];
  },
};
