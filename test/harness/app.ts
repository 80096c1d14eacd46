import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { MemoryIdempotencyStore } from '../../src/adapters/memory/idempotency-store.js';
import { MemoryLimitStore } from '../../src/adapters/memory/limit-store.js';
import { loadConfig, type Config } from '../../src/config/load.js';
import type { ConfigVarName } from '../../src/config/schema.js';
import type { IdempotencyStore, LimitStore } from '../../src/domain/limits/ports.js';
import { buildApp } from '../../src/http/app.js';
import { HealthRegistry } from '../../src/http/health.js';
import { Lifecycle } from '../../src/http/lifecycle.js';
import { MemoryKeyStore } from './memory-key-store.js';

/** Collects the app's JSON log lines so tests can assert on them (and on what they never contain). */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) if (line) this.lines.push(line);
    cb();
  }
  get text(): string {
    return this.lines.join('\n');
  }
}

export interface TestApp {
  readonly app: FastifyInstance;
  readonly config: Config;
  readonly keys: MemoryKeyStore;
  readonly limits: LimitStore;
  readonly idempotency: IdempotencyStore;
  readonly lifecycle: Lifecycle;
  readonly health: HealthRegistry;
  readonly logs: LogCapture;
  close(): Promise<void>;
  dispose(): Promise<void>;
}

/** An app on in-memory stores (the real fallback implementations), ready for app.inject(). */
export async function testApp(env: Partial<Record<ConfigVarName, string>> = {}, parts: { limits?: LimitStore; idempotency?: IdempotencyStore } = {}): Promise<TestApp> {
  const t = await testAppUnready(env, parts);
  await t.app.ready();
  return t;
}

/** As testApp, but not yet ready, so a test can add routes or listen on a socket. `dispose` frees the stores only. */
export function testAppUnready(env: Partial<Record<ConfigVarName, string>> = {}, parts: { limits?: LimitStore; idempotency?: IdempotencyStore } = {}): Promise<TestApp> {
  const config = loadConfig({}, { LOG_LEVEL: 'info', INSTANCE_ID: 'test', ...env });
  const keys = new MemoryKeyStore();
  const memLimits = new MemoryLimitStore();
  const memIdem = new MemoryIdempotencyStore();
  const limits = parts.limits ?? memLimits;
  const idempotency = parts.idempotency ?? memIdem;
  const lifecycle = new Lifecycle();
  const health = new HealthRegistry();
  const logs = new LogCapture();
  const app = buildApp(config, { keys, limits, idempotency, lifecycle, health, logDestination: logs });
  const dispose = (): Promise<void> => {
    memLimits.close();
    memIdem.close();
    return Promise.resolve();
  };
  return Promise.resolve({
    app, config, keys, limits, idempotency, lifecycle, health, logs, dispose,
    close: async () => {
      await app.close();
      await dispose();
    },
  });
}
