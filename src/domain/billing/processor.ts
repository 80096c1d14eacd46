import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { applyChange, type ApplyResult } from './apply.js';
import { billingIntent, type BillingChange } from './intent.js';
import type { BillingAudit, BillingBackend, LedgerClaim, RecordedOutcome, TenantDirectory } from './ports.js';
import type { PriceTiers } from './price-tiers.js';
import type { StripeEvent } from './stripe-event.js';

export interface ProcessorOptions {
  /** This instance's name, in claim owners and audit records. */
  readonly instance: string;
  readonly prices: PriceTiers;
  /** How long a processing claim holds before another instance may take it over. Default 60 000 ms. */
  readonly leaseMs?: number;
  /** How long a delivery waits for another instance processing the same event before answering "retry". Default 2000 ms. */
  readonly busyWaitMs?: number;
  /**
   * An event whose customer is not linked to any tenant yet (its checkout.session.completed has not
   * arrived) is answered "retry" while younger than this, then recorded as `unmatched`. Default 3600 s.
   */
  readonly unmatchedRetryS?: number;
  readonly now?: () => Date;
}

export type RetryReason =
  /** Another instance holds the claim right now. */
  | 'busy'
  /** The customer is not linked to a tenant yet; Stripe's retry will find it once checkout completes. */
  | 'deferred'
  /** Applying or recording failed; nothing is marked done, the retry runs it again. */
  | 'failed'
  /** No durable backend (no NATS, or NATS unreachable). */
  | 'unavailable';

export type WebhookResult =
  | { readonly kind: 'recorded'; readonly outcome: RecordedOutcome; readonly tenant?: string; readonly changed: boolean; readonly reason?: string }
  | { readonly kind: 'duplicate'; readonly outcome: RecordedOutcome; readonly tenant?: string }
  | { readonly kind: 'ignored'; readonly reason: string }
  | { readonly kind: 'retry'; readonly reason: RetryReason; readonly message: string; readonly retryAfterS: number; readonly error?: unknown };

type Resolved = { readonly tenantId: string; readonly via: 'reference' | 'index' | 'scan' | 'metadata' };

/**
 * Turns one verified Stripe event into exactly one durable effect on the tenant:
 *
 * 1. decide the change from the event alone (billingIntent); unhandled types are `ignored`;
 * 2. claim the event id in the shared ledger (atomic create): a second delivery finds it `done`
 *    (duplicate) or `busy` (another instance is on it: wait briefly, then "retry");
 * 3. find the tenant, apply the change with compare-and-set, link the customer, publish the
 *    audit record (deduplicated by event id), mark the ledger entry done;
 * 4. any failure gives the claim back and answers "retry", so Stripe delivers again.
 *
 * The effect is a set of absolute values, so a step repeated after a crash (a claim taken over
 * when its lease expired) changes nothing twice.
 */
export class StripeWebhookProcessor {
  private readonly owner: string;
  private readonly leaseMs: number;
  private readonly busyWaitMs: number;
  private readonly unmatchedRetryS: number;
  private readonly now: () => Date;

  constructor(
    private readonly backend: BillingBackend | undefined,
    private readonly tenants: TenantDirectory,
    private readonly options: ProcessorOptions,
  ) {
    this.owner = `${options.instance || 'kgents'}/${randomUUID().slice(0, 8)}`;
    this.leaseMs = options.leaseMs ?? 60_000;
    this.busyWaitMs = options.busyWaitMs ?? 2000;
    this.unmatchedRetryS = options.unmatchedRetryS ?? 3600;
    this.now = options.now ?? (() => new Date());
  }

  async process(event: StripeEvent): Promise<WebhookResult> {
    const intent = billingIntent(event, this.options.prices);
    if (intent.kind === 'ignore') return { kind: 'ignored', reason: intent.reason };
    const backend = this.backend;
    if (!backend) {
      return retry('unavailable', 'Stripe webhooks need NATS JetStream to be recorded durably; this instance runs without it.', 60);
    }
    if (!backend.available()) return retry('unavailable', 'The event store (NATS) is unreachable; retry later.', 30);
    try {
      await backend.ready();
    } catch (error) {
      return retry('unavailable', 'The event store (NATS) is not ready; retry later.', 30, error);
    }

    const deadline = performance.now() + this.busyWaitMs;
    for (;;) {
      let claimed;
      try {
        claimed = await backend.claim(event.id, this.owner, event.type, this.leaseMs);
      } catch (error) {
        return retry('failed', 'The event could not be claimed in the event store; retry later.', 10, error);
      }
      if (claimed.kind === 'done') {
        return { kind: 'duplicate', outcome: claimed.record.outcome, ...(claimed.record.tenant !== undefined && { tenant: claimed.record.tenant }) };
      }
      if (claimed.kind === 'claimed') return this.run(backend, event, intent.change, claimed.claim);
      if (performance.now() >= deadline) {
        return retry('busy', 'This event is being processed by another instance; retry later.', 5);
      }
      await sleep(50);
    }
  }

