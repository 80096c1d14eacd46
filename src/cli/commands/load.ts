import { parseArgs } from 'node:util';
import { executeLoad, RunError } from '../../ops/load/execute.js';
import { buildPlan, LOAD_DEFAULTS, LOAD_OPTIONS } from '../../ops/load/plan.js';
import { type Command, UsageError } from '../command.js';
import { parseCliArgs } from './keys.js';

export const LOAD_USAGE = `Usage:
  kgents load [--target URL] [--rate N | --vus N] [--duration 60s | --stages 30s:100,60s:100,10s:0]
              [--mix health=1,resolve=3,invoke=6] [--key KEY ... | --create-keys [--keys N] [--tier T]]
              [--threshold 'http_req_duration: p(95)<200' ...] [--out DIR] [--json]

Sends load to a kgents deployment and measures it. Latency runs from each request's scheduled start
(open model), so a slow server cannot hide its queueing; see docs/load-testing.md.

Target
  --target URL        base URL (default: the url in ./.stack/stack.json, the local stack)

Model (default: open model, 100 requests/s for 60 s)
  --rate N            open model: N requests per second whatever the answers take
  --vus N             closed model: N virtual users, each sending when its previous answer came
  --duration D        length at a constant level (500ms, 30s, 5m, 4h)
  --stages LIST       ramp: DURATION:TARGET,... from --rate/--vus (or 0) linearly to each target
  --max-in-flight N   open model: concurrency cap (default: one second's worth at the peak rate,
                      100-10000); a request due while the cap is reached waits and starts late
  --think D           closed model: pause between a VU's answer and its next request (default 0)
  --timeout D         per-request deadline (default 30s)
  --workers N         generator threads (default: about one per 4000 requests/s, CPUs - 1 at most)
  --late-tolerance F  share of requests allowed to start > 10 ms late before the run is invalid (default 0.01)

Requests
  --mix LIST          scenarios and weights (default ${LOAD_DEFAULTS.mix}); names: health
                      (GET /health/saas), resolve (GET /v1/agentese/resolve), invoke (POST
                      /v1/agentese/invoke), or a path such as /health for a plain GET
  --key KEY           API key for resolve/invoke (repeat or comma-separate to rotate several)
  --create-keys       create a tenant and keys for the run in the configured key store (NATS_URLS;
                      without it and --target, the local stack's NATS), revoked afterwards; --keys N how many (default: one per 50 authenticated
                      requests/s, or 8 per VU), --tier T their tier (default enterprise, whose rate
                      limit of 6000/min per key stays out of the way)

Results
  --threshold EXPR    k6 syntax, repeatable: 'http_req_duration: p(95)<200',
                      'http_req_failed: rate<0.001', 'http_reqs: rate>90',
                      'http_req_duration{scenario:invoke}: p(99)<500, avg<100'
  --out DIR           where summary.json and report.md go (default data/load/<time>)
  --json              print the JSON summary on stdout instead of the table
  --quiet             no progress line

Exit code: 0 thresholds held on a valid run, 1 a threshold failed (or the target is unreachable),
2 usage error, 3 invalid run (the generator could not start requests on time).`;

export const loadCommand: Command = {
  name: 'load',
  summary: 'Load-test a deployment (open or closed model, thresholds, JSON and Markdown reports).',
  usage: LOAD_USAGE,
  async run(args) {
    const { values, positionals } = parseCliArgs(() => parseArgs({ args: [...args], options: LOAD_OPTIONS, allowPositionals: true, strict: true }));
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]?.slice(0, 40)}"`);
    const plan = buildPlan(values, LOAD_DEFAULTS);
    try {
      return await executeLoad(plan, { out: process.stdout, err: process.stderr });
    } catch (err) {
      if (err instanceof RunError) {
        process.stderr.write(`kgents load: ${err.message}\n`);
        return 1;
      }
      throw err;
    }
  },
};
