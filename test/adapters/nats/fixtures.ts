import { setTimeout as sleep } from 'node:timers/promises';
import type { StoreLogger } from '../../../src/adapters/nats/records.js';
import type { Scope, Tier } from '../../../src/config/schema.js';
import { generateApiKey } from '../../../src/domain/tenancy/api-key.js';
import type { ApiKeyRecord, Tenant } from '../../../src/domain/tenancy/types.js';

export function makeTenant(id: string, tier: Tier = 'free'): Tenant {
  const now = new Date().toISOString();
  return { id, name: `Tenant ${id}`, tier, subscription_status: 'none', created_at: now, updated_at: now };
}

export function makeKey(tenant: string, scopes: Scope[] = ['read', 'write'], tier: Tier = 'free'): ApiKeyRecord & { key: string } {
  const { key, prefix, hash } = generateApiKey();
  return { key, prefix, hash, tenant, tier, scopes, created_at: new Date().toISOString(), revoked_at: null };
}

/** Strips the secret before storing. */
export function record(k: ApiKeyRecord & { key?: string }): ApiKeyRecord {
  const { key: _key, ...rest } = k;
  return rest;
}

/** Polls `check` every few ms; resolves with the time it took, rejects after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 5000, everyMs = 5): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (check()) return performance.now() - started;
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Retries an async action until it succeeds (a server coming back), or rethrows the last error. */
export async function retry<T>(action: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await action();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(100);
    }
  }
}

export function captureLogger(): StoreLogger & { warnings: { fields: Record<string, unknown>; message: string }[] } {
  const warnings: { fields: Record<string, unknown>; message: string }[] = [];
  return {
    warnings,
    warn(fields, message) {
      warnings.push({ fields, message });
    },
  };
}
