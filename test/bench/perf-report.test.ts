import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { areaOf, byArea, eventCount, inclusiveSymbols, selfSymbols, threadShares } from '../../bench/lib/perf-report.js';

// Shapes as `perf report --stdio` (perf 6.x) prints them for a Node server run with --perf-basic-prof.
const HEADER = `# Total Lost Samples: 0
#
# Samples: 11K of event 'cpu-clock:pppH'
# Event count (approx.): 5746000000
#
`;

const THREADS = `${HEADER}# Overhead  Pid:Command
    94.23%     9169:node
     1.59%     9171:node
     1.50%     9173:node
`;

const SELF = `${HEADER}# Overhead  Shared Object        Symbol
# ........  ...................  ......
#
     3.58%  [kernel.kallsyms]    [k] _raw_spin_unlock_irqrestore
     3.56%  node                 [.] v8::internal::JsonStringifier::SerializeString
     2.34%  node                 [.] Builtins_KeyedLoadIC_Megamorphic
     1.25%  node                 [.] heap::base::SlotCallbackResult v8::internal::Scavenger::ScavengeObject<v8::internal::FullHeapObjectSlot>(v8::internal::FullHeapObjectSlot, v8::internal::HeapObject)
     1.04%  libc.so.6            [.] _int_malloc
     0.90%  [JIT] tid 9169       [.] JS:*invokeWithJson file:///work/main/dist/src/domain/agentese/logos.js:219:31
     0.50%  [JIT] tid 9169       [.] JS:*Reply.send /work/main/node_modules/fastify/lib/reply.js:156:33
     0.40%  [JIT] tid 9169       [.] JS:^execute /work/main/node_modules/@nats-io/nats-core/lib/parser.js:84:10
     0.30%  [JIT] tid 9169       [.] JS:*emit node:events:471:44
     0.20%  [JIT] tid 9169       [.] RegExp:^kg_([A-Za-z0-9]{8})_([A-Za-z0-9_-]{43,128})$
     0.10%  node                 [.] node::StreamBase::Writev(v8::FunctionCallbackInfo<v8::Value> const&)
     0.05%  [vdso]               [.] __vdso_clock_gettime
`;

const CHILDREN = `${HEADER}# Children      Self  Symbol
    90.01%     0.00%  [.] __libc_start_call_main
    14.51%     0.30%  [k] do_syscall_64
     9.18%     0.10%  [.] node::StreamBase::Writev
     7.82%     0.08%  [.] v8::internal::JsonStringify
`;

void test('reads the event count (CPU nanoseconds sampled) from the header', () => {
  assert.equal(eventCount(SELF), 5_746_000_000);
  assert.throws(() => eventCount('# nothing sampled\n'), /no event count/);
});

void test('reads each thread\'s share of the samples', () => {
  const shares = threadShares(THREADS);
  assert.equal(shares.get(9169), 94.23);
  assert.equal(shares.get(9173), 1.5);
  assert.equal(shares.size, 3);
});

void test('reads self rows with their shared object, kernel symbols marked', () => {
  const rows = selfSymbols(SELF);
  assert.equal(rows.length, 12);
  assert.deepEqual(rows[0], { percent: 3.58, dso: '[kernel.kallsyms]', symbol: '[k] _raw_spin_unlock_irqrestore' });
  assert.deepEqual(rows[5], { percent: 0.9, dso: '[JIT] tid 9169', symbol: 'JS:*invokeWithJson file:///work/main/dist/src/domain/agentese/logos.js:219:31' });
});

void test('reads inclusive shares by symbol', () => {
  const inclusive = inclusiveSymbols(CHILDREN);
  assert.equal(inclusive.get('[k] do_syscall_64'), 14.51);
  assert.equal(inclusive.get('node::StreamBase::Writev'), 9.18);
  assert.equal(inclusive.get('v8::internal::JsonStringify'), 7.82);
});

void test('puts each symbol in its area: kernel, V8 parts, our code by directory, packages, Node modules', () => {
  const areas = selfSymbols(SELF).map((row) => areaOf(row));
  assert.deepEqual(areas, [
    'kernel', 'V8 JSON.stringify', 'V8 builtins', 'V8 garbage collector', 'libc (malloc, memcpy)',
    'src/domain', 'pkg fastify', 'pkg @nats-io/nats-core', 'node:events', 'regexp (generated)', 'Node C++', 'vdso (clock)',
  ]);
});

void test('sums shares by area, largest first', () => {
  const areas = byArea(selfSymbols(SELF));
  assert.equal([...areas.keys()][0], 'kernel');
  assert.equal(Math.round((areas.get('V8 JSON.stringify') ?? 0) * 100), 356);
});

void test('counts the scavenger, sweepers and write barrier as the garbage collector, and V8\'s other C++ as its runtime', () => {
  const area = (symbol: string): string => areaOf({ dso: 'node', symbol });
  for (const gc of [
    'v8::internal::Scavenger::ScavengeObject<v8::internal::FullHeapObjectSlot>', 'v8::internal::ArrayBufferSweeper::SweepingJob::SweepYoung',
    'v8::internal::SemiSpaceNewSpace::EvacuatePrologue', 'v8::internal::Heap::CollectGarbage', 'v8::internal::ConcurrentMarking::RunMajor',
    'Builtins_RecordWriteSaveFP', 'heap::base::Worklist<v8::internal::HeapObject, 64ul>::Local::Publish',
  ]) assert.equal(area(gc), 'V8 garbage collector', gc);
  assert.equal(area('v8::internal::LookupIterator::Start<true>'), 'V8 runtime');
  assert.equal(area('v8::internal::String::WriteToFlat<unsigned char>'), 'V8 runtime');
  assert.equal(area('v8::internal::compiler::GraphReducer::ReduceTop'), 'V8 compiler');
});
