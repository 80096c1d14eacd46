import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';

const MODULE = pathToFileURL(join(import.meta.dirname, '..', '..', 'src', 'runtime', 'tick-shape.js')).href;

/**
 * A fresh process (V8 natives on) that optimises process.nextTick, runs ten full GCs with the
 * nextTick queue empty, queues one more entry, and reports whether nextTick is still optimised
 * (V8's optimisation status bit 4) and whether that entry has the kept entry's hidden class.
 */
function afterIdleGcs(keep: boolean): { optimisedBefore: boolean; optimisedAfter: boolean; kept: boolean; sameShape: boolean | null } {
  const script = `
    import { createHook } from 'node:async_hooks';
    const { keepTickObjectShape, keptTickObject } = await import(${JSON.stringify(MODULE)});
    const kept = ${keep ? 'keepTickObjectShape()' : 'false'};
    let last;
    const hook = createHook({ init(id, type, trigger, resource) { if (type === 'TickObject') last = resource; } });
    const cb = () => {};
    const nt = process.nextTick;
    for (let i = 0; i < 1000; i++) nt(cb, i);
    await new Promise((r) => setImmediate(r));
    %PrepareFunctionForOptimization(nt);
    nt(cb, 1); nt(cb, 2);
    %OptimizeFunctionOnNextCall(nt);
    nt(cb, 3);
    await new Promise((r) => setImmediate(r));
    const before = %GetOptimizationStatus(nt);
    for (let i = 0; i < 10; i++) { await new Promise((r) => setTimeout(r, 2)); globalThis.gc(); }
    nt(cb, 4);
    await new Promise((r) => setImmediate(r));
    const after = %GetOptimizationStatus(nt);
    // Last: an enabled hook sends nextTick down a branch it has not run, which deoptimises it too.
    hook.enable(); nt(cb, 5); hook.disable();
    const k = keptTickObject();
    console.log(JSON.stringify({ optimisedBefore: (before & 16) !== 0, optimisedAfter: (after & 16) !== 0, kept, sameShape: k && last ? %HaveSameMap(k, last) : null }));
  `;
  const r = spawnSync(process.execPath, ['--expose-gc', '--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '') as ReturnType<typeof afterIdleGcs>;
}

describe('keeping a nextTick queue entry alive (TICK_SHAPE_KEEP)', () => {
  test('without it, full GCs while the queue is empty throw away nextTick\'s optimised code (the Node behaviour it works around)', () => {
    const r = afterIdleGcs(false);
    assert.equal(r.optimisedBefore, true);
    assert.equal(r.optimisedAfter, false, 'nextTick stayed optimised without a kept entry: this Node may no longer need TICK_SHAPE_KEEP');
  });

  test('with it, nextTick stays optimised through those GCs and new entries keep the kept entry\'s hidden class', () => {
    const r = afterIdleGcs(true);
    assert.equal(r.kept, true);
    assert.equal(r.optimisedBefore, true);
    assert.equal(r.optimisedAfter, true);
    assert.equal(r.sameShape, true);
  });
});
