import { openConfiguredKeyStore } from '../../adapters/nats/key-store-factory.js';
import { createRunKeys, waitForKey } from '../load/keys.js';
import type { Scenario } from '../load/scenarios.js';
import { createStackKey } from '../stack/keys.js';

/** API keys the run's load uses; made ones are revoked afterwards. */
export interface RolloutKeys {
  readonly keys: readonly string[];
  /** Where made keys live (`stack NATS ...`, NATS_URLS...); undefined for given keys. */
  readonly location?: string;
  revoke(): Promise<void>;
}

/** Enterprise keys allow 6000 requests a minute by default; plan for half of that per key. */
export function keysNeeded(rate: number, scenarios: readonly Scenario[]): number {
  const weight = scenarios.reduce((a, s) => a + s.weight, 0);
  const auth = scenarios.filter((s) => s.auth).reduce((a, s) => a + s.weight, 0);
  return auth === 0 ? 0 : Math.max(1, Math.ceil((rate * auth) / weight / 50));
}

export function runTenant(now: Date = new Date()): string {
  return `rollout-${now.toISOString().replace(/[^0-9]/g, '').slice(0, 14)}`;
}

/** Keys in a local stack's key store (its NATS cluster), through createStackKey as `kgents stack key` does. */
export async function createStackRunKeys(natsUrls: readonly string[], count: number, tenant: string): Promise<RolloutKeys> {
  const replicas = natsUrls.length >= 3 ? 3 : 1;
  const made: { key: string; prefix: string }[] = [];
  for (let i = 0; i < count; i++) {
    made.push(await createStackKey({ natsUrls, replicas, tenant, tier: 'enterprise', scopes: ['read', 'write'] }));
  }
  return {
    keys: made.map((k) => k.key), location: `the stack's NATS (${natsUrls[0] ?? '?'})`,
    revoke: async () => {
      const opened = await openConfiguredKeyStore(
        { KEY_STORE: 'nats', NATS_URLS: [...natsUrls], NATS_REPLICAS: replicas, DATA_DIR: '.' }, { clientName: 'kgents-rollout' },
      );
      try {
        for (const k of made) await opened.store.revokeKey(k.prefix);
      } finally {
        await opened.close();
      }
    },
  };
}

/** Keys in the configured key store (NATS_URLS): for a remote target whose NATS this machine can reach. */
export async function createConfiguredRunKeys(count: number, tenant: string, notice: (line: string) => void): Promise<RolloutKeys> {
  const made = await createRunKeys({ count, tier: 'enterprise', tenant, notice });
  return { keys: made.keys, location: made.location, revoke: () => made.revoke() };
}

export function givenKeys(keys: readonly string[]): RolloutKeys {
  return { keys, revoke: () => Promise.resolve() };
}

/** Waits until the target accepts the first key; false when it answers 401 (another key store) or nothing. */
export async function keyAccepted(target: string, keys: RolloutKeys, timeoutMs = 15_000): Promise<boolean> {
  const first = keys.keys[0];
  if (first === undefined) return true;
  const status = await waitForKey(target, first, timeoutMs);
  return status !== 401 && status !== 0;
}
