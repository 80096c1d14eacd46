import { monitorEventLoopDelay } from 'node:perf_hooks';
import { isFailure, LoadClient, type Outcome } from './client.js';
import { Histogram } from './histogram.js';
import { nowMs, type ClosedModel, type FromWorker, type IntervalSnapshot, type OpenModel, type ScenarioInterval, type WorkerJob } from './protocol.js';
import type { Scenario } from './scenarios.js';
import { ArrivalSchedule, levelAt, totalDurationMs } from './schedule.js';

class ScenarioAcc {
  requests = 0;
  failed = 0;
  bytes = 0;
  readonly latency = new Histogram();
  readonly service = new Histogram();
  readonly statuses: Record<string, number> = {};
  readonly errors: Record<string, number> = {};

  toJSON(): ScenarioInterval {
    return {
      requests: this.requests, failed: this.failed, bytes: this.bytes, latency: this.latency.toJSON(), service: this.service.toJSON(),
      statuses: this.statuses, errors: this.errors,
    };
  }
}

class IntervalAcc {
  scheduled = 0;
  late = 0;
  capped = 0;
  dropped = 0;
  readonly scenarios = new Map<string, ScenarioAcc>();

  scenario(name: string): ScenarioAcc {
    let acc = this.scenarios.get(name);
    if (!acc) {
      acc = new ScenarioAcc();
      this.scenarios.set(name, acc);
    }
    return acc;
  }
}

interface Due {
  /** Scheduled start, wall-clock ms. */
  readonly at: number;
  /** Global arrival number: picks the scenario, variant and key. */
  readonly n: number;
}

/** A FIFO of due requests waiting for a slot. */
class Backlog {
  private items: Due[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: Due): void {
    this.items.push(item);
  }

  shift(): Due | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

/** This worker's share of `total` things dealt round-robin to `count` workers. */
export function shareOf(total: number, index: number, count: number): number {
  return total > index ? Math.floor((total - index - 1) / count) + 1 : 0;
}

/**
 * One load-generating thread: sends its share of the requests, records latency from each request's
 * scheduled start (open model) or its send (closed model), and reports one snapshot per interval.
 */
export class Engine {
  private readonly client: LoadClient;
  private readonly intervals = new Map<number, IntervalAcc>();
  private nextFlush = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private startAt = 0;
  private endAt = 0;
  private inFlight = 0;
  private activeVus = 0;
  private stopping = false;
  private scheduleOver = false;
  private finished: (() => void) | undefined;
  private readonly delay = monitorEventLoopDelay({ resolution: 10 });

  constructor(private readonly job: WorkerJob, private readonly emit: (message: FromWorker) => void) {
    const sockets = job.model.kind === 'open' ? shareOf(job.model.maxInFlight, job.workerIndex, job.workerCount) : shareOf(peakVus(job.model), job.workerIndex, job.workerCount);
    this.client = new LoadClient(job.target, Math.max(1, sockets), job.timeoutMs);
  }

  /** Runs the schedule from `startAt` (wall-clock ms) to its end and until the last request is answered. */
  async run(startAt: number): Promise<void> {
    this.startAt = startAt;
    this.endAt = startAt + totalDurationMs(this.job.model.stages);
    const elu0 = performance.eventLoopUtilization();
    this.delay.enable();
    const done = new Promise<void>((resolve) => (this.finished = resolve));
    const wait = Math.max(0, startAt - nowMs());
    setTimeout(() => {
      this.delay.reset();
      this.scheduleFlush();
      if (this.job.model.kind === 'open') this.runOpen(this.job.model);
      else this.runClosed(this.job.model);
    }, wait);
    await done;
    this.delay.disable();
    this.client.close();
    const elu = performance.eventLoopUtilization(elu0);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flush(Number.POSITIVE_INFINITY);
    this.emit({ kind: 'done', done: { eventLoopUtilization: elu.utilization, maxLagMs: this.delay.max / 1e6, endedAt: nowMs() } });
  }

