import { createStackKey } from '../../../src/ops/stack/keys.js';
import { Stack } from '../../../src/ops/stack/stack.js';
import { inProcessStackTarget } from '../../../src/ops/chaos/targets.js';
import type { ChaosRunOptions } from '../../../src/ops/chaos/runner.js';
import type { StackTarget } from '../../../src/ops/chaos/scenario.js';
import { tempDir } from '../../harness/servers.js';

/** A real local stack (3 NATS nodes, Redis, 2 API instances) for chaos tests, with a tenant and two keys. */
export interface ChaosStack {
  readonly stack: Stack;
  readonly target: StackTarget;
  readonly tenant: string;
  readonly keys: readonly string[];
  /** Short-form run options: a scenario test spreads these and overrides what it needs. */
  readonly short: Omit<ChaosRunOptions, 'target'>;
  stop(): Promise<void>;
}

export async function startChaosStack(tenant = 'chaos-test'): Promise<ChaosStack> {
  const tmp = tempDir('kgents-chaos-');
  const stack = new Stack({
    dir: tmp.dir,
    env: { RATE_LIMITS: 'free=60,pro=600,enterprise=10000000', LOG_LEVEL: 'warn' },
  });
  await stack.start();
  const keys: string[] = [];
  for (let i = 0; i < 2; i++) {
    keys.push((await createStackKey({ natsUrls: stack.natsUrls, replicas: 3, tenant, tier: 'enterprise', scopes: ['read', 'write'] })).key);
  }
  const lines: string[] = [];
  return {
    stack, target: inProcessStackTarget(stack), tenant, keys,
    short: {
      durationMs: 8000, warmupMs: 3000, tailMs: 2000, rate: 30, concurrency: 4, keys, tenant, settleMs: 60_000,
      log: (line) => {
        lines.push(line);
        if (process.env.CHAOS_TEST_VERBOSE) process.stderr.write(`${line}\n`);
      },
    },
    async stop() {
      await stack.stop();
      tmp.remove();
    },
  };
}
