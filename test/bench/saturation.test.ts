import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { parseConnectionLevels, saturationFigures, type LevelFigures, type LevelRun } from '../../bench/lib/saturation.js';

function figures(target: string, connections: number, rps: number, extra: Partial<LevelFigures> = {}): LevelFigures {
  return { target, connections, rps, goal: undefined, serverUsPerReq: undefined, ratio: undefined, ratioPerRoundMedian: undefined, goalMet: undefined, serverUsPerReqRatio: undefined, ...extra };
}

describe('bench saturation figures', () => {
  test('connection levels are parsed, deduplicated and sorted; bad ones are refused', () => {
    assert.deepEqual(parseConnectionLevels('256, 64,64'), [64, 256]);
    assert.deepEqual(parseConnectionLevels('128'), [128]);
    assert.throws(() => parseConnectionLevels('64,0'), /positive integers/);
    assert.throws(() => parseConnectionLevels('64,x'), /positive integers/);
  });

  test('each target is judged at its own best level against bare at bare\'s best, per round within the same round', () => {
    const at64 = [figures('bare', 64, 30_000, { serverUsPerReq: 30 }), figures('invoke', 64, 12_000, { goal: 0.5, serverUsPerReq: 70 })];
    const at256 = [figures('bare', 256, 25_000, { serverUsPerReq: 40 }), figures('invoke', 256, 15_500, { goal: 0.5, serverUsPerReq: 57 })];
    const runs: LevelRun[] = [
      { target: 'bare', connections: 64, round: 1, rps: 30_000 }, { target: 'bare', connections: 64, round: 2, rps: 32_000 },
      { target: 'bare', connections: 256, round: 1, rps: 25_000 }, { target: 'bare', connections: 256, round: 2, rps: 25_000 },
      { target: 'invoke', connections: 256, round: 1, rps: 15_000 }, { target: 'invoke', connections: 256, round: 2, rps: 16_000 },
      { target: 'invoke', connections: 64, round: 1, rps: 12_000 },
    ];
    const [bare, invoke] = saturationFigures([at64, at256], runs, 'bare');
    assert.equal(bare?.connections, 64, 'bare peaks at 64');
    assert.equal(invoke?.connections, 256, 'invoke peaks at 256');
    assert.equal(invoke?.ratio, 0.517);
    assert.equal(invoke?.goalMet, true);
    // Rounds 1 and 2: 15,000 / 30,000 and 16,000 / 32,000.
    assert.equal(invoke?.ratioPerRoundMedian, 0.5);
    assert.equal(invoke?.serverUsPerReqRatio, 1.9);
  });

  test('a target below its goal at every level stays missed', () => {
    const [, invoke] = saturationFigures([[figures('bare', 64, 30_000), figures('invoke', 64, 12_000, { goal: 0.5 })], [figures('bare', 256, 20_000), figures('invoke', 256, 14_000, { goal: 0.5 })]], [], 'bare');
    assert.equal(invoke?.ratio, 0.467);
    assert.equal(invoke?.goalMet, false);
    assert.equal(invoke?.ratioPerRoundMedian, undefined);
  });
});
