import { parseDurationMs } from './duration.js';

/**
 * Ramp stages, as in k6: each stage moves the level (requests per second in the open model, virtual
 * users in the closed one) linearly from where the previous stage ended to its target over its duration.
 */
export interface Stage {
  readonly durationMs: number;
  readonly target: number;
}

export class StageSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StageSyntaxError';
  }
}

/** Parses `30s:100,60s:100,10s:0`. */
export function parseStages(text: string): Stage[] {
  const parts = text.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (parts.length === 0) throw new StageSyntaxError('no stages given');
  return parts.map((part) => {
    const [d, t, extra] = part.split(':');
    const durationMs = parseDurationMs(d ?? '');
    const target = Number(t);
    if (extra !== undefined || durationMs === undefined || durationMs <= 0 || t === undefined || t.trim() === '' || !Number.isFinite(target) || target < 0) {
      throw new StageSyntaxError(`stage "${part}": expected DURATION:TARGET such as 30s:100 (a positive duration, a target of 0 or more)`);
    }
    return { durationMs, target };
  });
}

export function totalDurationMs(stages: readonly Stage[]): number {
  return stages.reduce((sum, s) => sum + s.durationMs, 0);
}

/** The level at `tMs` after the start, starting from `start`; the last target after the end. */
export function levelAt(start: number, stages: readonly Stage[], tMs: number): number {
  let from = start;
  let t = tMs;
  for (const stage of stages) {
    if (t < stage.durationMs) return from + ((stage.target - from) * t) / stage.durationMs;
    t -= stage.durationMs;
    from = stage.target;
  }
  return from;
}

export function peakLevel(start: number, stages: readonly Stage[]): number {
  return Math.max(start, ...stages.map((s) => s.target));
}

/**
 * The open model's send times: arrivals of a process whose rate follows the stages (piecewise linear),
 * the n-th (from 0) at the moment the expected count of arrivals reaches n. A constant 200/s for 3 s gives
 * 600 requests, at 0, 5, 10, ... ms. Deterministic: every worker computes the same schedule and takes its share.
 */
export class ArrivalSchedule {
  private stageIndex = 0;
  private stageStartMs = 0;
  /** Arrivals expected before the current stage. */
  private stageStartCount = 0;
  private stageFromRate: number;
  private n = 0;

  constructor(startRate: number, private readonly stages: readonly Stage[]) {
    this.stageFromRate = startRate;
  }

  /** Arrivals expected within one stage (rates per second, duration in ms). */
  private static stageCount(from: number, to: number, durationMs: number): number {
    return ((from + to) / 2) * (durationMs / 1000);
  }

  /** The next send time in ms after the start, or undefined when the schedule is over. */
  next(): number | undefined {
    for (;;) {
      const stage = this.stages[this.stageIndex];
      if (!stage) return undefined;
      const count = ArrivalSchedule.stageCount(this.stageFromRate, stage.target, stage.durationMs);
      const x = this.n - this.stageStartCount;
      if (x < count - 1e-9) {
        const r0 = this.stageFromRate / 1000; // per ms
        const a = (stage.target / 1000 - r0) / (2 * stage.durationMs);
        // Solve r0*t + a*t^2 = x for the first t >= 0, in the form that is stable for a of either sign.
        const tau = x === 0 ? 0 : (2 * x) / (r0 + Math.sqrt(Math.max(0, r0 * r0 + 4 * a * x)));
        this.n += 1;
        return this.stageStartMs + Math.min(tau, stage.durationMs);
      }
      this.stageStartCount += count;
      this.stageStartMs += stage.durationMs;
      this.stageFromRate = stage.target;
      this.stageIndex += 1;
    }
  }
}
