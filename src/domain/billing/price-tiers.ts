import { ConfigError } from '../../config/load.js';
import { TIERS, type Tier } from '../../config/schema.js';

/** Stripe price id → tier, from STRIPE_PRICE_TIERS. */
export type PriceTiers = ReadonlyMap<string, Tier>;

const PRICE_ID = /^[A-Za-z0-9_-]{1,255}$/;

/**
 * Parses `price_123=pro,price_456=enterprise`. Empty input gives an empty map (every subscription
 * then uses its `metadata.tier`). Throws a ConfigError naming the bad part, so a typo stops start-up
 * instead of silently leaving customers on the wrong plan.
 */
export function parsePriceTiers(raw: string): PriceTiers {
  const map = new Map<string, Tier>();
  for (const part of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.lastIndexOf('=');
    const price = eq > 0 ? part.slice(0, eq).trim() : '';
    const tier = eq > 0 ? part.slice(eq + 1).trim() : '';
    if (!PRICE_ID.test(price) || !isTier(tier)) {
      throw new ConfigError([`STRIPE_PRICE_TIERS: expected price_id=tier pairs with tier one of ${TIERS.join(', ')}, got "${part.slice(0, 80)}"`]);
    }
    const previous = map.get(price);
    if (previous !== undefined && previous !== tier) {
      throw new ConfigError([`STRIPE_PRICE_TIERS: price "${price}" is mapped to both ${previous} and ${tier}`]);
    }
    map.set(price, tier);
  }
  return map;
}

export function isTier(value: unknown): value is Tier {
  return typeof value === 'string' && (TIERS as readonly string[]).includes(value);
}

/** free < pro < enterprise. */
export function higherTier(a: Tier | undefined, b: Tier): Tier {
  if (a === undefined) return b;
  return TIERS.indexOf(b) > TIERS.indexOf(a) ? b : a;
}