  private async run(backend: BillingBackend, event: StripeEvent, change: BillingChange, claim: LedgerClaim): Promise<WebhookResult> {
    try {
      const resolved = await this.resolveTenant(backend, change);
      let applied: ApplyResult | undefined;
      const update = resolved && await backend.updateTenant(resolved.tenantId, (current) => {
        applied = applyChange(current, change, this.now());
        return applied.changed ? applied.tenant : undefined;
      });
      if (!resolved || !update || !applied) return await this.unmatched(backend, event, change, claim);

      if (change.customerId !== undefined && resolved.via !== 'index' && update.after.stripe_customer_id === change.customerId) {
        await backend.linkCustomer(change.customerId, update.after.id, event.id);
      }
      await backend.audit(this.auditRecord(event, change, applied.outcome, {
        tenant: update.after.id,
        changed: update.written,
        before: { tier: update.before.tier, subscription_status: update.before.subscription_status },
        after: { tier: update.after.tier, subscription_status: update.after.subscription_status },
        ...(applied.reason !== undefined && { reason: applied.reason }),
      }));
      await backend.finish(claim, { state: 'done', outcome: applied.outcome, type: event.type, tenant: update.after.id, at: this.now().toISOString(), owner: this.owner });
      return { kind: 'recorded', outcome: applied.outcome, tenant: update.after.id, changed: update.written, ...(applied.reason !== undefined && { reason: applied.reason }) };
    } catch (error) {
      await backend.release(claim).catch(() => undefined);
      return retry('failed', 'The event could not be applied and recorded; retry later.', 10, error);
    }
  }

  private async unmatched(backend: BillingBackend, event: StripeEvent, change: BillingChange, claim: LedgerClaim): Promise<WebhookResult> {
    const ageS = this.now().getTime() / 1000 - event.created;
    if (ageS < this.unmatchedRetryS) {
      await backend.release(claim).catch(() => undefined);
      const who = change.tenantId !== undefined ? `tenant ${change.tenantId} does not exist` : 'its Stripe customer is not linked to a tenant yet';
      return retry('deferred', `Event not applied: ${who}; retry later.`, 60);
    }
    const reason = change.tenantId !== undefined ? 'no such tenant' : 'customer not linked to any tenant';
    await backend.audit(this.auditRecord(event, change, 'unmatched', { changed: false, reason }));
    await backend.finish(claim, { state: 'done', outcome: 'unmatched', type: event.type, at: this.now().toISOString(), owner: this.owner });
    return { kind: 'recorded', outcome: 'unmatched', changed: false, reason };
  }

  /** The checkout's own tenant reference, else the customer index, else a tenant already holding the customer id, else metadata.tenant_id. */
  private async resolveTenant(backend: BillingBackend, change: BillingChange): Promise<Resolved | undefined> {
    if (change.tenantId !== undefined) return { tenantId: change.tenantId, via: 'reference' };
    if (change.customerId !== undefined) {
      const indexed = await backend.tenantOfCustomer(change.customerId);
      if (indexed !== undefined) return { tenantId: indexed, via: 'index' };
      const holder = this.tenants.listTenants().find((t) => t.stripe_customer_id === change.customerId);
      if (holder) return { tenantId: holder.id, via: 'scan' };
    }
    if (change.tenantHint !== undefined) return { tenantId: change.tenantHint, via: 'metadata' };
    return undefined;
  }

  private auditRecord(event: StripeEvent, change: BillingChange, outcome: RecordedOutcome, extra: Partial<BillingAudit> & { changed: boolean }): BillingAudit {
    return {
      event_id: event.id,
      type: event.type,
      created: event.created,
      livemode: event.livemode,
      outcome,
      ...(change.customerId !== undefined && { customer: change.customerId }),
      ...(change.subscriptionId !== undefined && { subscription: change.subscriptionId }),
      ...extra,
      instance: this.options.instance,
      recorded_at: this.now().toISOString(),
    };
  }
}

function retry(reason: RetryReason, message: string, retryAfterS: number, error?: unknown): WebhookResult {
  return { kind: 'retry', reason, message, retryAfterS, ...(error !== undefined && { error }) };
}
