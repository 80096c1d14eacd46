import { parseArgs } from 'node:util';
import { CHAOS_OPTIONS, buildChaosPlan, executeChaos } from '../../ops/chaos/execute.js';
import { SCENARIOS } from '../../ops/chaos/registry.js';
import { KubectlError } from '../../ops/chaos/k8s.js';
import { RunError } from '../../ops/load/execute.js';
import { ControlError } from '../../ops/stack/control.js';
import { PartStateError } from '../../ops/stack/errors.js';
import { StateFileError } from '../../ops/stack/state.js';
import { type Command } from '../command.js';
import { parseCliArgs } from './keys.js';

export const CHAOS_USAGE = `Usage:
  kgents chaos SCENARIO|all [--target stack|k8s|URL] [--duration 60s] [--out DIR] [--json]

Runs steady metered load (POST /v1/agentese/invoke), injects a fault, and reports the time to
detect, the time to full recovery, failed requests, usage events lost and duplicated (every 2xx
answer compared with the USAGE stream) and pass/fail against the scenario's SLA. See
docs/chaos-baseline.md.

Scenarios
${SCENARIOS.map((s) => `  ${s.name.padEnd(20)} ${s.summary}\n  ${''.padEnd(20)} SLA: ${s.sla}`).join('\n')}
  all                  every scenario that supports the target, one after another

Target
  --target stack       the local stack (default; --dir DIR, default .stack): kgents stack up first
  --target k8s         a cluster via kubectl (--context C, --kubectl BIN); needs --url URL (the API's
                       public URL or a port-forward) and --nats URL (a port-forward) for the event audit
  --target URL         any deployment over HTTP (only scenarios that need no fault access)
  --nats URL,...       NATS servers whose USAGE is audited (default: the stack's)
  --key KEY            API key to use (repeatable); default: a fresh tenant with two enterprise keys

Run
  --duration D         minimum load time (default 60s); the run goes on until full recovery + 5 s
  --warmup D           load before the fault (default 20 % of the duration, 2-10 s)
  --fault D            how long a stopped part stays stopped (redis-down; default 15 s)
  --rate N             invokes per second (default 40); --concurrency N connections (default 8)
  --recovery-timeout D give up waiting for recovery after D (default per scenario)
  --settle D           wait up to D for the last events to reach USAGE (default 90s)
  --idempotency-keys   send each request id as Idempotency-Key too
  --out DIR            reports (default data/chaos/<time>/): <scenario>.json and .md
  --json               print the results as JSON

Exit code: 0 every scenario passed its SLA (with all: scenarios the deployment cannot run are
SKIPPED), 1 a check failed or could not be measured, 2 usage error.`;

export const chaosCommand: Command = {
  name: 'chaos',
  summary: 'Chaos scenarios under load with measured detection, recovery and usage-event loss.',
  usage: CHAOS_USAGE,
  async run(args) {
    const { values, positionals } = parseCliArgs(() => parseArgs({ args: [...args], options: CHAOS_OPTIONS, allowPositionals: true, strict: true }));
    const plan = buildChaosPlan(positionals, values);
    try {
      return await executeChaos(plan, { out: process.stdout, err: process.stderr });
    } catch (err) {
      if (err instanceof RunError || err instanceof PartStateError || err instanceof StateFileError || err instanceof ControlError || err instanceof KubectlError) {
        process.stderr.write(`kgents chaos: ${err.message}\n`);
        return 1;
      }
      throw err;
    }
  },
};
