import type { IncomingHttpHeaders } from 'node:http';
import type { Scope } from '../config/schema.js';
import { parseApiKey, keyMatchesHash } from '../domain/tenancy/api-key.js';
import type { KeyStore, Principal } from '../domain/tenancy/types.js';
import { ApiError } from '../errors/api-error.js';

function presentedKey(headers: IncomingHttpHeaders): string | undefined {
  const header = headers['x-api-key'];
  if (typeof header === 'string' && header !== '') return header.trim();
  const auth = headers.authorization;
  if (typeof auth === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (match?.[1]) return match[1];
  }
  return undefined;
}

/**
 * Authenticates from the key store's in-memory view: no network round trip. The hash comparison is
 * constant-time; an unknown prefix and a wrong secret produce the same error so prefixes cannot be probed.
 */
export function authenticate(keys: KeyStore, headers: IncomingHttpHeaders, required: Scope): Principal {
  const raw = presentedKey(headers);
  if (raw === undefined) {
    throw new ApiError('ERR_AUTH_MISSING_KEY', 'Send an API key in X-API-Key or Authorization: Bearer.', undefined, { 'www-authenticate': 'Bearer' });
  }
  const parsed = parseApiKey(raw);
  const record = parsed ? keys.getKey(parsed.prefix) : undefined;
  if (!parsed || !record || !keyMatchesHash(raw, record.hash)) {
    throw new ApiError('ERR_AUTH_INVALID_KEY', 'The API key is not valid.', undefined, { 'www-authenticate': 'Bearer error="invalid_token"' });
  }
  if (record.revoked_at !== null) {
    throw new ApiError('ERR_AUTH_REVOKED_KEY', `The API key ${record.prefix} was revoked at ${record.revoked_at}.`, undefined, { 'www-authenticate': 'Bearer error="invalid_token"' });
  }
  const scopes = record.scopes;
  if (!scopes.includes(required) && !scopes.includes('admin')) {
    throw new ApiError('ERR_AUTH_INSUFFICIENT_SCOPE', `This endpoint needs the "${required}" scope; the key has: ${scopes.join(', ') || 'none'}.`, { required, granted: [...scopes] });
  }
  // The tenant's tier wins over the key's: a Stripe plan change must reach every existing key.
  const tenant = keys.getTenant(record.tenant);
  return { tenant: record.tenant, keyPrefix: record.prefix, tier: tenant?.tier ?? record.tier, scopes };
}
