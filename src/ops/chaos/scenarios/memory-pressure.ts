import { setTimeout as sleep } from 'node:timers/promises';
import { eventChecks, recoveryCheck } from '../measure.js';
import { MemoryPressureDriver } from '../memory-driver.js';
import { ScenarioUnsupportedError, type ChaosContext, type Fault, type Mark, type Scenario, type SlaCheck, type StackTarget } from '../scenario.js';

const BACK_AFTER_DEATH_MS = 45_000;
const READY_AGAIN_MS = 60_000;
const CONCURRENCY = 16;
/** Above this the instance would need gigabytes of pressure: the stack was not started for this scenario. */
const MAX_HEAP_LIMIT_BYTES = 1024 * 1024 * 1024;
export const MEMORY_PRESSURE_SETUP = 'start the stack with KGENTS_API_NODE_OPTIONS=--max-old-space-size=96 TEST_RETAIN_BYTES_PER_REQUEST=50000 TEST_RETAIN_MS=30000 and run with --rate 10 (docs/runbook.md, memory-pressure)';

interface Run {
  readonly driver: MemoryPressureDriver;
  readonly part: string;
  readonly pid: number;
  readonly url: string;
  died: boolean;
  back: boolean;
  watching: boolean;
}

const runs = new WeakMap<Fault, Run>();

async function metricValue(url: string, name: string): Promise<number | undefined> {
  const res = await fetch(new URL('/metrics', url), { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** Marks `died` when the slot's process changes or stops, `back` when a new process is in rotation. */
async function watch(ctx: ChaosContext, t: StackTarget, run: Run): Promise<void> {
  while (run.watching && !ctx.signal.aborted) {
    const part = (await t.state().catch(() => undefined))?.parts.find((p) => p.id === run.part);
    if (part) {
      const pid = part.process?.pid ?? null;
      if (!run.died && (pid !== run.pid || part.status !== 'running')) {
        run.died = true;
        ctx.mark('died', `${run.part} (pid ${run.pid}) exited${part.last_exit ? ` (${part.last_exit.signal ?? `code ${String(part.last_exit.code)}`})` : ''}; the supervisor restarts it`);
      }
      if (run.died && !run.back && pid !== null && pid !== run.pid && part.status === 'running' && part.in_rotation === true) {
        run.back = true;
        ctx.mark('back', `${run.part} runs again as pid ${pid} and is in rotation`);
      }
    }
    await sleep(250);
  }
}

function find(marks: readonly Mark[], name: string): Mark | undefined {
  return marks.find((m) => m.name === name);
}

function s(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Drives one API instance toward its heap limit with concurrent requests sent straight to it, while
 * the steady load goes through the balancer. It must shed (503 ERR_OVERLOADED with Retry-After, /ready
 * 503 so the balancer moves traffic away) before it dies; if it dies anyway, the supervisor has it
 * back within 45 s. The instances need a small heap and the test-only retention knob (see
 * MEMORY_PRESSURE_SETUP): ordinary requests would need far more load than one machine can send.
 */
export const memoryPressure: Scenario = {
  name: 'memory-pressure',
  summary: 'drive one API instance toward its heap limit with concurrent requests',
  sla: 'sheds load with 503 and Retry-After before it dies; if it dies, back within 45 s; ready again within 60 s of the pressure ending; no usage event lost or duplicated',
  targets: ['stack'],
  recoveryTimeoutMs: 120_000,
  defaultFaultMs: 15_000,

  async inject(ctx): Promise<Fault> {
    const t = ctx.target;
    if (t.kind !== 'stack') throw new ScenarioUnsupportedError('memory-pressure', t.kind, 'it needs an instance it can reach directly and a small heap limit');
    const part = (await t.state()).parts.find((p) => p.kind === 'api' && p.process !== null && p.in_rotation !== false);
    if (!part?.process) throw new Error('no running API instance to put under pressure');
    const limit = await metricValue(part.url, 'kgents_heap_limit_bytes');
    if (limit === undefined) throw new Error(`${part.id} does not export kgents_heap_limit_bytes: LOAD_SHEDDING=off or an older version`);
    if (limit > MAX_HEAP_LIMIT_BYTES) throw new Error(`${part.id} may grow its heap to ${Math.round(limit / 1048576)} MiB: ${MEMORY_PRESSURE_SETUP}`);
    const driver = new MemoryPressureDriver(part.url, CONCURRENCY, (tally) => {
      const detail = `first 503 ERR_OVERLOADED from ${part.id} (reason ${tally.firstShedReason ?? '?'}, Retry-After ${tally.firstShedRetryAfter ?? 'missing'})`;
      ctx.mark('shedding', detail);
      ctx.mark('detected', detail);
    });
    const at = Date.now();
    driver.start();
    const run: Run = { driver, part: part.id, pid: part.process.pid, url: part.url, died: false, back: false, watching: true };
    const fault: Fault = {
      description: `${CONCURRENCY} concurrent requests straight at ${part.id} (${part.url}), heap limit ${Math.round(limit / 1048576)} MiB`,
      at, details: { part: part.id, pid: part.process.pid, url: part.url, heap_limit_mb: Math.round(limit / 1048576) },
    };
    runs.set(fault, run);
    void watch(ctx, t, run);
    return fault;
  },

  async heal(ctx, fault) {
    const run = runs.get(fault);
    if (!run) return;
    const tally = await run.driver.stop();
    ctx.mark('pressure_stopped', `${tally.requests} requests answered: ${tally.shed} shed with 503 ERR_OVERLOADED (${tally.shedWithRetryAfter} with Retry-After), statuses ${JSON.stringify(tally.statuses)}; ${tally.connectionErrors} connection errors`);
  },

  async recovered(ctx, fault) {
    const run = runs.get(fault);
    const t = ctx.target;
    if (!run || t.kind !== 'stack') return false;
    const part = (await t.state()).parts.find((p) => p.id === run.part);
    if (part?.status !== 'running' || part.in_rotation !== true || part.process === null) return false;
    if (run.died && !run.back) return false;
    const ready = await fetch(new URL('/ready', part.url), { signal: AbortSignal.timeout(2000) }).then((r) => r.status === 200, () => false);
    if (ready) run.watching = false;
    return ready;
  },

  judge(f) {
    const shed = find(f.marks, 'shedding');
    const died = find(f.marks, 'died');
    const back = find(f.marks, 'back');
    const shedFirst = shed !== undefined && (died === undefined || shed.at <= died.at) && !/Retry-After missing/.test(shed.detail ?? '');
    const checks: SlaCheck[] = [
      {
        check: 'sheds load with 503 and Retry-After before it dies',
        verdict: shedFirst ? 'PASS' : 'FAIL',
        detail: shed ? `${shed.detail ?? 'shed'} at +${s(shed.at)}${died ? `; died at +${s(died.at)}` : '; it did not die'}` : `no 503 ERR_OVERLOADED seen${died ? `; died at +${s(died.at)}` : ''}`,
      },
      {
        check: 'if it dies, back within 45 s',
        verdict: !died || (back !== undefined && back.at - died.at <= BACK_AFTER_DEATH_MS) ? 'PASS' : 'FAIL',
        detail: !died ? 'it did not die' : back ? `back in rotation ${s(back.at - died.at)} after it died` : 'not back before the timeout',
      },
      recoveryCheck(f, READY_AGAIN_MS, 'ready again (memory back under the threshold)', true),
      ...eventChecks(f),
    ];
    return checks;
  },
};