  /** Stops sending; requests in flight get a short grace period, then are cut (and counted as dropped, not failed). */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.scheduleOver = true;
    if (this.backlog.length > 0) this.acc(nowMs()).dropped += this.backlog.length;
    this.backlog = new Backlog();
    setTimeout(() => {
      this.client.close();
    }, Math.min(2000, this.job.gracefulStopMs)).unref();
    this.maybeFinish();
  }

  // ---- bookkeeping ----------------------------------------------------------------------------------

  private indexAt(t: number): number {
    return Math.max(0, Math.floor((t - this.startAt) / this.job.intervalMs));
  }

  private acc(t: number): IntervalAcc {
    const index = Math.max(this.nextFlush, this.indexAt(t));
    let acc = this.intervals.get(index);
    if (!acc) {
      acc = new IntervalAcc();
      this.intervals.set(index, acc);
    }
    return acc;
  }

  private scheduleFlush(): void {
    const due = this.startAt + (this.nextFlush + 1) * this.job.intervalMs + 5;
    this.flushTimer = setTimeout(() => {
      this.flush(this.indexAt(nowMs()));
      this.scheduleFlush();
    }, Math.max(0, due - nowMs()));
  }

  /** Emits every interval before `upTo` (exclusive), empty ones included. */
  private flush(upTo: number): void {
    const last = upTo === Number.POSITIVE_INFINITY ? Math.max(this.nextFlush - 1, ...this.intervals.keys()) : upTo - 1;
    for (let index = this.nextFlush; index <= last; index++) {
      const acc = this.intervals.get(index) ?? new IntervalAcc();
      this.intervals.delete(index);
      const scenarios: Record<string, ScenarioInterval> = {};
      for (const [name, s] of acc.scenarios) scenarios[name] = s.toJSON();
      const snapshot: IntervalSnapshot = {
        index, worker: this.job.workerIndex, scenarios, scheduled: acc.scheduled, late: acc.late, capped: acc.capped, dropped: acc.dropped,
        inFlight: this.inFlight, vus: this.activeVus,
      };
      this.emit({ kind: 'interval', snapshot });
    }
    if (last + 1 > this.nextFlush) this.nextFlush = last + 1;
  }

  private maybeFinish(): void {
    if (this.scheduleOver && this.inFlight === 0 && this.backlog.length === 0 && this.activeVus === 0) this.finished?.();
  }

  private readonly prepared = new Map<string, Buffer>();

  /** The bytes of request number `n`: its scenario (weighted sequence), the scenario's variant and key in rotation. */
  private request(n: number): { scenario: Scenario; bytes: Buffer } {
    const job = this.job;
    const scenarioIndex = job.sequence[n % job.sequence.length] ?? 0;
    const scenario = job.scenarios[scenarioIndex];
    if (!scenario) throw new Error('no scenarios');
    const variantIndex = Math.floor(n / job.sequence.length) % scenario.variants.length;
    const keyIndex = scenario.auth && job.keys.length > 0 ? n % job.keys.length : -1;
    const id = `${scenarioIndex}:${variantIndex}:${keyIndex}`;
    let bytes = this.prepared.get(id);
    if (!bytes) {
      const variant = scenario.variants[variantIndex];
      if (!variant) throw new Error(`scenario ${scenario.name} has no request`);
      const headers = keyIndex >= 0 ? { ...scenario.headers, 'x-api-key': job.keys[keyIndex] ?? '' } : scenario.headers;
      bytes = this.client.prepare(scenario.method, variant.path, headers, variant.body);
      this.prepared.set(id, bytes);
    }
    return { scenario, bytes };
  }

