import type { Scope, Tier } from '../../src/config/schema.js';
import { generateApiKey } from '../../src/domain/tenancy/api-key.js';
import type { KeyStore } from '../../src/domain/tenancy/types.js';

/** Creates a tenant (if new) and a key in any KeyStore; returns the full key. */
export async function createKey(store: KeyStore, tenant: string, tier: Tier, scopes: Scope[]): Promise<{ key: string; prefix: string }> {
  const now = new Date().toISOString();
  if (!store.getTenant(tenant)) {
    await store.putTenant({ id: tenant, name: tenant, tier, subscription_status: 'none', created_at: now, updated_at: now });
  }
  const { key, prefix, hash } = generateApiKey();
  await store.putKey({ prefix, hash, tenant, tier, scopes, created_at: now, revoked_at: null });
  return { key, prefix };
}
