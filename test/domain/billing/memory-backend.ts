import type {
  BillingAudit, BillingBackend, ClaimResult, LedgerClaim, LedgerDone, TenantUpdate,
} from '../../../src/domain/billing/ports.js';
import type { Tenant } from '../../../src/domain/tenancy/types.js';

type Entry = { rev: number; value: { state: 'processing'; owner: string; at: number } | LedgerDone };

/**
 * The BillingBackend contract in memory, with the same atomicity as the NATS one (create fails on an
 * existing key; writes compare revisions), for the processor's unit tests. Every method yields to
 * the event loop first, so concurrent callers really interleave.
 */
export class MemoryBillingBackend implements BillingBackend {
  readonly ledger = new Map<string, Entry>();
  readonly customers = new Map<string, string>();
  readonly tenants = new Map<string, { rev: number; tenant: Tenant }>();
  readonly audits: BillingAudit[] = [];
  readonly writes: Tenant[] = [];
  up = true;
  private rev = 0;

  putTenant(tenant: Tenant): void {
    this.tenants.set(tenant.id, { rev: ++this.rev, tenant });
  }

  tenant(id: string): Tenant | undefined {
    return this.tenants.get(id)?.tenant;
  }

  async ready(): Promise<void> {
    await tick();
  }

  available(): boolean {
    return this.up;
  }

  async claim(eventId: string, owner: string, _type: string, leaseMs: number): Promise<ClaimResult> {
    await tick();
    const current = this.ledger.get(eventId);
    if (!current) {
      const rev = ++this.rev;
      this.ledger.set(eventId, { rev, value: { state: 'processing', owner, at: Date.now() } });
      return { kind: 'claimed', claim: { eventId, revision: rev, owner, takenOver: false } };
    }
    if (current.value.state === 'done') return { kind: 'done', record: current.value };
    const ageMs = Date.now() - current.value.at;
    if (ageMs < leaseMs) return { kind: 'busy', owner: current.value.owner, ageMs };
    const rev = ++this.rev;
    this.ledger.set(eventId, { rev, value: { state: 'processing', owner, at: Date.now() } });
    return { kind: 'claimed', claim: { eventId, revision: rev, owner, takenOver: true } };
  }

  async finish(claim: LedgerClaim, record: LedgerDone): Promise<void> {
    await tick();
    if (this.ledger.get(claim.eventId)?.rev !== claim.revision) return;
    this.ledger.set(claim.eventId, { rev: ++this.rev, value: record });
  }

  async release(claim: LedgerClaim): Promise<void> {
    await tick();
    if (this.ledger.get(claim.eventId)?.rev === claim.revision) this.ledger.delete(claim.eventId);
  }

  async tenantOfCustomer(customerId: string): Promise<string | undefined> {
    await tick();
    return this.customers.get(customerId);
  }

  async linkCustomer(customerId: string, tenantId: string): Promise<void> {
    await tick();
    this.customers.set(customerId, tenantId);
  }

  async updateTenant(tenantId: string, change: (current: Tenant) => Tenant | undefined): Promise<TenantUpdate | undefined> {
    for (;;) {
      await tick();
      const current = this.tenants.get(tenantId);
      if (!current) return undefined;
      const next = change(current.tenant);
      if (next === undefined) return { before: current.tenant, after: current.tenant, written: false };
      await tick();
      if (this.tenants.get(tenantId)?.rev !== current.rev) continue;
      this.tenants.set(tenantId, { rev: ++this.rev, tenant: next });
      this.writes.push(next);
      return { before: current.tenant, after: next, written: true };
    }
  }

  async audit(record: BillingAudit): Promise<void> {
    await tick();
    if (!this.audits.some((a) => a.event_id === record.event_id)) this.audits.push(record);
  }
}

function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