  /** Sends request number `n`; `scheduledAt` is its intended start (= now in the closed model). */
  private send(n: number, scheduledAt: number, then: () => void): void {
    const { scenario, bytes } = this.request(n);
    const sentAt = nowMs();
    this.inFlight += 1;
    this.client.send(bytes, (outcome: Outcome) => {
      this.inFlight -= 1;
      const end = nowMs();
      if (outcome.code === 'STOPPED') {
        this.acc(end).dropped += 1;
      } else {
        const s = this.acc(end).scenario(scenario.name);
        s.requests += 1;
        s.bytes += outcome.bytes;
        s.latency.record(end - scheduledAt);
        s.service.record(end - sentAt);
        const key = String(outcome.status);
        s.statuses[key] = (s.statuses[key] ?? 0) + 1;
        if (isFailure(outcome.status)) {
          s.failed += 1;
          const code = outcome.code ?? `HTTP_${outcome.status}`;
          s.errors[code] = (s.errors[code] ?? 0) + 1;
        }
      }
      then();
    });
  }

  // ---- open model -----------------------------------------------------------------------------------

  private backlog = new Backlog();

  private runOpen(model: OpenModel): void {
    const schedule = new ArrivalSchedule(model.startRate, model.stages);
    const { workerIndex, workerCount } = this.job;
    const maxInFlight = Math.max(1, shareOf(model.maxInFlight, workerIndex, workerCount));
    const maxBacklog = Math.max(0, shareOf(model.maxBacklog, workerIndex, workerCount));
    let n = -1;
    const nextOwn = (): Due | undefined => {
      for (;;) {
        const t = schedule.next();
        if (t === undefined) return undefined;
        n += 1;
        if (n % workerCount === workerIndex) return { at: this.startAt + t, n };
      }
    };
    const release = (): void => {
      const waiting = this.stopping ? undefined : this.backlog.shift();
      if (waiting) start(waiting, true);
      else this.maybeFinish();
    };
    const start = (due: Due, waited: boolean): void => {
      const now = nowMs();
      if (now - due.at > this.job.lateThresholdMs) {
        const acc = this.acc(now);
        acc.late += 1;
        if (waited) acc.capped += 1;
      }
      this.send(due.n, due.at, release);
    };
    let next = nextOwn();
    const pump = (): void => {
      if (this.stopping) return;
      const now = nowMs();
      while (next && next.at <= now) {
        const acc = this.acc(now);
        acc.scheduled += 1;
        if (this.inFlight < maxInFlight && this.backlog.length === 0) start(next, false);
        else if (this.backlog.length < maxBacklog) this.backlog.push(next);
        else acc.dropped += 1;
        next = nextOwn();
      }
      if (!next) {
        this.scheduleOver = true;
        this.maybeFinish();
        return;
      }
      const wait = next.at - nowMs();
      // Timers have millisecond resolution: sleep most of the gap, then poll for the last fraction.
      if (wait < 1) setImmediate(pump);
      else setTimeout(pump, Math.floor(wait));
    };
    pump();
  }

  // ---- closed model ---------------------------------------------------------------------------------

  private runClosed(model: ClosedModel): void {
    const { workerIndex, workerCount } = this.job;
    const running: boolean[] = [];
    let counter = 0;
    const localTarget = (): number => {
      const now = nowMs();
      if (now >= this.endAt || this.stopping) return 0;
      return shareOf(Math.round(levelAt(model.startVus, model.stages, now - this.startAt)), workerIndex, workerCount);
    };
    const iterate = (slot: number): void => {
      if (slot >= localTarget()) {
        running[slot] = false;
        this.activeVus -= 1;
        this.maybeFinish();
        return;
      }
      // Interleave the workers' positions in the weighted sequence.
      const n = counter * workerCount + workerIndex;
      counter += 1;
      this.send(n, nowMs(), () => {
        if (model.thinkMs > 0) setTimeout(() => iterate(slot), model.thinkMs);
        else iterate(slot);
      });
    };
    const control = (): void => {
      const target = localTarget();
      for (let slot = 0; slot < target; slot++) {
        if (!running[slot]) {
          running[slot] = true;
          this.activeVus += 1;
          iterate(slot);
        }
      }
      if (nowMs() < this.endAt && !this.stopping) {
        setTimeout(control, 50);
      } else {
        this.scheduleOver = true;
        this.maybeFinish();
      }
    };
    control();
  }
}

function peakVus(model: ClosedModel): number {
  return Math.max(model.startVus, ...model.stages.map((s) => s.target));
}
