import { z } from 'zod';
import { SCOPES, TIERS } from '../../config/schema.js';
import type { ApiKeyRecord, Tenant } from '../../domain/tenancy/types.js';

/** Tenant ids double as KV key names and file-store keys. */
export const TENANT_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** The 8-character prefix of `kg_<prefix>_<secret>`. */
export const KEY_PREFIX_PATTERN = /^[A-Za-z0-9]{8}$/;

export const SUBSCRIPTION_STATUSES = ['active', 'trialing', 'past_due', 'canceled', 'unpaid', 'none'] as const;

const timestamp = z.string().min(1).max(64);

export const tenantSchema = z.object({
  id: z.string().regex(TENANT_ID_PATTERN),
  name: z.string().min(1).max(200),
  tier: z.enum(TIERS),
  subscription_status: z.enum(SUBSCRIPTION_STATUSES),
  stripe_customer_id: z.string().min(1).max(255).optional(),
  stripe_subscription_id: z.string().min(1).max(255).optional(),
  stripe_event_at: z.number().int().nonnegative().optional(),
  created_at: timestamp,
  updated_at: timestamp,
});

export const apiKeyRecordSchema = z.object({
  prefix: z.string().regex(KEY_PREFIX_PATTERN),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  tenant: z.string().regex(TENANT_ID_PATTERN),
  tier: z.enum(TIERS),
  scopes: z.array(z.enum(SCOPES)),
  created_at: timestamp,
  revoked_at: timestamp.nullable(),
});

// Compile-time check that the schemas produce the domain types.
const _tenantCheck: (t: z.output<typeof tenantSchema>) => Tenant = (t) => t;
const _keyCheck: (k: z.output<typeof apiKeyRecordSchema>) => ApiKeyRecord = (k) => k;

/** Where store implementations report what they skip or recover from; pino loggers fit. */
export interface StoreLogger {
  warn(fields: Record<string, unknown>, message: string): void;
  info?(fields: Record<string, unknown>, message: string): void;
}

/** Default logger: one line on stderr per warning. */
export const stderrLogger: StoreLogger = {
  warn(fields, message) {
    const detail = Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : '';
    process.stderr.write(`warn: ${message}${detail}\n`);
  },
};

/** Parses a stored tenant; the error message lists what is wrong. */
export function parseTenant(value: unknown): { ok: true; value: Tenant } | { ok: false; error: string } {
  const result = tenantSchema.safeParse(value);
  return result.success ? { ok: true, value: result.data } : { ok: false, error: describeIssues(result.error) };
}

export function parseKeyRecord(value: unknown): { ok: true; value: ApiKeyRecord } | { ok: false; error: string } {
  const result = apiKeyRecordSchema.safeParse(value);
  return result.success ? { ok: true, value: result.data } : { ok: false, error: describeIssues(result.error) };
}

function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

/** Throws on a record that must not be written (callers' bugs, not stored data). */
export function assertValidTenant(tenant: Tenant): Tenant {
  const parsed = parseTenant(tenant);
  if (!parsed.ok) throw new TypeError(`invalid tenant ${JSON.stringify(tenant.id)}: ${parsed.error}`);
  return parsed.value;
}

export function assertValidKeyRecord(record: ApiKeyRecord): ApiKeyRecord {
  const parsed = parseKeyRecord(record);
  if (!parsed.ok) throw new TypeError(`invalid API key record ${JSON.stringify(record.prefix)}: ${parsed.error}`);
  return parsed.value;
}

export function byCreatedThen<T extends { created_at: string }>(id: (v: T) => string): (a: T, b: T) => number {
  return (a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : id(a) < id(b) ? -1 : id(a) > id(b) ? 1 : 0);
}
