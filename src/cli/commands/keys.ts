import { parseArgs } from 'node:util';
import { openConfiguredKeyStore } from '../../adapters/nats/key-store-factory.js';
import { KEY_PREFIX_PATTERN, TENANT_ID_PATTERN } from '../../adapters/nats/records.js';
import { loadConfig } from '../../config/load.js';
import { cliConfig } from '../cli-config.js';
import { SCOPES, TIERS, type Scope, type Tier } from '../../config/schema.js';
import { generateApiKey, parseApiKey } from '../../domain/tenancy/api-key.js';
import type { ApiKeyRecord, KeyStore, Tenant } from '../../domain/tenancy/types.js';
import { type Command, UsageError } from '../command.js';

// ---- helpers shared with `kgents tenants` -------------------------------------------------------

/** Runs node:util parseArgs, turning its errors (unknown option, missing value) into UsageError. */
export function parseCliArgs<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    const code: unknown = err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined;
    if (err instanceof Error && typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
      throw new UsageError(err.message);
    }
    throw err;
  }
}

/** Opens the configured key store (NATS KV, or the file under DATA_DIR), runs `fn`, always closes it. */
export async function withKeyStore<T>(fn: (store: KeyStore) => Promise<T>): Promise<T> {
  // A `kgents serve` on this DATA_DIR running its own nats-server keeps the keys there.
  const config = loadConfig().KEY_STORE === 'file' ? loadConfig() : cliConfig();
  const opened = await openConfiguredKeyStore(config, {
    clientName: 'kgents-cli',
    notice: (line) => process.stderr.write(`kgents: ${line}\n`),
  });
  try {
    return await fn(opened.store);
  } finally {
    await opened.close();
  }
}

export function validTenantId(raw: string, what: string): string {
  if (!TENANT_ID_PATTERN.test(raw)) {
    throw new UsageError(`${what} "${raw.slice(0, 80)}" is not a valid tenant id: use 1-63 lowercase letters, digits, "_" or "-", starting with a letter or digit`);
  }
  return raw;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** Left-aligned columns separated by two spaces. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** What the CLI shows of a key record: everything but the hash. */
export function publicKeyView(record: ApiKeyRecord): { prefix: string; tenant: string; tier: Tier; scopes: Scope[]; created_at: string; revoked_at: string | null } {
  return {
    prefix: record.prefix,
    tenant: record.tenant,
    tier: record.tier,
    scopes: [...record.scopes],
    created_at: record.created_at,
    revoked_at: record.revoked_at,
  };
}

// ---- kgents keys ----------------------------------------------------------------------------------

const USAGE = `Usage:
  kgents keys create --tenant ID [--tier free|pro|enterprise] [--scopes read,write[,admin]] [--name NAME] [--json]
      Creates an API key (and the tenant, if it does not exist yet) and prints the key once.
      --tier    tier of a new tenant (default free); an existing tenant keeps its tier
      --scopes  comma-separated scopes (default read,write)
      --name    display name of a new tenant (default: its id)
      --json    print {key, prefix, tenant, tier, scopes} as JSON
  kgents keys list [--tenant ID] [--json]
      Lists keys (prefix, tenant, tier, scopes, created, revoked); never the keys themselves.
  kgents keys revoke PREFIX [--json]
      Revokes a key by its 8-character prefix (the part after "kg_"); every instance refuses it within a second.

Storage: NATS KV at NATS_URLS. With NATS_URLS empty: the nats-server of a running 'kgents serve' on the
same DATA_DIR if it started one, else DATA_DIR/keys.json (also with KEY_STORE=file).`;

function parseTier(raw: string | undefined): Tier | undefined {
  if (raw === undefined) return undefined;
  const tier = TIERS.find((t) => t === raw);
  if (!tier) throw new UsageError(`--tier must be one of ${TIERS.join(', ')} (got "${raw.slice(0, 40)}")`);
  return tier;
}

function parseScopes(raw: string | undefined): Scope[] {
  if (raw === undefined) return ['read', 'write'];
  const parts = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (parts.length === 0) throw new UsageError(`--scopes needs at least one of ${SCOPES.join(', ')}`);
  const unknown = parts.filter((p) => !SCOPES.some((s) => s === p));
  if (unknown.length > 0) {
    throw new UsageError(`--scopes: unknown scope${unknown.length > 1 ? 's' : ''} ${unknown.map((u) => `"${u.slice(0, 40)}"`).join(', ')}; valid: ${SCOPES.join(', ')}`);
  }
  return SCOPES.filter((s) => parts.includes(s));
}

function prefixArgument(raw: string): string {
  const parsed = parseApiKey(raw);
  if (parsed) return parsed.prefix;
  const bare = raw.startsWith('kg_') ? raw.slice(3) : raw;
  if (!KEY_PREFIX_PATTERN.test(bare)) {
    // never echo something long: it might be a (mistyped) secret
    const shown = raw.length <= 16 ? ` "${raw}"` : '';
    throw new UsageError(`${shown ? `${shown.trim()} is` : 'that is'} not a key prefix: give the 8 letters and digits after "kg_", as shown by 'kgents keys list'`);
  }
  return bare;
}

async function create(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCliArgs(() => parseArgs({
    args: [...args],
    options: {
      tenant: { type: 'string' },
      tier: { type: 'string' },
      scopes: { type: 'string' },
      name: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    allowPositionals: true,
    strict: true,
  }));
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]?.slice(0, 40)}"`);
  if (values.tenant === undefined || values.tenant === '') throw new UsageError('--tenant is required');
  const tenantId = validTenantId(values.tenant, '--tenant');
  const requestedTier = parseTier(values.tier);
  const scopes = parseScopes(values.scopes);
  const name = values.name?.trim();
  if (name !== undefined && (name === '' || name.length > 200)) throw new UsageError('--name must be 1-200 characters');

  return withKeyStore(async (store) => {
    const now = new Date().toISOString();
    let tenant: Tenant | undefined = store.getTenant(tenantId);
    let createdTenant = false;
    if (!tenant) {
      tenant = {
        id: tenantId,
        name: name ?? tenantId,
        tier: requestedTier ?? 'free',
        subscription_status: 'none',
        created_at: now,
        updated_at: now,
      };
      await store.putTenant(tenant);
      createdTenant = true;
    } else if (requestedTier !== undefined && requestedTier !== tenant.tier) {
      process.stderr.write(`kgents keys: note: tenant "${tenantId}" is on tier ${tenant.tier}; the key gets that tier (--tier ${requestedTier} applies to new tenants only)\n`);
    }
    let generated = generateApiKey();
    while (store.getKey(generated.prefix)) generated = generateApiKey();
    const record: ApiKeyRecord = {
      prefix: generated.prefix,
      hash: generated.hash,
      tenant: tenantId,
      tier: tenant.tier,
      scopes,
      created_at: now,
      revoked_at: null,
    };
    await store.putKey(record);
    if (values.json) {
      printJson({ key: generated.key, prefix: record.prefix, tenant: tenantId, tier: record.tier, scopes: [...scopes] });
    } else {
      out([
        ...(createdTenant ? [`Created tenant "${tenantId}" (tier ${tenant.tier}).`] : []),
        `Created API key ${record.prefix} for tenant "${tenantId}" (tier ${record.tier}, scopes ${scopes.join(',')}):`,
        '',
        `  ${generated.key}`,
        '',
        'Store it now: it will not be shown again (only its hash is kept).',
      ].join('\n'));
    }
    return 0;
  });
}

