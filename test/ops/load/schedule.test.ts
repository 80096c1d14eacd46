import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { parseDurationMs } from '../../../src/ops/load/duration.js';
import { parseMix, weightedSequence } from '../../../src/ops/load/scenarios.js';
import { ArrivalSchedule, levelAt, parseStages, StageSyntaxError } from '../../../src/ops/load/schedule.js';

function all(schedule: ArrivalSchedule): number[] {
  const out: number[] = [];
  for (let t = schedule.next(); t !== undefined; t = schedule.next()) out.push(t);
  return out;
}

describe('durations, stages and arrival schedules', () => {
  test('durations read as on the command line', () => {
    assert.equal(parseDurationMs('500ms'), 500);
    assert.equal(parseDurationMs('30s'), 30_000);
    assert.equal(parseDurationMs('1h30m'), 5_400_000);
    assert.equal(parseDurationMs('4h'), 14_400_000);
    assert.equal(parseDurationMs('1.5s'), 1500);
    assert.equal(parseDurationMs('90'), 90_000);
    assert.equal(parseDurationMs('3x'), undefined);
    assert.equal(parseDurationMs(''), undefined);
    assert.equal(parseDurationMs('s'), undefined);
  });

  test('stages parse, and the level ramps linearly between targets', () => {
    const stages = parseStages('30s:100,60s:100,10s:0');
    assert.deepEqual(stages, [{ durationMs: 30_000, target: 100 }, { durationMs: 60_000, target: 100 }, { durationMs: 10_000, target: 0 }]);
    assert.equal(levelAt(0, stages, 15_000), 50);
    assert.equal(levelAt(0, stages, 45_000), 100);
    assert.equal(levelAt(0, stages, 95_000), 50);
    assert.equal(levelAt(0, stages, 200_000), 0);
    assert.throws(() => parseStages('30s'), StageSyntaxError);
    assert.throws(() => parseStages('0s:10'), StageSyntaxError);
    assert.throws(() => parseStages('10s:-1'), StageSyntaxError);
  });

  test('a constant rate of 200/s for 3 s schedules exactly 600 requests, 5 ms apart', () => {
    const times = all(new ArrivalSchedule(200, [{ durationMs: 3000, target: 200 }]));
    assert.equal(times.length, 600);
    times.forEach((t, i) => assert.ok(Math.abs(t - i * 5) < 1e-6, `arrival ${i} at ${t}`));
  });

  test('a ramp schedules the integral of the rate, and arrivals get denser as it rises', () => {
    // 0 -> 100/s over 10 s, then 100/s for 5 s, then down to 0 over 5 s: 500 + 500 + 250
    const times = all(new ArrivalSchedule(0, parseStages('10s:100,5s:100,5s:0')));
    assert.ok(Math.abs(times.length - 1250) <= 1, `${times.length}`);
    const inFirst5s = times.filter((t) => t < 5000).length;
    const inSecond5s = times.filter((t) => t >= 5000 && t < 10_000).length;
    assert.ok(Math.abs(inFirst5s - 125) <= 1 && Math.abs(inSecond5s - 375) <= 1, `${inFirst5s}, ${inSecond5s}`);
    for (let i = 1; i < times.length; i++) assert.ok((times[i] ?? 0) >= (times[i - 1] ?? 0));
    assert.ok((times[times.length - 1] ?? 0) <= 20_000);
  });

  test('the mix is followed exactly over each period of the weighted sequence', () => {
    const seq = weightedSequence([1, 3, 6]);
    assert.equal(seq.length, 10);
    assert.deepEqual([0, 1, 2].map((i) => seq.filter((s) => s === i).length), [1, 3, 6]);
    // smooth: the heavy scenario never waits long
    const gaps = seq.map((s, i) => (s === 2 ? i : -1)).filter((i) => i >= 0);
    for (let i = 1; i < gaps.length; i++) assert.ok((gaps[i] ?? 0) - (gaps[i - 1] ?? 0) <= 2);
    assert.deepEqual(weightedSequence([0.5, 0.25]).length, 3);
    const mix = parseMix('health=1,resolve=3,/v1/thing?x=1=2');
    assert.deepEqual(mix.map((m) => [m.name, m.weight, m.auth]), [['health', 1, false], ['resolve', 3, true], ['/v1/thing?x=1', 2, false]]);
    assert.throws(() => parseMix('health=0'), /positive/);
    assert.throws(() => parseMix('nothing=1'), /unknown scenario/);
    assert.throws(() => parseMix('health,health'), /twice/);
  });
});
