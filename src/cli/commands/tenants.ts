import { parseArgs } from 'node:util';
import { type Command, UsageError } from '../command.js';
import { out, parseCliArgs, printJson, publicKeyView, table, validTenantId, withKeyStore } from './keys.js';

const USAGE = `Usage:
  kgents tenants list [--json]
      Lists tenants with their tier, subscription status and number of keys.
  kgents tenants show ID [--json]
      Shows one tenant and its keys (prefixes, scopes, revocation).

Tenants are created by 'kgents keys create --tenant ID' (and by Stripe webhooks).`;

async function list(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCliArgs(() => parseArgs({
    args: [...args],
    options: { json: { type: 'boolean', default: false } },
    allowPositionals: true,
    strict: true,
  }));
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]?.slice(0, 40)}"`);
  return withKeyStore((store) => {
    const keys = store.listKeys();
    const rows = store.listTenants().map((tenant) => {
      const own = keys.filter((k) => k.tenant === tenant.id);
      return { tenant, keys: own.length, active_keys: own.filter((k) => k.revoked_at === null).length };
    });
    if (values.json) {
      printJson(rows.map((r) => ({ ...r.tenant, keys: r.keys, active_keys: r.active_keys })));
    } else if (rows.length === 0) {
      out("No tenants. Create one with 'kgents keys create --tenant ID'.");
    } else {
      out(table(
        ['ID', 'NAME', 'TIER', 'SUBSCRIPTION', 'KEYS', 'CREATED'],
        rows.map((r) => [r.tenant.id, r.tenant.name, r.tenant.tier, r.tenant.subscription_status, `${r.active_keys}/${r.keys}`, r.tenant.created_at]),
      ));
    }
    return Promise.resolve(0);
  });
}

async function show(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCliArgs(() => parseArgs({
    args: [...args],
    options: { json: { type: 'boolean', default: false } },
    allowPositionals: true,
    strict: true,
  }));
  if (positionals.length !== 1 || positionals[0] === undefined) throw new UsageError('give exactly one tenant id');
  const id = validTenantId(positionals[0], 'tenant id');
  return withKeyStore((store) => {
    const tenant = store.getTenant(id);
    if (!tenant) {
      process.stderr.write(`kgents tenants: no tenant "${id}" (see 'kgents tenants list')\n`);
      return Promise.resolve(1);
    }
    const keys = store.listKeys().filter((k) => k.tenant === id);
    if (values.json) {
      printJson({ ...tenant, keys: keys.map(publicKeyView) });
      return Promise.resolve(0);
    }
    const active = keys.filter((k) => k.revoked_at === null).length;
    out([
      `id:               ${tenant.id}`,
      `name:             ${tenant.name}`,
      `tier:             ${tenant.tier}`,
      `subscription:     ${tenant.subscription_status}`,
      `stripe customer:  ${tenant.stripe_customer_id ?? '-'}`,
      `created:          ${tenant.created_at}`,
      `updated:          ${tenant.updated_at}`,
      `keys:             ${keys.length} (${active} active)`,
      ...(keys.length > 0
        ? ['', table(['PREFIX', 'TIER', 'SCOPES', 'CREATED', 'REVOKED'], keys.map((k) => [k.prefix, k.tier, k.scopes.join(','), k.created_at, k.revoked_at ?? '-']))]
        : []),
    ].join('\n'));
    return Promise.resolve(0);
  });
}

export const tenantsCommand: Command = {
  name: 'tenants',
  summary: 'List tenants and show one with its keys',
  usage: USAGE,
  run(args) {
    const [sub, ...rest] = args;
    switch (sub) {
      case 'list':
      case 'ls':
        return list(rest);
      case 'show':
        return show(rest);
      case undefined:
        return Promise.reject(new UsageError('missing subcommand: list or show'));
      default:
        return Promise.reject(new UsageError(`unknown subcommand "${sub.slice(0, 40)}": use list or show`));
    }
  },
};
