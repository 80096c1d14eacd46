import type { Tenant } from '../tenancy/types.js';
import { keepsService, type BillingChange } from './intent.js';

/**
 * applied: the tenant now reflects the event (possibly without any visible difference);
 * stale: the tenant already reflects a newer Stripe event, so this older one changes nothing;
 * skipped: the event is about another subscription than the one the tenant follows, or its rule
 * does not apply to the tenant's current status.
 */
export type ApplyOutcome = 'applied' | 'stale' | 'skipped';

export interface ApplyResult {
  readonly tenant: Tenant;
  readonly outcome: ApplyOutcome;
  readonly reason?: string;
  /** Whether `tenant` differs from the input (a write is needed). */
  readonly changed: boolean;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Applies one change to the current tenant record. Pure and idempotent: the change holds absolute
 * values, and applying the same change to its own result returns `changed: false`.
 *
 * Ordering: Stripe does not deliver in order. The tenant keeps `stripe_event_at`, the `created` of
 * the newest event it reflects; an event created earlier is `stale` and leaves plan and status
 * alone. Events created in the same second apply in arrival order. Linking a checkout's customer
 * is not subject to ordering (it is a fact, not a state), and a checkout does not move the mark
 * (see the end of applyChange).
 *
 * Subscription identity: the tenant follows `stripe_subscription_id`, the subscription that last
 * gave it service. An event that would end service (or an invoice event) for a different
 * subscription is `skipped`, so cancelling an old subscription after moving to a new one keeps the
 * new plan.
 */
export function applyChange(tenant: Tenant, change: BillingChange, now: Date): ApplyResult {
  const next: Mutable<Tenant> = { ...tenant };
  if (change.customerId !== undefined && (change.linkCustomer || tenant.stripe_customer_id === undefined)) {
    next.stripe_customer_id = change.customerId;
  }

  const result = (outcome: ApplyOutcome, reason?: string): ApplyResult => {
    const changed = differs(tenant, next);
    if (changed) next.updated_at = now.toISOString();
    return { tenant: changed ? next : tenant, outcome, changed, ...(reason !== undefined && { reason }) };
  };

  if (tenant.stripe_event_at !== undefined && change.created < tenant.stripe_event_at) {
    return result('stale', `an event created at ${tenant.stripe_event_at} is already applied`);
  }
  const current = tenant.stripe_subscription_id;
  const other = current !== undefined && change.subscriptionId !== undefined && change.subscriptionId !== current;
  const rule = change.rule;

  switch (rule.kind) {
    case 'checkout':
      if (rule.tier !== undefined) next.tier = rule.tier;
      if (change.subscriptionId !== undefined) next.stripe_subscription_id = change.subscriptionId;
      break;
    case 'subscription':
      if (keepsService(rule.status)) {
        next.subscription_status = rule.status;
        if (rule.tier !== undefined) next.tier = rule.tier;
        if (change.subscriptionId !== undefined) next.stripe_subscription_id = change.subscriptionId;
      } else {
        if (other) return result('skipped', `subscription ${change.subscriptionId ?? ''} is not the tenant's current one`);
        next.subscription_status = rule.status;
        next.tier = 'free';
      }
      break;
    case 'invoice_paid':
      if (other) return result('skipped', `invoice is for subscription ${change.subscriptionId ?? ''}, not the tenant's current one`);
      if (tenant.subscription_status === 'past_due' || tenant.subscription_status === 'unpaid') next.subscription_status = 'active';
      break;
    case 'invoice_failed':
      if (other) return result('skipped', `invoice is for subscription ${change.subscriptionId ?? ''}, not the tenant's current one`);
      if (tenant.subscription_status === 'active' || tenant.subscription_status === 'trialing') next.subscription_status = 'past_due';
      break;
  }
  // Even an event that changes nothing visible moves the ordering mark, so an older one that
  // arrives later (say, a payment failure before this payment) cannot undo it. A checkout does
  // not: Stripe creates the subscription (and its event) before the session completes, so the
  // subscription's own event is usually the older one, and it is that event, retried once the
  // checkout has linked the customer, that carries the plan's status; the mark orders the
  // subscription's states, of which a checkout holds none.
  if (rule.kind !== 'checkout') next.stripe_event_at = Math.max(tenant.stripe_event_at ?? 0, change.created);
  return result('applied');
}

function differs(a: Tenant, b: Tenant): boolean {
  return a.tier !== b.tier
    || a.subscription_status !== b.subscription_status
    || a.stripe_customer_id !== b.stripe_customer_id
    || a.stripe_subscription_id !== b.stripe_subscription_id
    || a.stripe_event_at !== b.stripe_event_at;
}
