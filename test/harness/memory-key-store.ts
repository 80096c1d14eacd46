import type { ApiKeyRecord, KeyStore, Tenant } from '../../src/domain/tenancy/types.js';

/** The KeyStore port held in a Map: for HTTP tests that are about the API, not the store. */
export class MemoryKeyStore implements KeyStore {
  readonly kind = 'file' as const;
  private readonly keys = new Map<string, ApiKeyRecord>();
  private readonly tenants = new Map<string, Tenant>();

  start(): Promise<void> {
    return Promise.resolve();
  }
  getKey(prefix: string): ApiKeyRecord | undefined {
    return this.keys.get(prefix);
  }
  getTenant(id: string): Tenant | undefined {
    return this.tenants.get(id);
  }
  listKeys(): ApiKeyRecord[] {
    return [...this.keys.values()];
  }
  listTenants(): Tenant[] {
    return [...this.tenants.values()];
  }
  putKey(record: ApiKeyRecord): Promise<void> {
    this.keys.set(record.prefix, record);
    return Promise.resolve();
  }
  putTenant(tenant: Tenant): Promise<void> {
    this.tenants.set(tenant.id, tenant);
    return Promise.resolve();
  }
  revokeKey(prefix: string, at = new Date()): Promise<boolean> {
    const record = this.keys.get(prefix);
    if (!record) return Promise.resolve(false);
    this.keys.set(prefix, { ...record, revoked_at: at.toISOString() });
    return Promise.resolve(true);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
