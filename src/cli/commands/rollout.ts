import { parseArgs } from 'node:util';
import { interruptOnSignals, RunError } from '../../ops/load/execute.js';
import { RolloutError } from '../../ops/rollout/errors.js';
import { buildRolloutPlan, executeRollout, ROLLOUT_DEFAULTS, ROLLOUT_OPTIONS } from '../../ops/rollout/execute.js';
import { ControlError } from '../../ops/stack/control.js';
import { type Command, UsageError } from '../command.js';
import { parseCliArgs } from './keys.js';

export const ROLLOUT_USAGE = `Usage:
  kgents rollout [--dir DIR] [--load-rate N] [--settle D[,D]] [--max-failed N] [--timeout D]
                 [--mix M] [--key KEY] [--out DIR] [--json] [--quiet]
  kgents rollout --k8s --target URL [--namespace NS] [--deployment NAME] [--context CTX]
                 [--image IMAGE [--container NAME]] [--timeout D] [--kubectl PATH]
                 [--load-rate N] [--settle D[,D]] [--max-failed N] [--mix M] [--key KEY | --create-keys]
                 [--out DIR] [--json] [--quiet]

A rolling restart checked under load. Steady open-model load (default ${ROLLOUT_DEFAULTS.loadRate} req/s of the mixed
endpoints, authenticated invoke included) runs through the rollout; the report gives failed
requests (target 0) by status and code, the time per instance and in total, and p95/p99 during
the rollout against the settle period before it. See docs/runbook.md, "Rolling restart and rollback".

Local stack (default): the stack in DIR (default ./${ROLLOUT_DEFAULTS.dir}, from 'kgents stack up'). Each API
instance is replaced in turn: the new process is ready and in rotation before the old one drains.
The run makes its own keys in the stack's key store and revokes them afterwards. Replacing stops
early once more requests failed than --max-failed.

Kubernetes (--k8s): 'kubectl rollout restart' (or 'kubectl set image' with --image), then
'kubectl rollout status' with a deadline while the load runs against --target. When the status
fails or times out, or more requests fail than --max-failed, it runs 'kubectl rollout undo' to the
revision recorded before and waits for that too.

Options
  --dir DIR            the local stack's directory (default ./${ROLLOUT_DEFAULTS.dir})
  --load-rate N        requests per second during the whole run (default ${ROLLOUT_DEFAULTS.loadRate})
  --settle D[,D]       load before and after the rollout (default ${ROLLOUT_DEFAULTS.settleMs / 1000}s; "5s,20s": 5 before, 20 after)
  --max-failed N       failed requests that still pass (default 0)
  --timeout D          deadline: per instance on the stack (default ${ROLLOUT_DEFAULTS.stackDeadlineMs / 1000}s), for
                       'rollout status' with --k8s (default ${ROLLOUT_DEFAULTS.k8sDeadlineMs / 60_000}m)
  --mix M              scenarios as for 'kgents load' (default health=1,resolve=3,invoke=6)
  --key KEY            API key(s) for the authenticated scenarios instead of made ones
  --create-keys        (--k8s) make keys in the key store NATS_URLS points at
  --workers N          load generator threads (default 1)
  --target URL         (--k8s) where the load goes: the gateway or a port-forward
  --namespace NS       (--k8s) default ${ROLLOUT_DEFAULTS.namespace}
  --deployment NAME    (--k8s) default ${ROLLOUT_DEFAULTS.deployment}
  --context CTX        (--k8s) kubeconfig context (default: the current one)
  --image IMAGE        (--k8s) roll to this image with 'kubectl set image' (container --container, default ${ROLLOUT_DEFAULTS.container})
  --kubectl PATH       (--k8s) the kubectl binary (default: kubectl on PATH)
  --out DIR            reports (rollout.json, report.md); default data/rollout/<time>/
  --json               print the JSON report instead of the summary
  --quiet              no progress lines

Exit code: 0 the rollout finished with no more failed requests than allowed; 1 it did not (or could
not start; with --k8s it was undone); 2 usage error.`;

export const rolloutCommand: Command = {
  name: 'rollout',
  summary: 'Rolling restart under load: local stack instance by instance, or kubectl rollout (--k8s) with undo on failure.',
  usage: ROLLOUT_USAGE,
  async run(args) {
    const { values, positionals } = parseCliArgs(() => parseArgs({ args: [...args], options: ROLLOUT_OPTIONS, allowPositionals: true, strict: true }));
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]?.slice(0, 40)}"`);
    const plan = buildRolloutPlan(values);
    const c = { out: process.stdout, err: process.stderr };
    const signals = interruptOnSignals(c);
    try {
      const { exitCode } = await executeRollout(plan, c, { signal: signals.signal });
      return exitCode;
    } catch (err) {
      if (err instanceof RolloutError || err instanceof RunError || err instanceof ControlError) {
        process.stderr.write(`kgents rollout: ${err.message}\n`);
        return 1;
      }
      throw err;
    } finally {
      signals.dispose();
    }
  },
};
