import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import type { ScriptCall } from '../../../src/adapters/redis/client.js';
import { ScriptBatcher } from '../../../src/adapters/redis/script-batch.js';

/** A script that records each call and answers each op with its position in the batch. */
function recordingScript(): { readonly script: ScriptCall; readonly calls: { keys: readonly string[]; packed: string }[] } {
  const calls: { keys: readonly string[]; packed: string }[] = [];
  const script: ScriptCall = (keys, args) => {
    const packed = String(args[0]);
    calls.push({ keys: [...keys], packed });
    return Promise.resolve(packed.split(';').map((_op, i) => i));
  };
  return { script, calls };
}

/** Each op's items as an array, as a caller that wants them raw would decode them. */
const items = (reply: readonly unknown[], at: number, n: number): unknown[] => reply.slice(at, at + n);
const one = (reply: readonly unknown[], at: number): unknown[] => items(reply, at, 1);

void describe('ScriptBatcher', () => {
  void test('sends the ops of one turn as one script call, in the order they were issued, each naming its keys by position in KEYS', async () => {
    const { script, calls } = recordingScript();
    const batch = new ScriptBatcher(script);
    const replies = await Promise.all([
      batch.run({ keys: ['a'], args: ['x', 1], replyItems: 1 }, items, 1),
      batch.addToCounter('q', 't', 5, 100, one),
      batch.run({ keys: ['b', 'c'], args: ['y', 2, 3], replyItems: 1 }, items, 1),
    ]);
    assert.deepEqual(calls, [{ keys: ['a', 'q', 'b', 'c'], packed: 'x:1:1;t:2:5:100;y:3:4:2:3' }]);
    assert.deepEqual(replies, [[0], [1], [2]]);
  });

  void test('adds back-to-back amounts of one counter into one op, whose reply every caller gets', async () => {
    const { script, calls } = recordingScript();
    const batch = new ScriptBatcher(script);
    const replies = await Promise.all([
      batch.addToCounter('q', 't', 5, 100, one),
      batch.addToCounter('q', 't', 7, 100, one),
      batch.addToCounter('q', 't', 1, 100, one),
    ]);
    assert.deepEqual(calls, [{ keys: ['q'], packed: 't:1:13:100' }]);
    assert.deepEqual(replies, [[0], [0], [0]]);
  });

  void test('does not merge across another op or another key, so every op sees what it saw before; a key used again is sent once', async () => {
    const { script, calls } = recordingScript();
    const batch = new ScriptBatcher(script);
    await Promise.all([
      batch.addToCounter('q', 't', 5, 100, one),
      batch.run({ keys: ['q', 'r'], args: ['a', 1], replyItems: 1 }, items, 1),
      batch.addToCounter('q', 't', 7, 100, one),
      batch.addToCounter('other', 't', 2, 100, one),
      batch.addToCounter('q', 't', 3, 100, one),
    ]);
    assert.deepEqual(calls, [{ keys: ['q', 'r', 'other'], packed: 't:1:5:100;a:1:2:1;t:1:7:100;t:3:2:100;t:1:3:100' }]);
  });

  void test('starts a new op after a batch is sent, and caps a sum at 2^53 - 1', async () => {
    const { script, calls } = recordingScript();
    const batch = new ScriptBatcher(script);
    await batch.addToCounter('q', 't', 5, 100, one);
    await Promise.all([batch.addToCounter('q', 't', Number.MAX_SAFE_INTEGER - 1, 100, one), batch.addToCounter('q', 't', 10, 100, one)]);
    assert.deepEqual(calls.map((c) => c.packed), ['t:1:5:100', `t:1:${Number.MAX_SAFE_INTEGER}:100`]);
  });

  void test('resolves each op to what its decoder reads at its offset, with the context given with the op', async () => {
    const script: ScriptCall = () => Promise.resolve([1, 2, 3, 'x', 'y', 9]);
    const batch = new ScriptBatcher(script);
    const sum = (reply: readonly unknown[], at: number, n: number): number => (reply[at] as number) + (reply[at + 1] as number) + n;
    const [a, b, c] = await Promise.all([
      batch.run({ keys: ['k'], args: ['a'], replyItems: 3 }, sum, 100),
      batch.run({ keys: ['k'], args: ['b'], replyItems: 2 }, (reply, at, tag: string) => `${tag}:${String(reply[at])}${String(reply[at + 1])}`, 'ctx'),
      batch.addToCounter('q', 't', 1, 1, (reply, at) => reply[at]),
    ]);
    assert.equal(a, 103);
    assert.equal(b, 'ctx:xy');
    assert.equal(c, 9);
  });

  void test('rejects only the op whose decoder throws; the others resolve', async () => {
    const script: ScriptCall = () => Promise.resolve(['ok', 'bad', 'ok']);
    const batch = new ScriptBatcher(script);
    const strict = (reply: readonly unknown[], at: number): string => {
      if (reply[at] !== 'ok') throw new Error(`unexpected ${String(reply[at])}`);
      return 'fine';
    };
    const results = await Promise.allSettled([0, 1, 2].map((i) => batch.run({ keys: ['k'], args: ['x', i], replyItems: 1 }, strict, undefined)));
    assert.deepEqual(results.map((r) => (r.status === 'fulfilled' ? r.value : r.reason instanceof Error ? r.reason.message : '?')), ['fine', 'unexpected bad', 'fine']);
  });

  void test('merges only adds of the same op code on one key', async () => {
    const { script, calls } = recordingScript();
    const batch = new ScriptBatcher(script);
    await Promise.all([batch.addToCounter('q', 't', 1, 5, one), batch.addToCounter('q', 'u', 2, 5, one), batch.addToCounter('q', 'u', 3, 5, one)]);
    assert.deepEqual(calls.map((c) => c.packed), ['t:1:1:5;u:1:5:5']);
  });

  void test('fails every op of a call that fails, with its error', async () => {
    const batch = new ScriptBatcher(() => Promise.reject(new Error('connection lost')));
    const results = await Promise.allSettled([batch.addToCounter('q', 't', 1, 1, one), batch.run({ keys: ['a'], args: ['x'], replyItems: 1 }, items, 1)]);
    assert.deepEqual(results.map((r) => r.status === 'rejected' && r.reason instanceof Error ? r.reason.message : r.status), ['connection lost', 'connection lost']);
  });
});
