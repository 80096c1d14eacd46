import { setTimeout as sleep } from 'node:timers/promises';
import { JetStreamApiError, StorageType } from '@nats-io/jetstream';
import { Kvm, type KV, type KvWatchEntry } from '@nats-io/kv';
import type { ApiKeyRecord, KeyStore, Tenant } from '../../domain/tenancy/types.js';
import type { NatsConnection } from './connection.js';
import { retryTransient } from './transient.js';
import {
  assertValidKeyRecord, assertValidTenant, byCreatedThen, KEY_PREFIX_PATTERN, parseKeyRecord, parseTenant,
  stderrLogger, TENANT_ID_PATTERN, type StoreLogger,
} from './records.js';

export const TENANTS_BUCKET = 'kgents_tenants';
export const KEYS_BUCKET = 'kgents_keys';

export interface NatsKvKeyStoreOptions {
  /** Replicas of both buckets when they are created (NATS_REPLICAS). Default 1. */
  readonly replicas?: number;
  /** Values kept per key (audit trail of changes). Default 5. */
  readonly history?: number;
  /** How long start() may take to open the buckets and load them. Default 15000 ms. */
  readonly startTimeoutMs?: number;
  readonly logger?: StoreLogger;
  /**
   * How often each bucket's last sequence is compared with what the watch has delivered; a watch
   * that falls behind for two checks is re-created (its consumer was lost without the connection
   * dropping). Default 2000 ms.
   */
  readonly stallCheckMs?: number;
  /** Bucket names; only tests need to change them. */
  readonly tenantsBucket?: string;
  readonly keysBucket?: string;
}

export type WatchState = 'idle' | 'loading' | 'live' | 'recovering' | 'closed';

type Parse<T> = (key: string, raw: unknown) => { ok: true; value: T } | { ok: false; error: string };

interface Slot<T> {
  readonly rev: number;
  /** undefined: deleted at `rev` (kept so a late, older write cannot resurrect it). */
  readonly value: T | undefined;
}

const WRONG_LAST_SEQUENCE = 10071;
const decoder = new TextDecoder();

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * A live in-memory copy of one KV bucket, kept current by a watch.
 *
 * Recovery: the loop re-creates the watch whenever it ends while the store is open (the iterator
 * stopped, the consumer vanished) and whenever the connection comes back after a disconnect (a
 * restarted server has lost the ephemeral consumer). A re-created watch resumes at the revision after
 * the last one applied, so nothing is missed and nothing is reloaded; if the stream's last sequence
 * is now below that revision the bucket was recreated, and the view is rebuilt from scratch and
 * swapped in when complete. Entries at or below a slot's revision are ignored, so replays are harmless.
 */
class BucketView<T> {
  private entries = new Map<string, Slot<T>>();
  /** Being built by a full load; swapped in when the load completes. */
  private fresh: Map<string, Slot<T>> | undefined;
  private needsFullLoad = true;
  private loadTarget = 0;
  private lastRevision = 0;
  private kv: KV | undefined;
  private iter: { stop(): void } | undefined;
  private generation = 0;
  private loop: Promise<void> | undefined;
  private readonly abort = new AbortController();
  private loaded: { resolve: () => void; promise: Promise<void> };
  private lastError: string | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  private checking = false;
  private loadingChecks = 0;
  /** The stream's last sequence when the view was first seen behind it. */
  private behind: { seq: number; restarts: number } | undefined;
  state: WatchState = 'idle';

  constructor(
    readonly bucket: string,
    private readonly connection: NatsConnection,
    private readonly parse: Parse<T>,
    private readonly logger: StoreLogger,
  ) {
    let resolve = (): void => undefined;
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    this.loaded = { resolve, promise };
  }

  get error(): string | undefined {
    return this.lastError;
  }

  get size(): number {
    let n = 0;
    for (const slot of this.entries.values()) if (slot.value !== undefined) n++;
    return n;
  }

  get(key: string): T | undefined {
    return this.entries.get(key)?.value;
  }

  values(): T[] {
    const out: T[] = [];
    for (const slot of this.entries.values()) if (slot.value !== undefined) out.push(slot.value);
    return out;
  }

  get store(): KV {
    if (!this.kv) throw new Error(`key store: bucket ${this.bucket} is not open (call start() first)`);
    return this.kv;
  }

  async open(replicas: number, history: number): Promise<void> {
    const kvm = new Kvm(this.connection.nc);
    const kv = await retryTransient(() => kvm.create(this.bucket, { replicas, history, storage: StorageType.File }), {
      onRetry: (err) => this.logger.warn({ bucket: this.bucket, err }, 'JetStream cannot create or open the KV bucket yet; retrying'),
    });
    const status = await kv.status();
    if (status.replicas !== replicas) {
      this.logger.warn({ bucket: this.bucket, replicas: status.replicas, configured: replicas },
        'KV bucket exists with a different replica count; keeping it (change it with `nats stream edit`)');
    }
    this.kv = kv;
  }

