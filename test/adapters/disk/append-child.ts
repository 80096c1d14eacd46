/**
 * Child process of the kill -9 test: appends events with several concurrent appenders and
 * prints each event's index on stdout once its append has resolved (stdout to a pipe is
 * synchronous on Linux, so a printed index was acknowledged before any later output).
 * Usage: node append-child.js <dir> <concurrency>
 */
import { FallbackQueue } from '../../../src/adapters/disk/fallback-queue.js';
import { event } from './payloads.js';

const [dir, concurrencyArg] = process.argv.slice(2);
if (!dir) throw new Error('usage: append-child.js <dir> <concurrency>');
const concurrency = Number(concurrencyArg ?? '16');
const queue = await FallbackQueue.open(dir, { segmentBytes: 64 * 1024 });
process.stdout.write('ready\n');
let next = 0;
await Promise.all(Array.from({ length: concurrency }, async () => {
  for (;;) {
    const i = next++;
    await queue.append(event(i, 200 + (i % 7) * 50));
    process.stdout.write(`${i}\n`);
  }
}));
