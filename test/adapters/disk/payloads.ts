import type { QueueRecord } from '../../../src/adapters/disk/types.js';

/** A JSON payload like a small usage event, padded to roughly `size` bytes. */
export function event(i: number, size = 400): Buffer {
  const head = `{"id":"evt-${i}","type":"kgents.usage","pad":"`;
  return Buffer.from(`${head}${'x'.repeat(Math.max(0, size - head.length - 2))}"}`);
}

export function idOf(record: QueueRecord): number {
  return Number((JSON.parse(record.payload.toString('utf8')) as { id: string }).id.slice(4));
}