  /** Starts following the bucket; resolves once the current contents are loaded. */
  async follow(timeoutMs: number, stallCheckMs: number): Promise<void> {
    this.state = 'loading';
    this.loop ??= this.watchLoop();
    if (!this.stallTimer && stallCheckMs > 0) {
      this.stallTimer = setInterval(() => void this.checkStall(), stallCheckMs);
      this.stallTimer.unref();
    }
    const timer = new AbortController();
    const ok = await Promise.race([
      this.loaded.promise.then(() => true),
      sleep(timeoutMs, false, { signal: timer.signal }).catch(() => false),
    ]);
    timer.abort();
    if (!ok) {
      throw new Error(`key store: could not load KV bucket ${this.bucket} within ${timeoutMs} ms${this.lastError ? `: ${this.lastError}` : ''}`);
    }
  }

  /** Drops the current watch; the loop opens a new one that resumes where this one stopped. */
  restart(): void {
    this.generation++;
    this.iter?.stop();
  }

  async close(): Promise<void> {
    this.state = 'closed';
    if (this.stallTimer) clearInterval(this.stallTimer);
    this.stallTimer = undefined;
    this.abort.abort();
    this.iter?.stop();
    await this.loop;
  }

  /** Applies a write this process made as soon as the server acknowledged it. */
  applyLocal(key: string, rev: number, value: T): void {
    this.applyTo(this.entries, key, rev, value);
    if (this.fresh) this.applyTo(this.fresh, key, rev, value);
  }

  /**
   * Safety net for a watch that silently stopped delivering (its consumer deleted or lost in a
   * cluster while the connection stayed up): if a sequence the stream already had at the previous
   * check has still not arrived, re-create the watch; if that does not help either (the message is
   * gone, say purged), reload the bucket from scratch.
   */
  private async checkStall(): Promise<void> {
    if (this.checking || this.stopped || !this.iter || !this.connection.isUp) return;
    if (this.fresh) {
      // a full load that has not completed after several checks sits on a dead consumer
      if (++this.loadingChecks >= 5) {
        this.logger.warn({ bucket: this.bucket }, 'KV bucket load is not completing; starting it again');
        this.loadingChecks = 0;
        this.restart();
      }
      return;
    }
    this.checking = true;
    try {
      const lastSeq = (await this.store.status()).streamInfo.state.last_seq;
      if (lastSeq < this.lastRevision) {
        // the bucket was deleted and created again: openWatch notices and reloads
        this.behind = undefined;
        this.restart();
      } else if (lastSeq === this.lastRevision) {
        this.behind = undefined;
      } else if (!this.behind || this.lastRevision >= this.behind.seq) {
        this.behind = { seq: lastSeq, restarts: 0 };
      } else if (this.behind.restarts === 0) {
        this.logger.warn({ bucket: this.bucket, last_seq: lastSeq, seen: this.lastRevision }, 'KV watch stalled; re-creating it');
        this.behind = { seq: lastSeq, restarts: 1 };
        this.restart();
      } else {
        this.logger.warn({ bucket: this.bucket, last_seq: lastSeq, seen: this.lastRevision }, 'KV watch still behind after re-creating it; reloading the bucket');
        this.behind = undefined;
        this.needsFullLoad = true;
        this.restart();
      }
    } catch {
      // NATS unreachable: the reconnect handling takes over
    } finally {
      this.checking = false;
    }
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  private async watchLoop(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      if (!(await this.connection.waitUntilUp(this.abort.signal))) break;
      const generation = this.generation;
      let iter: AsyncIterable<KvWatchEntry> & { stop(): void };
      try {
        iter = await this.openWatch();
      } catch (err) {
        failures++;
        this.lastError = message(err);
        if (failures === 1 || failures % 20 === 0) {
          this.logger.warn({ bucket: this.bucket, err: this.lastError, attempt: failures }, 'KV watch could not be opened; retrying');
        }
        await sleep(Math.min(100 * 2 ** Math.min(failures, 5), 2000), undefined, { signal: this.abort.signal }).catch(() => undefined);
        continue;
      }
      failures = 0;
      this.iter = iter;
      if (this.stopped || generation !== this.generation) {
        // closed or reconnected while the watch was being created: it may sit on a dead consumer
        iter.stop();
        this.iter = undefined;
        continue;
      }
      if (!this.fresh) this.state = 'live';
      try {
        for await (const entry of iter) this.onEntry(entry);
      } catch (err) {
        this.lastError = message(err);
      }
      this.iter = undefined;
      if (this.stopped) break;
      if (this.state === 'live') this.state = 'recovering';
      if (generation === this.generation) {
        // ended on its own while the store is open: re-create it
        this.logger.warn({ bucket: this.bucket, err: this.lastError }, 'KV watch ended; re-creating it');
        await sleep(100, undefined, { signal: this.abort.signal }).catch(() => undefined);
      }
    }
    this.state = 'closed';
  }

