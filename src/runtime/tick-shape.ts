import { createHook } from 'node:async_hooks';

/** The tick object kept, so that its hidden class (map) stays alive with it. */
let kept: object | undefined;

function noop(): void {
  // the queued call does nothing; only its queue entry matters
}

/**
 * Keeps one of `process.nextTick`'s queue entries alive for the life of the process.
 *
 * Why: Node builds each queue entry as an object literal with computed (symbol) keys, whose V8
 * hidden class is held only by live entries. A full GC that runs while the queue is empty (an idle
 * instance's memory reducer does exactly that) frees the class; the next entry gets a new one, the
 * optimised code that knew the old one is thrown away, and after a few such GCs nextTick's property
 * definitions turn megamorphic and go through V8's runtime for good. Measured on Node 20, 22 and 24
 * (test/runtime/tick-shape.test.ts; the figures in docs/benchmarks.md): nextTick about 6x slower
 * after ten full GCs with an empty queue, and none of it with one entry kept. Every HTTP request
 * runs several nextTicks (stream and socket bookkeeping), so an instance that has idled a few times
 * served every later request slower.
 *
 * The entry is captured through an async hook enabled for that one nextTick call and disabled at
 * once: afterwards no hook is installed. Returns whether an entry is kept.
 */
export function keepTickObjectShape(): boolean {
  if (kept) return true;
  let captured: object | undefined;
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject') captured = resource;
    },
  });
  hook.enable();
  try {
    process.nextTick(noop, undefined);
  } finally {
    hook.disable();
  }
  kept = captured;
  return kept !== undefined;
}

/** The entry kept by keepTickObjectShape, if any (for tests). */
export function keptTickObject(): object | undefined {
  return kept;
}