async function list(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCliArgs(() => parseArgs({
    args: [...args],
    options: { tenant: { type: 'string' }, json: { type: 'boolean', default: false } },
    allowPositionals: true,
    strict: true,
  }));
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]?.slice(0, 40)}"`);
  const tenantFilter = values.tenant === undefined ? undefined : validTenantId(values.tenant, '--tenant');
  return withKeyStore((store) => {
    const keys = store.listKeys().filter((k) => tenantFilter === undefined || k.tenant === tenantFilter);
    if (values.json) {
      printJson(keys.map(publicKeyView));
    } else if (keys.length === 0) {
      out(tenantFilter === undefined ? 'No API keys.' : `No API keys for tenant "${tenantFilter}".`);
    } else {
      out(table(
        ['PREFIX', 'TENANT', 'TIER', 'SCOPES', 'CREATED', 'REVOKED'],
        keys.map((k) => [k.prefix, k.tenant, k.tier, k.scopes.join(','), k.created_at, k.revoked_at ?? '-']),
      ));
    }
    return Promise.resolve(0);
  });
}

async function revoke(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCliArgs(() => parseArgs({
    args: [...args],
    options: { json: { type: 'boolean', default: false } },
    allowPositionals: true,
    strict: true,
  }));
  if (positionals.length !== 1 || positionals[0] === undefined) throw new UsageError('give exactly one key prefix to revoke');
  const prefix = prefixArgument(positionals[0]);
  return withKeyStore(async (store) => {
    const before = store.getKey(prefix);
    const alreadyRevoked = before?.revoked_at !== null && before?.revoked_at !== undefined;
    const found = before !== undefined && (alreadyRevoked || (await store.revokeKey(prefix)));
    const after = store.getKey(prefix);
    if (!found || !after) {
      process.stderr.write(`kgents keys: no API key with prefix ${prefix} (see 'kgents keys list')\n`);
      return 1;
    }
    if (values.json) {
      printJson({ prefix, tenant: after.tenant, revoked_at: after.revoked_at, already_revoked: alreadyRevoked });
    } else if (alreadyRevoked) {
      out(`API key ${prefix} (tenant "${after.tenant}") was already revoked at ${after.revoked_at ?? '?'}.`);
    } else {
      out(`Revoked API key ${prefix} (tenant "${after.tenant}") at ${after.revoked_at ?? '?'}.`);
    }
    return 0;
  });
}

export const keysCommand: Command = {
  name: 'keys',
  summary: 'Create, list and revoke API keys',
  usage: USAGE,
  run(args) {
    const [sub, ...rest] = args;
    switch (sub) {
      case 'create':
        return create(rest);
      case 'list':
      case 'ls':
        return list(rest);
      case 'revoke':
        return revoke(rest);
      case undefined:
        return Promise.reject(new UsageError('missing subcommand: create, list or revoke'));
      default:
        return Promise.reject(new UsageError(`unknown subcommand "${sub.slice(0, 40)}": use create, list or revoke`));
    }
  },
};
