import { openConfiguredKeyStore } from '../../adapters/nats/key-store-factory.js';
import type { Scope, Tier } from '../../config/schema.js';
import { generateApiKey } from '../../domain/tenancy/api-key.js';
import type { ApiKeyRecord, Tenant } from '../../domain/tenancy/types.js';

export interface StackKeyRequest {
  readonly natsUrls: readonly string[];
  /** Replicas of the key buckets if they do not exist yet (the stack creates them at start). */
  readonly replicas: number;
  readonly tenant: string;
  /** Tier of a new tenant; an existing tenant keeps its tier. */
  readonly tier: Tier;
  readonly scopes: readonly Scope[];
}

export interface StackKey {
  readonly key: string;
  readonly prefix: string;
  readonly tenant: string;
  readonly tier: Tier;
  readonly scopes: Scope[];
  readonly created_tenant: boolean;
}

/**
 * Creates an API key (and its tenant if needed) in the key store of a stack's NATS cluster, as
 * `kgents keys create` does with NATS_URLS set; every API instance sees it within a second.
 */
export async function createStackKey(request: StackKeyRequest): Promise<StackKey> {
  const opened = await openConfiguredKeyStore(
    { KEY_STORE: 'nats', NATS_URLS: [...request.natsUrls], NATS_REPLICAS: request.replicas, DATA_DIR: '.' },
    { clientName: 'kgents-stack key' },
  );
  try {
    const store = opened.store;
    const now = new Date().toISOString();
    let tenant: Tenant | undefined = store.getTenant(request.tenant);
    const createdTenant = tenant === undefined;
    if (!tenant) {
      tenant = { id: request.tenant, name: request.tenant, tier: request.tier, subscription_status: 'none', created_at: now, updated_at: now };
      await store.putTenant(tenant);
    }
    let generated = generateApiKey();
    while (store.getKey(generated.prefix)) generated = generateApiKey();
    const record: ApiKeyRecord = {
      prefix: generated.prefix, hash: generated.hash, tenant: tenant.id, tier: tenant.tier, scopes: [...request.scopes], created_at: now, revoked_at: null,
    };
    await store.putKey(record);
    return { key: generated.key, prefix: record.prefix, tenant: tenant.id, tier: tenant.tier, scopes: [...request.scopes], created_tenant: createdTenant };
  } finally {
    await opened.close();
  }
}
