import { strict as assert } from 'node:assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { MemoryIdempotencyStore } from '../../src/adapters/memory/idempotency-store.js';
import { MemoryLimitStore } from '../../src/adapters/memory/limit-store.js';
import { oldGenerationLimitBytes, ProcessPressureMonitor, type PressureSample, type PressureSource } from '../../src/adapters/local/pressure-monitor.js';
import { loadConfig } from '../../src/config/load.js';
import type { ConfigVarName } from '../../src/config/schema.js';
import { buildApp } from '../../src/http/app.js';
import { HealthRegistry } from '../../src/http/health.js';
import { Lifecycle } from '../../src/http/lifecycle.js';
import { LogCapture } from '../harness/app.js';
import { MemoryKeyStore } from '../harness/memory-key-store.js';
import { createKey } from '../harness/fixtures.js';
import { http, type HttpResult } from '../harness/serve-process.js';

const MIB = 1024 * 1024;

/** A pressure source the test sets by hand; each push is one sampling window. */
class ManualPressure implements PressureSource {
  private sample: PressureSample = { eventLoopDelayMs: 0, heapLiveBytes: 10 * MIB, heapUsedBytes: 10 * MIB, heapLimitBytes: 100 * MIB, rssBytes: 0, memoryLimitBytes: 0, at: 0, window: 0 };
  private readonly listeners: ((s: PressureSample) => void)[] = [];
  started = false;
  latest(): PressureSample {
    return this.sample;
  }
  onSample(listener: (s: PressureSample) => void): void {
    this.listeners.push(listener);
  }
  start(): void {
    this.started = true;
  }
  stop(): void {
    this.started = false;
  }
  push(change: Partial<PressureSample>): void {
    this.sample = { ...this.sample, ...change, at: Date.now(), window: this.sample.window + 1 };
    for (const l of this.listeners) l(this.sample);
  }
}

async function appWith(env: Partial<Record<ConfigVarName, string>> = {}): Promise<{ app: FastifyInstance; pressure: ManualPressure; keys: MemoryKeyStore; close(): Promise<void> }> {
  const config = loadConfig({}, { LOG_LEVEL: 'info', INSTANCE_ID: 'shed-test', ...env });
  const limits = new MemoryLimitStore();
  const idempotency = new MemoryIdempotencyStore();
  const pressure = new ManualPressure();
  const keys = new MemoryKeyStore();
  const app = buildApp(config, { keys, limits, idempotency, lifecycle: new Lifecycle(), health: new HealthRegistry(), logDestination: new LogCapture(), pressure });
  await app.ready();
  return {
    app, pressure, keys,
    close: async () => {
      await app.close();
      limits.close();
      idempotency.close();
    },
  };
}

interface ErrorBody { error: { code: string; details?: { reason?: string; retry_after_s?: number } } }
const API = '/v1/agentese/affordances?path=world.house';

