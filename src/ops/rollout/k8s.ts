import { setTimeout as sleep } from 'node:timers/promises';
import { httpGet } from '../load/target.js';
import { RolloutError } from './errors.js';
import { createConfiguredRunKeys, givenKeys, keyAccepted, keysNeeded, runTenant, type RolloutKeys } from './keys.js';
import { runKubectl, startKubectl, kubectlArgs, type KubeTarget, type KubectlRun } from './kubectl.js';
import { failedBetween, type K8sSection, type KubectlCall, type RolloutReport, type RolloutStep } from './report.js';
import { assembleReport, underLoad, WATCH_INTERVAL_MS, type RolloutSettings } from './session.js';
import type { LoadWatch } from './watch.js';

export interface K8sRolloutOptions extends RolloutSettings {
  readonly kube: KubeTarget;
  /** `kubectl set image` instead of `rollout restart`. */
  readonly image?: string;
  readonly container: string;
  /** Given keys, or `create` (in the key store NATS_URLS points at), or none for a mix without authenticated scenarios. */
  readonly keys: { readonly kind: 'given'; readonly keys: readonly string[] } | { readonly kind: 'create' } | { readonly kind: 'none' };
}

const SHORT_CALL_MS = 60_000;

type Outcome = K8sSection['outcome'];

interface Watched {
  outcome: Outcome;
  /** The last line kubectl printed (why it failed). */
  detail: string;
  revisionAfter: string | null;
  undo: K8sSection['undo'];
  steps: Omit<RolloutStep, 'failed'>[];
  tookS: number;
}

async function revisionOf(o: K8sRolloutOptions, calls: KubectlCall[]): Promise<{ run: KubectlRun; revision: string | null }> {
  const run = await runKubectl(o.kube.kubectl, kubectlArgs.revision(o.kube), SHORT_CALL_MS);
  calls.push(run.call);
  const revision = run.call.exit_code === 0 && /^\d+$/.test(run.stdout.trim()) ? run.stdout.trim() : null;
  return { run, revision };
}

/**
 * Waits for `kubectl rollout status` with a deadline, while watching the load: more failed requests
 * than allowed ends the wait at once (the rollout is then undone by the caller).
 */
async function watchStatus(o: K8sRolloutOptions, watch: LoadWatch, calls: KubectlCall[], progress: { t_s: number; line: string }[], abortOnFailures: boolean): Promise<{ outcome: Exclude<Outcome, 'not-started'>; detail: string }> {
  const deadlineS = o.deadlineMs / 1000;
  const status = startKubectl(o.kube.kubectl, kubectlArgs.status(o.kube, deadlineS), {
    // kubectl's own --timeout normally ends it; this is for an API server that stops answering.
    timeoutMs: o.deadlineMs + 15_000,
    onLine: (line) => {
      progress.push({ t_s: Math.round(watch.elapsedS() * 10) / 10, line });
      o.log(`kubectl: ${line}`);
    },
  });
  let finished: KubectlRun | undefined;
  void status.done.then((r) => {
    finished = r;
  });
  let tooManyFailures = false;
  let interrupted = false;
  while (!finished) {
    if (!interrupted && o.signal?.aborted) {
      interrupted = true;
      status.kill();
    }
    if (abortOnFailures && !tooManyFailures && watch.failed() > o.maxFailed) {
      tooManyFailures = true;
      o.log(`${watch.failed()} requests failed (limit ${o.maxFailed}): stopping the watch`);
      status.kill();
    }
    await Promise.race([status.done, sleep(100)]);
  }
  calls.push(finished.call);
  const detail = finished.call.output.split('\n').slice(-1)[0] ?? '';
  if (tooManyFailures) return { outcome: 'failed-requests', detail: `${watch.failed()} requests failed` };
  // A terminal's Ctrl-C reaches kubectl too, which may then exit before this loop saw the signal.
  if (interrupted || o.signal?.aborted) return { outcome: 'interrupted', detail: 'the watch was interrupted' };
  if (finished.call.exit_code === 0) return { outcome: 'complete', detail };
  // Our own --timeout (kubectl: "timed out waiting for the condition") or the kill behind it; anything
  // else, such as the Deployment's progressDeadlineSeconds, is the cluster saying the rollout failed.
  return { outcome: finished.call.signal !== null || /timed out waiting/i.test(finished.call.output) ? 'deadline' : 'status-failed', detail };
}

/**
 * `kgents rollout --k8s`: `kubectl rollout restart` (or `set image`), `kubectl rollout status` with a
 * deadline while steady load runs against --target; when the status fails or times out, or more
 * requests fail than allowed, `kubectl rollout undo` (to the revision recorded before) and its status.
 */
