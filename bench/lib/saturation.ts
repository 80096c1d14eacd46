import { median, round } from './stats.js';

/** A target's figures at one concurrency level (bench/run.ts's TargetResult has these and more). */
export interface LevelFigures {
  readonly target: string;
  readonly connections: number;
  /** Median req/s of the level's rounds. */
  readonly rps: number;
  readonly goal: number | undefined;
  readonly serverUsPerReq: number | undefined;
  readonly ratio: number | undefined;
  readonly ratioPerRoundMedian: number | undefined;
  readonly goalMet: boolean | undefined;
  readonly serverUsPerReqRatio: number | undefined;
}

/** One measured run: which target, at which level, in which round, and its req/s. */
export interface LevelRun {
  readonly target: string;
  readonly connections: number;
  readonly round: number;
  readonly rps: number;
}

/** `--connections 64,256`: the distinct levels, ascending. */
export function parseConnectionLevels(raw: string): number[] {
  const levels = raw.split(',').map((part) => {
    const n = Number(part.trim());
    if (!Number.isInteger(n) || n <= 0) throw new Error(`connections must be positive integers, got "${raw}"`);
    return n;
  });
  return [...new Set(levels)].sort((a, b) => a - b);
}

/**
 * Each target at its saturation level: the concurrency at which its median req/s was highest,
 * compared with `baseline` (bare Fastify) at its own best level. Per-round ratios pair the two
 * levels' runs of the same round (rounds interleave every target and level, so they are close in time).
 */
export function saturationFigures<R extends LevelFigures>(byLevel: Iterable<readonly R[]>, runs: readonly LevelRun[], baseline: string): R[] {
  const best = new Map<string, R>();
  for (const results of byLevel) {
    for (const r of results) {
      const current = best.get(r.target);
      if (!current || r.rps > current.rps) best.set(r.target, r);
    }
  }
  const base = best.get(baseline);
  return [...best.values()].map((r) => {
    if (!base || r.target === baseline) return r;
    const ratio = r.rps / base.rps;
    const perRound = runs
      .filter((run) => run.target === r.target && run.connections === r.connections)
      .map((run) => {
        const b = runs.find((x) => x.target === baseline && x.connections === base.connections && x.round === run.round);
        return b && b.rps > 0 ? run.rps / b.rps : undefined;
      })
      .filter((x): x is number => x !== undefined);
    return {
      ...r,
      ratio: round(ratio, 3),
      ratioPerRoundMedian: perRound.length > 0 ? round(median(perRound), 3) : undefined,
      goalMet: r.goal === undefined ? undefined : ratio >= r.goal,
      serverUsPerReqRatio: r.serverUsPerReq === undefined || base.serverUsPerReq === undefined ? undefined : round(r.serverUsPerReq / base.serverUsPerReq, 3),
    };
  });
}