  private async openWatch(): Promise<AsyncIterable<KvWatchEntry> & { stop(): void }> {
    const kv = this.store;
    const status = await kv.status();
    const { last_seq: lastSeq, messages } = status.streamInfo.state;
    if (!this.needsFullLoad && lastSeq < this.lastRevision) {
      this.logger.warn({ bucket: this.bucket, last_seq: lastSeq, seen: this.lastRevision }, 'KV bucket was recreated; reloading it');
      this.needsFullLoad = true;
    }
    if (!this.needsFullLoad) {
      return kv.watch({ resumeFromRevision: this.lastRevision + 1 });
    }
    this.fresh = new Map();
    this.loadingChecks = 0;
    this.loadTarget = lastSeq;
    this.lastRevision = 0;
    const iter = await kv.watch();
    if (messages === 0) this.finishLoad();
    return iter;
  }

  private onEntry(entry: KvWatchEntry): void {
    if (this.fresh) {
      this.lastRevision = Math.max(this.lastRevision, entry.revision);
      this.applyEntry(this.fresh, entry);
      if (entry.isUpdate || entry.revision >= this.loadTarget) this.finishLoad();
      return;
    }
    if (entry.revision <= this.lastRevision) return;
    this.lastRevision = entry.revision;
    this.applyEntry(this.entries, entry);
  }

  private finishLoad(): void {
    // the load holds every key's latest value up to loadTarget, whatever was removed below it
    this.lastRevision = Math.max(this.lastRevision, this.loadTarget);
    if (this.fresh) this.entries = this.fresh;
    this.fresh = undefined;
    this.needsFullLoad = false;
    this.state = 'live';
    this.loaded.resolve();
  }

  private applyEntry(target: Map<string, Slot<T>>, entry: KvWatchEntry): void {
    if (entry.operation !== 'PUT') {
      this.applyTo(target, entry.key, entry.revision, undefined);
      return;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(decoder.decode(entry.value));
    } catch (err) {
      this.logger.warn({ bucket: this.bucket, key: entry.key, revision: entry.revision, err: message(err) }, 'skipping KV entry that is not JSON');
      return;
    }
    const parsed = this.parse(entry.key, raw);
    if (!parsed.ok) {
      this.logger.warn({ bucket: this.bucket, key: entry.key, revision: entry.revision, err: parsed.error }, 'skipping invalid KV entry');
      return;
    }
    this.applyTo(target, entry.key, entry.revision, parsed.value);
  }

  private applyTo(target: Map<string, Slot<T>>, key: string, rev: number, value: T | undefined): void {
    const current = target.get(key);
    if (current && current.rev >= rev) return;
    target.set(key, { rev, value });
  }
}

function parseTenantEntry(key: string, raw: unknown): ReturnType<Parse<Tenant>> {
  const parsed = parseTenant(raw);
  if (parsed.ok && parsed.value.id !== key) return { ok: false, error: `id "${parsed.value.id}" does not match the KV key` };
  return parsed;
}

function parseKeyEntry(key: string, raw: unknown): ReturnType<Parse<ApiKeyRecord>> {
  const parsed = parseKeyRecord(raw);
  if (parsed.ok && parsed.value.prefix !== key) return { ok: false, error: `prefix "${parsed.value.prefix}" does not match the KV key` };
  return parsed;
}

/**
 * Tenants and API keys in two JetStream KV buckets (`kgents_tenants` keyed by tenant id,
 * `kgents_keys` keyed by key prefix; JSON values). Every instance keeps a watched in-memory copy,
 * so reads are synchronous and a revocation reaches all instances as fast as NATS delivers it.
 * The connection is the caller's: close() stops the watches but leaves it open.
 */
export class NatsKvKeyStore implements KeyStore {
  readonly kind = 'nats' as const;
  private readonly tenants: BucketView<Tenant>;
  private readonly keys: BucketView<ApiKeyRecord>;
  private readonly replicas: number;
  private readonly history: number;
  private readonly startTimeoutMs: number;
  private readonly stallCheckMs: number;
  private readonly logger: StoreLogger;
  private starting: Promise<void> | undefined;
  private offStatus: (() => void) | undefined;
  private closed = false;