describe('load shedding', () => {
  test('under the thresholds requests are admitted (an unauthenticated call gets its 401) and /ready is 200', async () => {
    const t = await appWith();
    try {
      assert.ok(t.pressure.started, 'the source starts with the app');
      t.pressure.push({ heapLiveBytes: 80 * MIB, heapUsedBytes: 90 * MIB, eventLoopDelayMs: 900 });
      assert.equal((await t.app.inject(API)).statusCode, 401);
      assert.equal((await t.app.inject('/ready')).statusCode, 200);
    } finally {
      await t.close();
    }
  });

  test('live heap over SHED_HEAP_RATIO: 503 ERR_OVERLOADED with Retry-After and Connection: close, before auth; probes and metrics still served', async () => {
    const t = await appWith({ SHED_RETRY_AFTER_S: '7' });
    try {
      t.pressure.push({ heapLiveBytes: 86 * MIB });
      const res = await t.app.inject({ method: 'POST', url: '/v1/agentese/invoke', payload: { path: 'world.house.manifest' } });
      assert.equal(res.statusCode, 503);
      assert.equal(res.headers['retry-after'], '7');
      assert.equal(res.headers.connection, 'close');
      const body = res.json<ErrorBody>();
      assert.equal(body.error.code, 'ERR_OVERLOADED');
      assert.deepEqual(body.error.details, { reason: 'heap', retry_after_s: 7 });

      assert.equal((await t.app.inject('/health')).statusCode, 200);
      const ready = await t.app.inject('/ready');
      assert.equal(ready.statusCode, 503);
      assert.deepEqual(ready.json(), { ready: false, reason: 'overloaded', detail: 'heap' });
      const saas = (await t.app.inject('/health/saas')).json<{ status: string; components: { load: { status: string; shedding: boolean; reason: string } } }>();
      assert.equal(saas.status, 'degraded');
      assert.deepEqual([saas.components.load.status, saas.components.load.shedding, saas.components.load.reason], ['degraded', true, 'heap']);
      const metrics = (await t.app.inject('/metrics')).body;
      assert.match(metrics, /^kgents_load_shed_total\{reason="heap",instance="shed-test"\} 1$/m);
      assert.match(metrics, /^kgents_overloaded\{instance="shed-test"\} 1$/m);
      assert.match(metrics, /^kgents_heap_live_ratio\{instance="shed-test"\} 0\.86$/m);
      assert.match(metrics, /^kgents_heap_limit_bytes\{instance="shed-test"\} 104857600$/m);
    } finally {
      await t.close();
    }
  });

  test('on a socket, a valid invoke is shed too (its fast path defers to Fastify while shedding) and served again after', async () => {
    const t = await appWith();
    try {
      const key = (await createKey(t.keys, 'acme', 'enterprise', ['write'])).key;
      await t.app.listen({ port: 0, host: '127.0.0.1' });
      const address = t.app.server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      const body = '{"path":"world.house.manifest"}';
      const invoke = (): Promise<HttpResult> => http(port, '/v1/agentese/invoke', { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key }, body });
      assert.equal((await invoke()).status, 200);
      t.pressure.push({ heapLiveBytes: 86 * MIB });
      const shed = await invoke();
      assert.equal(shed.status, 503);
      assert.equal((JSON.parse(shed.body) as ErrorBody).error.code, 'ERR_OVERLOADED');
      t.pressure.push({ heapLiveBytes: 10 * MIB });
      assert.equal((await invoke()).status, 200);
    } finally {
      await t.close();
    }
  });

  test('heap in use half way from the threshold to the limit sheds even before a full GC confirms it', async () => {
    const t = await appWith();
    try {
      t.pressure.push({ heapLiveBytes: 50 * MIB, heapUsedBytes: 92 * MIB });
      assert.equal((await t.app.inject(API)).statusCode, 401, '0.92 used is under (1 + 0.85) / 2');
      t.pressure.push({ heapLiveBytes: 50 * MIB, heapUsedBytes: 93 * MIB });
      assert.equal((await t.app.inject(API)).json<ErrorBody>().error.code, 'ERR_OVERLOADED');
    } finally {
      await t.close();
    }
  });

  test('shedding stops only 0.05 below the threshold, so the verdict does not flap', async () => {
    const t = await appWith();
    try {
      t.pressure.push({ heapLiveBytes: 86 * MIB });
      assert.equal((await t.app.inject(API)).statusCode, 503);
      t.pressure.push({ heapLiveBytes: 82 * MIB, heapUsedBytes: 82 * MIB });
      assert.equal((await t.app.inject(API)).statusCode, 503);
      t.pressure.push({ heapLiveBytes: 79 * MIB, heapUsedBytes: 79 * MIB });
      assert.equal((await t.app.inject(API)).statusCode, 401);
      assert.equal((await t.app.inject('/ready')).statusCode, 200);
    } finally {
      await t.close();
    }
  });

  test('event-loop delay sheds after three slow windows in a row, not after one, and recovers after one fast window', async () => {
    const t = await appWith({ SHED_EVENT_LOOP_DELAY_MS: '200' });
    try {
      t.pressure.push({ eventLoopDelayMs: 900 });
      t.pressure.push({ eventLoopDelayMs: 10 });
      t.pressure.push({ eventLoopDelayMs: 900 });
      t.pressure.push({ eventLoopDelayMs: 900 });
      assert.equal((await t.app.inject(API)).statusCode, 401);
      t.pressure.push({ eventLoopDelayMs: 900 });
      const res = await t.app.inject(API);
      assert.equal(res.statusCode, 503);
      assert.equal(res.json<ErrorBody>().error.details?.reason, 'event_loop');
      t.pressure.push({ eventLoopDelayMs: 20 });
      assert.equal((await t.app.inject(API)).statusCode, 401);
    } finally {
      await t.close();
    }
  });

  test('RSS over SHED_RSS_RATIO of the memory limit sheds; without a known limit RSS is not a signal', async () => {
    const t = await appWith();
    try {
      t.pressure.push({ rssBytes: 950 * MIB, memoryLimitBytes: 0 });
      assert.equal((await t.app.inject(API)).statusCode, 401);
      t.pressure.push({ rssBytes: 950 * MIB, memoryLimitBytes: 1000 * MIB });
      assert.equal((await t.app.inject(API)).json<ErrorBody>().error.details?.reason, 'memory');
    } finally {
      await t.close();
    }
  });

  test('LOAD_SHEDDING=off never sheds', async () => {
    const t = await appWith({ LOAD_SHEDDING: 'off' });
    try {
      t.pressure.push({ heapLiveBytes: 99 * MIB, heapUsedBytes: 99 * MIB, eventLoopDelayMs: 60_000 });
      assert.equal((await t.app.inject(API)).statusCode, 401);
      assert.equal((await t.app.inject('/ready')).statusCode, 200);
    } finally {
      await t.close();
    }
  });

  test('the process monitor reads the old-generation limit from --max-old-space-size and sees a blocked event loop', async () => {
    assert.equal(oldGenerationLimitBytes(['--max-old-space-size=64'], ''), 64 * MIB);
    assert.equal(oldGenerationLimitBytes([], '--max_old_space_size=96 --enable-source-maps'), 96 * MIB);
    const monitor = new ProcessPressureMonitor({ sampleMs: 100, memoryLimitBytes: 0 });
    const samples: PressureSample[] = [];
    monitor.onSample((s) => samples.push(s));
    monitor.start();
    try {
      await sleep(250);
      const blockUntil = performance.now() + 600;
      while (performance.now() < blockUntil) { /* a synchronous stall, as a CPU-bound burst would cause */ }
      await sleep(250);
      const worst = Math.max(...samples.map((s) => s.eventLoopDelayMs));
      assert.ok(worst >= 400, `a 600 ms stall shows as event-loop delay (saw ${worst} ms)`);
      const last = samples.at(-1);
      assert.ok(last && last.heapUsedBytes > 0 && last.heapLimitBytes > last.heapUsedBytes);
    } finally {
      monitor.stop();
    }
  });
});