export async function runK8sRollout(o: K8sRolloutOptions): Promise<RolloutReport> {
  const startedAt = new Date();
  const pre = await httpGet(`${o.target}/health`, { timeoutMs: 5000, maxBytes: 64 * 1024 });
  if (!pre.ok) throw new RolloutError(`the target ${o.target} does not answer (${pre.error ?? 'no response'})`);
  const calls: KubectlCall[] = [];
  const before = await revisionOf(o, calls);
  if (before.run.call.exit_code !== 0) {
    throw new RolloutError(`kubectl cannot read deployment/${o.kube.deployment} in ${o.kube.namespace}: ${before.run.call.output.split('\n').slice(-2).join(' ') || `exit ${before.run.call.exit_code}`}`);
  }

  let keys: RolloutKeys;
  if (o.keys.kind === 'given') keys = givenKeys(o.keys.keys);
  else if (o.keys.kind === 'none') keys = givenKeys([]);
  else {
    const count = Math.max(1, keysNeeded(o.rate, o.scenarios));
    keys = await createConfiguredRunKeys(count, runTenant(startedAt), (line) => o.log(line));
    o.log(`created ${count} enterprise key${count === 1 ? '' : 's'} in ${keys.location ?? '?'}; revoked after the run`);
  }
  try {
    if (!(await keyAccepted(o.target, keys))) throw new RolloutError(`the target ${o.target} does not accept the run's key (401 or no answer after 15 s)`);
    const progress: { t_s: number; line: string }[] = [];
    const { value, load } = await underLoad(o, keys, 2 * o.deadlineMs + 2 * SHORT_CALL_MS, async (watch): Promise<Watched> => {
      const t0 = Date.now();
      const at = watch.elapsedS();
      const action = o.image ? kubectlArgs.setImage(o.kube, o.container, o.image) : kubectlArgs.restart(o.kube);
      o.log(`kubectl ${action.join(' ')}`);
      const started = await runKubectl(o.kube.kubectl, action, SHORT_CALL_MS);
      calls.push(started.call);
      const from = before.revision ? `revision ${before.revision}` : null;
      if (started.call.exit_code !== 0) {
        o.log(`kubectl failed (${started.call.exit_code ?? started.call.signal}): ${started.call.output}`);
        return {
          outcome: 'not-started', detail: started.call.output.split('\n').slice(-1)[0] ?? '', revisionAfter: null, undo: null, tookS: (Date.now() - t0) / 1000,
          steps: [{ id: 'rollout', from, to: null, ok: false, at_s: at, end_s: watch.elapsedS(), took_s: (Date.now() - t0) / 1000, error: started.call.output.split('\n').slice(-1)[0] ?? 'kubectl failed' }],
        };
      }
      const { outcome, detail } = await watchStatus(o, watch, calls, progress, true);
      const tookS = (Date.now() - t0) / 1000;
      const after = await revisionOf(o, calls);
      const steps: Omit<RolloutStep, 'failed'>[] = [{
        id: 'rollout', from, to: after.revision ? `revision ${after.revision}` : null, ok: outcome === 'complete',
        at_s: at, end_s: watch.elapsedS(), took_s: tookS, ...(outcome !== 'complete' && { error: `${outcome}: ${detail}` }),
      }];
      let undo: K8sSection['undo'] = null;
      // An operator's Ctrl-C stops the watch, not the rollout: undoing is their call.
      if (outcome !== 'complete' && outcome !== 'interrupted') {
        watch.mark('undo');
        const u0 = Date.now();
        const uAt = watch.elapsedS();
        o.log(`rollout ${outcome}: undoing${before.revision ? ` to revision ${before.revision}` : ''}`);
        const undone = await runKubectl(o.kube.kubectl, kubectlArgs.undo(o.kube, before.revision ?? undefined), SHORT_CALL_MS);
        calls.push(undone.call);
        const statusOk = undone.call.exit_code === 0 && (await watchStatus(o, watch, calls, progress, false)).outcome === 'complete';
        const back = await revisionOf(o, calls);
        undo = { ok: undone.call.exit_code === 0, status_ok: statusOk, took_s: Math.round(Date.now() - u0) / 1000, to_revision: before.revision };
        steps.push({
          id: 'undo', from: after.revision ? `revision ${after.revision}` : null, to: back.revision ? `revision ${back.revision}` : null,
          ok: undo.ok && statusOk, at_s: uAt, end_s: watch.elapsedS(), took_s: (Date.now() - u0) / 1000,
          ...(!(undo.ok && statusOk) && { error: undo.ok ? 'the undo did not finish (rollout status)' : undone.call.output.split('\n').slice(-1)[0] ?? 'kubectl rollout undo failed' }),
        });
      }
      return { outcome, detail, revisionAfter: after.revision, undo, steps, tookS };
    });

    const steps: RolloutStep[] = value.steps.map((s) => ({
      ...s, at_s: round(s.at_s), end_s: round(s.end_s), took_s: round(s.took_s), failed: failedBetween(load, s.at_s, s.end_s, WATCH_INTERVAL_MS / 1000),
    }));
    const reasons: string[] = [];
    const outcomes: Record<Outcome, string> = {
      complete: '', 'not-started': `kubectl could not start the rollout (${value.detail})`, 'status-failed': `kubectl rollout status failed (${value.detail})`,
      deadline: `the rollout did not finish within ${o.deadlineMs / 1000} s`, 'failed-requests': 'too many requests failed during the rollout',
      interrupted: 'the watch was interrupted while the rollout ran: check it with kubectl rollout status',
    };
    if (value.outcome !== 'complete') reasons.push(`${outcomes[value.outcome]}${value.undo ? (value.undo.ok && value.undo.status_ok ? '; rolled back' : '; the undo FAILED: check the deployment by hand') : ''}`);
    return assembleReport(o, { mode: 'k8s', startedAt, keys: keys.keys.length, load, tookS: value.tookS, steps, reasons }, {
      k8s: {
        context: o.kube.context ?? null, namespace: o.kube.namespace, deployment: o.kube.deployment,
        action: o.image ? 'set-image' : 'restart', image: o.image ?? null, revision_before: before.revision,
        outcome: value.outcome, undo: value.undo, progress, commands: calls,
      },
    });
  } finally {
    await keys.revoke().catch((err: unknown) => o.log(`could not revoke the run's keys: ${err instanceof Error ? err.message : String(err)}`));
  }
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}
