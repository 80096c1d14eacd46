import { parseArgs } from 'node:util';
import { RunError } from '../../ops/load/execute.js';
import { LOAD_OPTIONS } from '../../ops/load/plan.js';
import { buildSoakPlan, executeSoak, SOAK_OPTIONS } from '../../ops/soak/execute.js';
import { type Command, UsageError } from '../command.js';
import { parseCliArgs } from './keys.js';

export const SOAK_USAGE = `Usage:
  kgents soak [--target URL] [--duration 4h] [--vus 10 | --rate N] [--window 60s] [--warmup D]
              [--instances URL,URL] [--mix ...] [--key KEY | --create-keys] [--out DIR] [--json]

A long run at steady load that watches each API instance's memory: it samples /metrics (RSS and heap
used) every few seconds, takes each window's lowest heap used (its floor after collections), fits a
line after the warm-up and judges the growth. Defaults are the seeds' soak: 10 virtual users, the
mixed endpoints, 4 hours, p95 < 200 ms, errors < 0.1 %, memory growth < 10 %. See docs/load-testing.md.

Soak options
  --duration D           4h by default; 24h for the full soak, or minutes for an accelerated one
  --window D             analysis window (default 60s, shorter for short soaks: at least 10 windows)
  --warmup D             windows left out of the memory trend (default 10 % of the duration, >= 1 window)
  --instances URL,...    API instances whose /metrics to sample (default: the target; instances
                         behind one URL are told apart by their 'instance' label)
  --sample-interval D    /metrics sampling period (default window/4, 250ms-5s)
  --max-memory-growth P  the memory limit in percent (default 10)
  --skip-memory          do not judge memory (a deployment whose /metrics is not reachable)
  --threshold EXPR       replaces the default thresholds (k6 syntax, repeatable)

Load options as for 'kgents load' (--rate, --vus, --stages, --mix, --key, --create-keys, --keys,
--tier, --think, --timeout, --workers, --max-in-flight, --late-tolerance, --out, --json, --quiet);
reports go to data/soak/<time>/ (soak.json, report.md, chart.svg).

Exit code: 0 every check passed, 1 a check failed (memory, a threshold, or memory not measured),
2 usage error, 3 invalid run (the generator could not start requests on time).`;

export const soakCommand: Command = {
  name: 'soak',
  summary: 'Soak-test a deployment: steady load for hours, memory trend per instance, latency drift.',
  usage: SOAK_USAGE,
  async run(args) {
    const { values, positionals } = parseCliArgs(() => parseArgs({ args: [...args], options: { ...LOAD_OPTIONS, ...SOAK_OPTIONS }, allowPositionals: true, strict: true }));
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]?.slice(0, 40)}"`);
    const plan = buildSoakPlan(values);
    try {
      return await executeSoak(plan, { out: process.stdout, err: process.stderr });
    } catch (err) {
      if (err instanceof RunError) {
        process.stderr.write(`kgents soak: ${err.message}\n`);
        return 1;
      }
      throw err;
    }
  },
};
