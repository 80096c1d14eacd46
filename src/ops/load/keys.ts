import { setTimeout as sleep } from 'node:timers/promises';
import { openConfiguredKeyStore } from '../../adapters/nats/key-store-factory.js';
import { cliConfig } from '../../cli/cli-config.js';
import { loadConfig } from '../../config/load.js';
import type { Tier } from '../../config/schema.js';
import { generateApiKey } from '../../domain/tenancy/api-key.js';
import type { KeyStore } from '../../domain/tenancy/types.js';
import { httpGet } from './target.js';

/** API keys made for one run: a fresh tenant with `count` read+write keys; revoked afterwards. */
export interface RunKeys {
  readonly tenant: string;
  readonly keys: readonly string[];
  readonly prefixes: readonly string[];
  /** Where they were stored (NATS servers or a file). */
  readonly location: string;
  revoke(): Promise<void>;
}

async function withStore<T>(notice: (line: string) => void, stackNatsUrls: readonly string[] | undefined, fn: (store: KeyStore, location: string) => Promise<T>): Promise<T> {
  // The same store `kgents keys create` would use: NATS_URLS, the local stack's NATS (when it is the
  // target), a running kgents serve's nats-server, or DATA_DIR/keys.json.
  const env = loadConfig();
  const useStack = env.NATS_URLS.length === 0 && env.KEY_STORE !== 'file' && stackNatsUrls !== undefined && stackNatsUrls.length > 0;
  const config = useStack ? loadConfig(process.env, { NATS_URLS: stackNatsUrls.join(','), KEY_STORE: 'nats', NATS_REPLICAS: String(Math.min(3, stackNatsUrls.length)) }) : env.KEY_STORE === 'file' ? env : cliConfig();
  const opened = await openConfiguredKeyStore(config, { clientName: 'kgents-load', notice });
  try {
    return await fn(opened.store, opened.location);
  } finally {
    await opened.close();
  }
}

export async function createRunKeys(options: { count: number; tier: Tier; tenant: string; notice: (line: string) => void; stackNatsUrls?: readonly string[] }): Promise<RunKeys> {
  const { keys, prefixes, location } = await withStore(options.notice, options.stackNatsUrls, async (store, location) => {
    const now = new Date().toISOString();
    if (!store.getTenant(options.tenant)) {
      await store.putTenant({ id: options.tenant, name: `load test ${options.tenant}`, tier: options.tier, subscription_status: 'none', created_at: now, updated_at: now });
    }
    const made: string[] = [];
    const madePrefixes: string[] = [];
    for (let i = 0; i < options.count; i++) {
      const { key, prefix, hash } = generateApiKey();
      await store.putKey({ prefix, hash, tenant: options.tenant, tier: options.tier, scopes: ['read', 'write'], created_at: now, revoked_at: null });
      made.push(key);
      madePrefixes.push(prefix);
    }
    return { keys: made, prefixes: madePrefixes, location };
  });
  return {
    tenant: options.tenant, keys, prefixes, location,
    revoke: () => withStore(() => undefined, options.stackNatsUrls, async (store) => {
      for (const prefix of prefixes) await store.revokeKey(prefix);
    }),
  };
}

/**
 * Waits until the target accepts `key` (key stores reach every instance within about a second).
 * Resolves the last status seen: 401 means the target does not know the key (another key store).
 */
export async function waitForKey(target: string, key: string, timeoutMs = 10_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let status = 0;
  while (Date.now() < deadline) {
    const r = await httpGet(`${target}/v1/agentese/resolve?path=world.house`, { headers: { 'x-api-key': key }, timeoutMs: 3000 });
    status = r.status ?? 0;
    if (r.ok && status !== 401) return status;
    await sleep(200);
  }
  return status;
}
