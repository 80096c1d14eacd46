import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalNatsCluster, LocalNatsServer } from '../../src/adapters/local/nats-server.js';
import { LocalRedisServer } from '../../src/adapters/local/redis-server.js';

/** A temp dir removed by the returned cleanup. */
export function tempDir(prefix = 'kgents-test-'): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function startNats(): Promise<LocalNatsServer & { cleanup: () => Promise<void> }> {
  const tmp = tempDir('kgents-nats-');
  const server = new LocalNatsServer({ dir: tmp.dir });
  await server.start();
  return Object.assign(server, {
    cleanup: async () => {
      server.resume();
      await server.stop();
      tmp.remove();
    },
  });
}

export async function startNatsCluster(size = 3): Promise<LocalNatsCluster & { cleanup: () => Promise<void> }> {
  const tmp = tempDir('kgents-natsc-');
  const cluster = new LocalNatsCluster(tmp.dir, size);
  await cluster.start();
  return Object.assign(cluster, {
    cleanup: async () => {
      for (const s of cluster.servers) s.resume();
      await cluster.stop();
      tmp.remove();
    },
  });
}

export async function startRedis(): Promise<LocalRedisServer & { cleanup: () => Promise<void> }> {
  const tmp = tempDir('kgents-redis-');
  const server = new LocalRedisServer({ dir: tmp.dir });
  await server.start();
  return Object.assign(server, {
    cleanup: async () => {
      server.resume();
      await server.stop();
      tmp.remove();
    },
  });
}
