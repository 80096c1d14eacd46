import { setTimeout as sleep } from 'node:timers/promises';
import { jetstream, JetStreamApiError, StorageType, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import { z } from 'zod';
import type {
  BillingAudit, BillingBackend, ClaimResult, LedgerClaim, LedgerDone, TenantUpdate,
} from '../../domain/billing/ports.js';
import { STRIPE_EVENT_ID, STRIPE_EVENT_TYPE } from '../../domain/billing/stripe-event.js';
import type { Tenant } from '../../domain/tenancy/types.js';
import type { NatsConnection } from '../nats/connection.js';
import { TENANTS_BUCKET } from '../nats/key-store.js';
import { assertValidTenant, parseTenant, TENANT_ID_PATTERN } from '../nats/records.js';
import { EVENTS_STREAM, EVENTS_SUBJECT_PREFIX, streamConfigs } from '../nats/streams.js';

/** Ledger of Stripe event ids: one entry per event, kept as long as Stripe keeps events (30 days). */
export const STRIPE_EVENTS_BUCKET = 'kgents_stripe_events';
/** Stripe customer id → tenant id. */
export const STRIPE_CUSTOMERS_BUCKET = 'kgents_stripe_customers';
/** Audit records go to `kgent.audit.stripe.<event type>` in the EVENTS stream. */
export const STRIPE_AUDIT_SUBJECT_PREFIX = `${EVENTS_SUBJECT_PREFIX}.audit.stripe`;

const DAY_MS = 86_400_000;
const WRONG_LAST_SEQUENCE = 10071;
const KV_KEY = /^[A-Za-z0-9_-]{1,255}$/;

export interface NatsBillingOptions {
  /** Replicas of the buckets (and of EVENTS if it has to be created): NATS_REPLICAS. Default 1. */
  readonly replicas?: number;
  /** How long ledger entries live. Default 30 days (Stripe can resend an event for 30 days). */
  readonly ledgerTtlMs?: number;
  /** Per-operation timeout for KV and publish calls. Default 5000 ms. */
  readonly timeoutMs?: number;
  /** Bucket names; only tests change them. */
  readonly tenantsBucket?: string;
  readonly eventsBucket?: string;
  readonly customersBucket?: string;
}

const processingSchema = z.object({ state: z.literal('processing'), owner: z.string(), at: z.number(), type: z.string() });
const doneSchema = z.object({
  state: z.literal('done'),
  outcome: z.enum(['applied', 'stale', 'skipped', 'unmatched']),
  type: z.string(),
  tenant: z.string().optional(),
  at: z.string(),
  owner: z.string(),
});
const ledgerSchema = z.discriminatedUnion('state', [processingSchema, doneSchema]);
const customerSchema = z.object({ tenant: z.string().regex(TENANT_ID_PATTERN), event_id: z.string(), linked_at: z.string() });

interface Opened {
  readonly events: KV;
  readonly customers: KV;
  readonly tenants: KV;
  readonly js: JetStreamClient;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isWrongLastSequence(err: unknown): boolean {
  return (err instanceof JetStreamApiError && err.code === WRONG_LAST_SEQUENCE) || /wrong last sequence/i.test(message(err));
}

function json(entry: KvEntry): unknown {
  try {
    return entry.json<unknown>();
  } catch {
    return undefined;
  }
}

/**
 * The Stripe webhook's durable state on NATS JetStream, shared by every replica:
 *
 * - `kgents_stripe_events` (KV, history 1, TTL 30 days): event id → `processing` claim
 *   (owner, time) or `done` (outcome). Claims are `kv.create` (fails if the key exists) and every
 *   later write is compare-and-set on the claim's revision, so one instance wins.
 * - `kgents_stripe_customers` (KV): Stripe customer → tenant.
 * - `kgents_tenants` (the key store's bucket): tenants are changed with compare-and-set on the
 *   stored record, never a blind put, so two events for one tenant on two replicas cannot undo
 *   each other. The key store's watch brings the change to every instance.
 * - audit records on `kgent.audit.stripe.<type>` in EVENTS with Nats-Msg-Id `stripe:<event id>`.
 */
export class NatsBillingBackend implements BillingBackend {
  private opening: Promise<Opened> | undefined;
  private opened = false;
  private lastError: string | undefined;
  private readonly replicas: number;
  private readonly timeoutMs: number;

  constructor(private readonly connection: NatsConnection, private readonly options: NatsBillingOptions = {}) {
    this.replicas = options.replicas ?? 1;
    this.timeoutMs = options.timeoutMs ?? 5000;
  }

  async ready(): Promise<void> {
    await this.open();
  }

  available(): boolean {
    return this.connection.isUp;
  }

  /** For /health/saas (optional): whether the buckets are open and NATS is up. */
  status(): { status: 'ok' | 'degraded'; ledger: string; opened: boolean; last_error?: string } {
    return {
      status: this.connection.isUp ? 'ok' : 'degraded',
      ledger: this.options.eventsBucket ?? STRIPE_EVENTS_BUCKET,
      opened: this.opened,
      ...(this.lastError !== undefined && { last_error: this.lastError }),
    };
  }

  async claim(eventId: string, owner: string, type: string, leaseMs: number): Promise<ClaimResult> {
    if (!STRIPE_EVENT_ID.test(eventId)) throw new Error('not a Stripe event id');
    const { events } = await this.open();
    for (let attempt = 0; attempt < 5; attempt++) {
      const record = JSON.stringify({ state: 'processing', owner, at: Date.now(), type });
      try {
        const revision = await events.create(eventId, record);
        return { kind: 'claimed', claim: { eventId, revision, owner, takenOver: false } };
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
      }
      const entry = await events.get(eventId);
      if (!entry || entry.operation !== 'PUT') continue; // released meanwhile: create again
      const parsed = ledgerSchema.safeParse(json(entry));
      const current = parsed.success ? parsed.data : undefined;
      if (current?.state === 'done') {
        const { tenant, ...rest } = current;
        return { kind: 'done', record: { ...rest, ...(tenant !== undefined && { tenant }) } };
      }
      if (current?.state === 'processing') {
        const ageMs = Date.now() - current.at;
        if (ageMs < leaseMs) return { kind: 'busy', owner: current.owner, ageMs };
      }
      // The claim expired (its owner crashed or stalled) or the entry is unreadable: take it over.
      try {
        const revision = await events.update(eventId, record, entry.revision);
        return { kind: 'claimed', claim: { eventId, revision, owner, takenOver: true } };
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
      }
    }
    return { kind: 'busy', owner: 'unknown', ageMs: 0 };
  }

  async finish(claim: LedgerClaim, record: LedgerDone): Promise<void> {
    const { events } = await this.open();
    try {
      await events.update(claim.eventId, JSON.stringify(record), claim.revision);
    } catch (err) {
      // Taken over meanwhile (this instance stalled past the lease): the new owner records it, and
      // the effect this instance applied is durable and identical to what the new owner applies.
      if (!isWrongLastSequence(err)) throw err;
    }
  }

  async release(claim: LedgerClaim): Promise<void> {
    const { events } = await this.open();
    try {
      await events.delete(claim.eventId, { previousSeq: claim.revision });
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err;
    }
  }

  async tenantOfCustomer(customerId: string): Promise<string | undefined> {
    if (!KV_KEY.test(customerId)) return undefined;
    const { customers } = await this.open();
    const entry = await customers.get(customerId);
    if (!entry || entry.operation !== 'PUT') return undefined;
    const parsed = customerSchema.safeParse(json(entry));
    return parsed.success ? parsed.data.tenant : undefined;
  }

  async linkCustomer(customerId: string, tenantId: string, eventId: string): Promise<void> {
    if (!KV_KEY.test(customerId) || !TENANT_ID_PATTERN.test(tenantId)) throw new Error('invalid customer or tenant id');
    const { customers } = await this.open();
    const entry = await customers.get(customerId);
    if (entry?.operation === 'PUT') {
      const parsed = customerSchema.safeParse(json(entry));
      if (parsed.success && parsed.data.tenant === tenantId) return;
    }
    await customers.put(customerId, JSON.stringify({ tenant: tenantId, event_id: eventId, linked_at: new Date().toISOString() }));
  }

  async updateTenant(tenantId: string, change: (current: Tenant) => Tenant | undefined): Promise<TenantUpdate | undefined> {
    if (!TENANT_ID_PATTERN.test(tenantId)) return undefined;
    const { tenants } = await this.open();
    for (let attempt = 0; attempt < 25; attempt++) {
      const entry = await tenants.get(tenantId);
      if (!entry || entry.operation !== 'PUT') return undefined;
      const parsed = parseTenant(json(entry));
      if (!parsed.ok) throw new Error(`tenant ${tenantId}: the stored record is invalid (${parsed.error}); not changing it`);
      const before = parsed.value;
      if (before.id !== tenantId) throw new Error(`tenant ${tenantId}: the stored record names another id`);
      const next = change(before);
      if (next === undefined) return { before, after: before, written: false };
      const after = assertValidTenant(next);
      try {
        await tenants.update(tenantId, JSON.stringify(after), entry.revision);
        return { before, after, written: true };
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
        // Changed meanwhile (another event, an admin edit) or read from a lagging replica: re-read.
        await sleep(Math.min(5 * (attempt + 1), 50) + Math.random() * 10);
      }
    }
    throw new Error(`tenant ${tenantId}: kept changing while a Stripe event was applied`);
  }

  async audit(record: BillingAudit): Promise<void> {
    if (!STRIPE_EVENT_TYPE.test(record.type)) throw new Error('event type is not a valid subject token');
    const { js } = await this.open();
    await js.publish(`${STRIPE_AUDIT_SUBJECT_PREFIX}.${record.type}`, JSON.stringify(record), {
      msgID: `stripe:${record.event_id}`,
      expect: { streamName: EVENTS_STREAM },
      timeout: this.timeoutMs,
    });
  }

  private open(): Promise<Opened> {
    this.opening ??= this.doOpen().then(
      (opened) => {
        this.opened = true;
        this.lastError = undefined;
        return opened;
      },
      (err: unknown) => {
        this.opening = undefined;
        this.lastError = message(err);
        throw err;
      },
    );
    return this.opening;
  }

  private async doOpen(): Promise<Opened> {
    const js = jetstream(this.connection.nc, { timeout: this.timeoutMs });
    const kvm = new Kvm(js);
    const replicas = this.replicas;
    const events = await kvm.create(this.options.eventsBucket ?? STRIPE_EVENTS_BUCKET, {
      replicas, history: 1, ttl: this.options.ledgerTtlMs ?? 30 * DAY_MS, storage: StorageType.File,
      description: 'Stripe webhook ledger: event id -> processing claim or done outcome.',
    });
    const customers = await kvm.create(this.options.customersBucket ?? STRIPE_CUSTOMERS_BUCKET, {
      replicas, history: 5, storage: StorageType.File, description: 'Stripe customer id -> tenant id.',
    });
    // The key store's bucket: created with the same settings in case the webhook is first to open it.
    const tenants = await kvm.create(this.options.tenantsBucket ?? TENANTS_BUCKET, { replicas, history: 5, storage: StorageType.File });
    await ensureEventsStream(await js.jetstreamManager(), replicas);
    return { events, customers, tenants, js };
  }
}

/** Creates EVENTS (same definition as `ensureStreams`) when nothing has yet; leaves an existing one alone. */
async function ensureEventsStream(jsm: JetStreamManager, replicas: number): Promise<void> {
  try {
    await jsm.streams.info(EVENTS_STREAM);
    return;
  } catch (err) {
    if (!/stream not found/i.test(message(err))) throw err;
  }
  const wanted = streamConfigs({ replicas, usageDuplicateWindowS: 7200, usageRetentionDays: 35 }).find((s) => s.name === EVENTS_STREAM);
  if (!wanted) throw new Error(`no definition for stream ${EVENTS_STREAM}`);
  try {
    await jsm.streams.add(wanted);
  } catch (err) {
    // another instance created it at the same moment
    if (!/already in use/i.test(message(err))) throw err;
  }
}
