import type { StackControl } from '../stack/stack.js';
import type { StackState } from '../stack/state.js';
import { RolloutError } from './errors.js';
import { createStackRunKeys, givenKeys, keyAccepted, keysNeeded, runTenant, type RolloutKeys } from './keys.js';
import { failedBetween, type RolloutReport, type RolloutStep, type StackInstanceView } from './report.js';
import { assembleReport, underLoad, WATCH_INTERVAL_MS, type RolloutSettings } from './session.js';

export interface StackRolloutOptions extends RolloutSettings {
  readonly control: StackControl;
  /** Keys given on the command line; otherwise the run makes its own in the stack's key store. */
  readonly keys?: readonly string[];
}

function instances(state: StackState): StackInstanceView[] {
  return state.parts.filter((p) => p.kind === 'api').map((p) => ({
    id: p.id, instance_id: p.instance_id ?? p.id, pid: p.process?.pid ?? null, status: p.status, in_rotation: p.in_rotation ?? null,
  }));
}

/**
 * `kgents rollout` on the local stack: every API slot replaced one after another (a new process
 * ready and in rotation before the old one drains) while steady load runs through the balancer.
 * Stops replacing once more requests have failed than allowed, or when a replacement fails.
 */
export async function runStackRollout(o: StackRolloutOptions): Promise<RolloutReport> {
  const startedAt = new Date();
  const before = await o.control.state();
  if (before.status !== 'running') throw new RolloutError(`the stack in ${before.dir} is ${before.status}, not running`);
  const slots = instances(before);
  if (slots.length === 0) throw new RolloutError('the stack has no API instances');
  const down = slots.filter((s) => s.status !== 'running' || s.pid === null);
  if (down.length > 0) throw new RolloutError(`not every API instance runs (${down.map((s) => `${s.id}: ${s.status}`).join(', ')}); fix the stack first (kgents stack status)`);
  const target = o.target;

  let keys: RolloutKeys;
  const count = keysNeeded(o.rate, o.scenarios);
  if (o.keys && o.keys.length > 0) keys = givenKeys(o.keys);
  else if (count === 0) keys = givenKeys([]);
  else {
    keys = await createStackRunKeys(before.nats_urls, count, runTenant(startedAt));
    o.log(`created ${count} enterprise key${count === 1 ? '' : 's'} in ${keys.location ?? 'the stack'}; revoked after the run`);
  }
  try {
    if (!(await keyAccepted(target, keys))) throw new RolloutError(`the stack at ${target} does not accept the run's key (401 or no answer after 15 s)`);
    const counters = before.balancer;
    const { value, load } = await underLoad(o, keys, slots.length * o.deadlineMs, async (watch) => {
      const steps: Omit<RolloutStep, 'failed'>[] = [];
      const t0 = Date.now();
      for (const slot of slots) {
        if (o.signal?.aborted) {
          o.log(`interrupted: ${slot.id} and later slots are left as they are`);
          break;
        }
        if (watch.failed() > o.maxFailed) {
          o.log(`halting: ${watch.failed()} requests failed (limit ${o.maxFailed}); ${slot.id} and later slots are left as they are`);
          break;
        }
        const at = watch.elapsedS();
        const started = Date.now();
        o.log(`replacing ${slot.id} (${slot.instance_id})`);
        try {
          const r = await withDeadline(o.control.replaceInstance(slot.id), o.deadlineMs, `${slot.id} was not replaced within ${o.deadlineMs / 1000} s`);
          const took = (Date.now() - started) / 1000;
          o.log(`replaced ${slot.id}: ${r.old.instance_id} → ${r.new.instance_id} in ${took.toFixed(1)} s (new one ready after ${(r.ready_ms / 1000).toFixed(1)} s)`);
          steps.push({ id: slot.id, from: r.old.instance_id, to: r.new.instance_id, ok: true, at_s: at, end_s: watch.elapsedS(), took_s: took, ready_s: r.ready_ms / 1000 });
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          o.log(`replacing ${slot.id} failed: ${message}`);
          steps.push({ id: slot.id, from: slot.instance_id, to: null, ok: false, at_s: at, end_s: watch.elapsedS(), took_s: (Date.now() - started) / 1000, error: message });
          break;
        }
      }
      return { steps, tookS: (Date.now() - t0) / 1000 };
    });

    const after = await o.control.state();
    const afterSlots = instances(after);
    const steps: RolloutStep[] = value.steps.map((s) => ({ ...s, at_s: round(s.at_s), end_s: round(s.end_s), took_s: round(s.took_s), failed: failedBetween(load, s.at_s, s.end_s, WATCH_INTERVAL_MS / 1000) }));
    const reasons: string[] = [];
    for (const s of steps.filter((x) => !x.ok)) reasons.push(`${s.id} was not replaced: ${s.error ?? 'unknown error'}`);
    const skipped = slots.filter((s) => !steps.some((x) => x.id === s.id));
    if (skipped.length > 0) reasons.push(`not replaced: ${skipped.map((s) => s.id).join(', ')}`);
    const unhealthy = afterSlots.filter((s) => s.status !== 'running' || s.in_rotation === false);
    if (unhealthy.length > 0) reasons.push(`after the rollout not serving: ${unhealthy.map((s) => `${s.id} (${s.status}${s.in_rotation === false ? ', out of rotation' : ''})`).join(', ')}`);
    if (after.retiring.length > 0) reasons.push(`old processes still draining: ${after.retiring.map((r) => r.instance_id).join(', ')}`);
    const balancer = counters && after.balancer
      ? { requests: after.balancer.requests - counters.requests, retries: after.balancer.retries - counters.retries, failed: after.balancer.failed - counters.failed }
      : null;
    return assembleReport(o, { mode: 'stack', startedAt, keys: keys.keys.length, load, tookS: value.tookS, steps, reasons }, {
      stack: { dir: before.dir, before: slots, after: afterSlots, balancer },
    });
  } finally {
    await keys.revoke().catch((err: unknown) => o.log(`could not revoke the run's keys: ${err instanceof Error ? err.message : String(err)}`));
  }
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}

/** Rejects after `ms`; the operation itself goes on (a replacement cannot be cancelled half-way). */
function withDeadline<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new RolloutError(message)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
