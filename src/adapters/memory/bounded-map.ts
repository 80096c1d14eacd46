export interface BoundedTtlMapOptions<V> {
  /** Most entries kept; inserting beyond evicts (expired first, then least recently written). */
  readonly maxEntries: number;
  /** Optional cap on the summed `sizeOf` of the values, in bytes (approximate). */
  readonly maxBytes?: number;
  readonly sizeOf?: (key: string, value: V) => number;
  /** At most one full expiry sweep per this many ms when at the cap; evictions in between. */
  readonly minSweepGapMs?: number;
}

interface Slot<V> {
  value: V;
  expiresAt: number;
  size: number;
}

/**
 * A Map with per-entry expiry and hard bounds. Map iteration order is insertion order and every
 * write re-inserts, so the first key is always the least recently written one: evicting it is O(1).
 * When full, expired entries are swept first (at most once per `minSweepGapMs`, the sweep is O(n)),
 * then the least recently written entries go. All times are caller-supplied milliseconds.
 */
export class BoundedTtlMap<V> {
  private readonly map = new Map<string, Slot<V>>();
  private bytesUsed = 0;
  private lastFullSweep = Number.NEGATIVE_INFINITY;
  private evictedCount = 0;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly minSweepGapMs: number;

  constructor(private readonly options: BoundedTtlMapOptions<V>) {
    if (!(options.maxEntries >= 1)) throw new RangeError('maxEntries must be >= 1');
    this.maxEntries = Math.floor(options.maxEntries);
    this.maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    this.minSweepGapMs = options.minSweepGapMs ?? 1000;
  }

  get size(): number {
    return this.map.size;
  }

  /** Approximate bytes held, by `sizeOf` (0 without it). */
  get bytes(): number {
    return this.bytesUsed;
  }

  /** Live entries dropped to stay within bounds (not counting expiry). */
  get evictions(): number {
    return this.evictedCount;
  }

  get(key: string, now: number): V | undefined {
    const slot = this.map.get(key);
    if (!slot) return undefined;
    if (slot.expiresAt <= now) {
      this.remove(key, slot);
      return undefined;
    }
    return slot.value;
  }

  /** Stores (or replaces) the value until `expiresAt`, making room first when needed. */
  set(key: string, value: V, expiresAt: number, now: number): void {
    const size = this.options.sizeOf ? this.options.sizeOf(key, value) : 0;
    const existing = this.map.get(key);
    if (existing) this.remove(key, existing);
    this.makeRoom(size, now);
    this.map.set(key, { value, expiresAt, size });
    this.bytesUsed += size;
  }

  delete(key: string): boolean {
    const slot = this.map.get(key);
    if (!slot) return false;
    this.remove(key, slot);
    return true;
  }

  /** Drops expired entries; returns how many. */
  sweep(now: number): number {
    let dropped = 0;
    for (const [key, slot] of this.map) {
      if (slot.expiresAt <= now) {
        this.remove(key, slot);
        dropped++;
      }
    }
    return dropped;
  }

  clear(): void {
    this.map.clear();
    this.bytesUsed = 0;
  }

  private makeRoom(incoming: number, now: number): void {
    const full = (): boolean => this.map.size >= this.maxEntries || (this.map.size > 0 && this.bytesUsed + incoming > this.maxBytes);
    if (!full()) return;
    if (now - this.lastFullSweep >= this.minSweepGapMs) {
      this.lastFullSweep = now;
      this.sweep(now);
    }
    while (full()) {
      const oldest = this.map.entries().next();
      if (oldest.done) return;
      const [key, slot] = oldest.value;
      this.remove(key, slot);
      this.evictedCount++;
    }
  }

  private remove(key: string, slot: Slot<V>): void {
    this.map.delete(key);
    this.bytesUsed -= slot.size;
  }
}
