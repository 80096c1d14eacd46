import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import type { FallbackQueue } from '../../../src/adapters/disk/fallback-queue.js';
import type { QueueLogger, QueueRecord } from '../../../src/adapters/disk/types.js';

export { event, idOf } from './payloads.js';

const dirs: string[] = [];
const queues: FallbackQueue[] = [];

after(async () => {
  for (const q of queues) await q.close().catch(() => undefined);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh temp directory, removed after the test file. Returns the queue dir inside it. */
export function newDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kgents-fq-'));
  dirs.push(dir);
  return join(dir, 'fallback-queue');
}

/** Closes the queue after the test file, if the test did not. */
export function track(queue: FallbackQueue): FallbackQueue {
  queues.push(queue);
  return queue;
}

export interface CapturedLogger extends QueueLogger {
  readonly warnings: string[];
  readonly errors: string[];
}

export function captureLogger(): CapturedLogger {
  const warnings: string[] = [];
  const errors: string[] = [];
  return {
    warnings, errors,
    warn: (_fields, message) => warnings.push(message),
    error: (_fields, message) => errors.push(message),
  };
}

/** Reads and commits everything currently in the queue. */
export async function drainAll(queue: FallbackQueue, batch = 100): Promise<QueueRecord[]> {
  const out: QueueRecord[] = [];
  for (;;) {
    const { records, end } = await queue.readBatch(batch);
    out.push(...records);
    await queue.commit(end);
    if (records.length === 0) return out;
  }
}

/** Reads everything from the committed cursor without committing. */
export async function peekAll(queue: FallbackQueue, batch = 100): Promise<QueueRecord[]> {
  const out: QueueRecord[] = [];
  let after = queue.committed;
  for (;;) {
    const { records, end } = await queue.readBatch(batch, { after });
    if (records.length === 0 && end.segment === after.segment && end.offset === after.offset) return out;
    out.push(...records);
    after = end;
  }
}

export function range(n: number, from = 0): number[] {
  return Array.from({ length: n }, (_, i) => from + i);
}