  constructor(private readonly connection: NatsConnection, options: NatsKvKeyStoreOptions = {}) {
    this.replicas = options.replicas ?? 1;
    this.history = options.history ?? 5;
    this.startTimeoutMs = options.startTimeoutMs ?? 15_000;
    this.stallCheckMs = options.stallCheckMs ?? 2000;
    this.logger = options.logger ?? stderrLogger;
    this.tenants = new BucketView(options.tenantsBucket ?? TENANTS_BUCKET, connection, parseTenantEntry, this.logger);
    this.keys = new BucketView(options.keysBucket ?? KEYS_BUCKET, connection, parseKeyEntry, this.logger);
  }

  start(): Promise<void> {
    this.starting ??= this.doStart();
    return this.starting;
  }

  private async doStart(): Promise<void> {
    if (this.closed) throw new Error('key store is closed');
    const deadline = Date.now() + this.startTimeoutMs;
    for (const view of [this.tenants, this.keys]) {
      for (let attempt = 1; ; attempt++) {
        try {
          await view.open(this.replicas, this.history);
          break;
        } catch (err) {
          // JetStream may still be starting (a fresh server, a cluster electing its meta leader)
          if (Date.now() + 250 > deadline) throw new Error(`key store: cannot open KV bucket ${view.bucket}: ${message(err)}`, { cause: err });
          await sleep(Math.min(100 * attempt, 1000));
        }
      }
    }
    this.offStatus = this.connection.onStatusChange((health) => {
      if (health.status === 'ok') {
        this.tenants.restart();
        this.keys.restart();
      }
    });
    const remaining = Math.max(1000, deadline - Date.now());
    try {
      await Promise.all([this.tenants.follow(remaining, this.stallCheckMs), this.keys.follow(remaining, this.stallCheckMs)]);
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  getKey(prefix: string): ApiKeyRecord | undefined {
    return this.keys.get(prefix);
  }

  getTenant(id: string): Tenant | undefined {
    return this.tenants.get(id);
  }

  listKeys(): ApiKeyRecord[] {
    return this.keys.values().sort(byCreatedThen((k) => k.prefix));
  }

  listTenants(): Tenant[] {
    return this.tenants.values().sort(byCreatedThen((t) => t.id));
  }

  async putKey(record: ApiKeyRecord): Promise<void> {
    const valid = assertValidKeyRecord(record);
    const rev = await this.keys.store.put(valid.prefix, JSON.stringify(valid));
    this.keys.applyLocal(valid.prefix, rev, valid);
  }

  async putTenant(tenant: Tenant): Promise<void> {
    const valid = assertValidTenant(tenant);
    const rev = await this.tenants.store.put(valid.id, JSON.stringify(valid));
    this.tenants.applyLocal(valid.id, rev, valid);
  }

  /** Compare-and-set on the stored record, so a concurrent change is never overwritten. */
  async revokeKey(prefix: string, at: Date = new Date()): Promise<boolean> {
    if (!KEY_PREFIX_PATTERN.test(prefix)) return false;
    const kv = this.keys.store;
    for (let attempt = 0; attempt < 10; attempt++) {
      const entry = await kv.get(prefix);
      if (!entry || entry.operation !== 'PUT') return false;
      let raw: unknown;
      try {
        raw = entry.json<unknown>();
      } catch {
        raw = undefined;
      }
      const parsed = parseKeyEntry(prefix, raw);
      if (!parsed.ok) throw new Error(`API key ${prefix}: the stored record is invalid (${parsed.error}); not revoking it`);
      if (parsed.value.revoked_at !== null) {
        this.keys.applyLocal(prefix, entry.revision, parsed.value);
        return true;
      }
      const next: ApiKeyRecord = { ...parsed.value, revoked_at: at.toISOString() };
      try {
        const rev = await kv.update(prefix, JSON.stringify(next), entry.revision);
        this.keys.applyLocal(prefix, rev, next);
        return true;
      } catch (err) {
        if (!(err instanceof JetStreamApiError && err.code === WRONG_LAST_SEQUENCE) && !/wrong last sequence/i.test(message(err))) throw err;
      }
    }
    throw new Error(`API key ${prefix}: kept changing while being revoked; try again`);
  }

  /** Per-bucket watch state and counts, for /health/saas. */
  status(): { status: 'ok' | 'degraded'; tenants: number; keys: number; watch: Record<string, WatchState>; last_error?: string } {
    const watch = { [this.tenants.bucket]: this.tenants.state, [this.keys.bucket]: this.keys.state };
    const live = this.tenants.state === 'live' && this.keys.state === 'live' && this.connection.isUp;
    const lastError = this.keys.error ?? this.tenants.error;
    return {
      status: live ? 'ok' : 'degraded',
      tenants: this.tenants.size,
      keys: this.keys.size,
      watch,
      ...(lastError !== undefined ? { last_error: lastError } : {}),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.offStatus?.();
    this.offStatus = undefined;
    await Promise.all([this.tenants.close(), this.keys.close()]);
  }
}

export { TENANT_ID_PATTERN, KEY_PREFIX_PATTERN };
