import { watch, watchFile, unwatchFile, type FSWatcher, type Stats } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ApiKeyRecord, KeyStore, Tenant } from '../../domain/tenancy/types.js';
import {
  assertValidKeyRecord, assertValidTenant, byCreatedThen, KEY_PREFIX_PATTERN, parseKeyRecord, parseTenant,
  stderrLogger, type StoreLogger,
} from '../nats/records.js';

export const KEYS_FILE = 'keys.json';

export interface FileKeyStoreOptions {
  /** DATA_DIR; the store is `<dir>/keys.json`. */
  readonly dir: string;
  /** Stat polling interval, the fallback when fs.watch misses an event. Default 500 ms. */
  readonly pollIntervalMs?: number;
  /** How long a writer waits for another process's lock. Default 5000 ms. */
  readonly lockTimeoutMs?: number;
  readonly logger?: StoreLogger;
}

interface FileState {
  readonly tenants: Map<string, Tenant>;
  readonly keys: Map<string, ApiKeyRecord>;
}

interface FileShape {
  version: 1;
  tenants: Record<string, Tenant>;
  keys: Record<string, ApiKeyRecord>;
}

/** A lock older than this is left over from a crashed writer. */
const STALE_LOCK_MS = 10_000;

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}

/**
 * Tenants and keys in one JSON file, `DATA_DIR/keys.json`, for running without NATS.
 *
 * Single instance only: it is meant for one service process plus the `kgents` CLI on the same
 * machine, not for several service instances (use the NATS store for that). Writes are
 * read-modify-write under a lock file (`keys.json.lock`) and land atomically (temp file, fsync,
 * rename), so a reader never sees half a file and two writers never lose each other's change.
 * Changes made by another process are picked up through fs.watch on the directory, with stat
 * polling (every 500 ms) as the fallback.
 */
export class FileKeyStore implements KeyStore {
  readonly kind = 'file' as const;
  readonly path: string;
  private readonly lockPath: string;
  private readonly pollIntervalMs: number;
  private readonly lockTimeoutMs: number;
  private readonly logger: StoreLogger;
  private state: FileState = { tenants: new Map(), keys: new Map() };
  private lastText: string | undefined;
  private watcher: FSWatcher | undefined;
  private polling = false;
  private reloadTimer: NodeJS.Timeout | undefined;
  /** Reloads and writes run one at a time, so an older read never replaces a newer write in memory. */
  private queue: Promise<unknown> = Promise.resolve();
  private starting: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly options: FileKeyStoreOptions) {
    this.path = join(options.dir, KEYS_FILE);
    this.lockPath = `${this.path}.lock`;
    this.pollIntervalMs = options.pollIntervalMs ?? 500;
    this.lockTimeoutMs = options.lockTimeoutMs ?? 5000;
    this.logger = options.logger ?? stderrLogger;
  }

  start(): Promise<void> {
    this.starting ??= this.doStart();
    return this.starting;
  }

  private async doStart(): Promise<void> {
    await mkdir(this.options.dir, { recursive: true });
    await this.serial(() => this.reload());
    this.polling = true;
    watchFile(this.path, { interval: this.pollIntervalMs, persistent: false }, this.onStat);
    try {
      this.watcher = watch(this.options.dir, { persistent: false }, (_event, filename) => {
        if (filename === null || filename === KEYS_FILE) this.scheduleReload();
      });
      this.watcher.on('error', (err) => {
        this.logger.warn({ path: this.path, err: message(err) }, 'fs.watch failed; following keys.json by polling only');
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (err) {
      this.logger.warn({ path: this.path, err: message(err) }, 'fs.watch unavailable; following keys.json by polling only');
    }
  }

  getKey(prefix: string): ApiKeyRecord | undefined {
    return this.state.keys.get(prefix);
  }

  getTenant(id: string): Tenant | undefined {
    return this.state.tenants.get(id);
  }

  listKeys(): ApiKeyRecord[] {
    return [...this.state.keys.values()].sort(byCreatedThen((k) => k.prefix));
  }

  listTenants(): Tenant[] {
    return [...this.state.tenants.values()].sort(byCreatedThen((t) => t.id));
  }

  async putKey(record: ApiKeyRecord): Promise<void> {
    const valid = assertValidKeyRecord(record);
    await this.mutate((s) => {
      s.keys.set(valid.prefix, valid);
      return true;
    });
  }

  async putTenant(tenant: Tenant): Promise<void> {
    const valid = assertValidTenant(tenant);
    await this.mutate((s) => {
      s.tenants.set(valid.id, valid);
      return true;
    });
  }

  async revokeKey(prefix: string, at: Date = new Date()): Promise<boolean> {
    if (!KEY_PREFIX_PATTERN.test(prefix)) return false;
    let found = false;
    await this.mutate((s) => {
      const current = s.keys.get(prefix);
      if (!current) return false;
      found = true;
      if (current.revoked_at !== null) return false;
      s.keys.set(prefix, { ...current, revoked_at: at.toISOString() });
      return true;
    });
    return found;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.polling) unwatchFile(this.path, this.onStat);
    this.polling = false;
    this.watcher?.close();
    this.watcher = undefined;
    if (this.reloadTimer) clearTimeout(this.reloadTimer);
    await this.queue.catch(() => undefined);
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private readonly onStat = (curr: Stats, prev: Stats): void => {
    if (curr.mtimeMs !== prev.mtimeMs || curr.ino !== prev.ino || curr.size !== prev.size) this.scheduleReload();
  };

  /** Coalesces bursts of events (a rename fires several) into one reload. */
  private scheduleReload(): void {
    if (this.closed || this.reloadTimer) return;
    this.reloadTimer = setTimeout(() => {
      this.reloadTimer = undefined;
      this.serial(() => this.reload()).catch((err: unknown) => {
        this.logger.warn({ path: this.path, err: message(err) }, 'could not reload keys.json; keeping the previous state');
      });
    }, 20);
    this.reloadTimer.unref();
  }

  /** Reads the file into memory; an unreadable or corrupt file keeps the last good state. */
  private async reload(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) {
        if (this.lastText !== undefined) this.logger.warn({ path: this.path }, 'keys.json disappeared; keeping the keys already loaded');
        return;
      }
      throw err;
    }
    if (text === this.lastText) return;
    const parsed = this.parseFile(text, true);
    if (!parsed) return;
    this.lastText = text;
    this.state = parsed;
  }

  /** undefined when the file is not a key-store document at all. */
  private parseFile(text: string, warn: boolean): FileState | undefined {
    if (text.trim() === '') return { tenants: new Map(), keys: new Map() };
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      if (warn) this.logger.warn({ path: this.path, err: message(err) }, 'keys.json is not valid JSON; ignoring it');
      return undefined;
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
      if (warn) this.logger.warn({ path: this.path }, 'keys.json is not a JSON object; ignoring it');
      return undefined;
    }
    const { tenants = {}, keys = {} } = doc as { tenants?: unknown; keys?: unknown };
    const state: FileState = { tenants: new Map(), keys: new Map() };
    for (const [id, value] of Object.entries(typeof tenants === 'object' && tenants !== null ? tenants : {})) {
      const result = parseTenant(value);
      if (result.ok && result.value.id === id) state.tenants.set(id, result.value);
      else if (warn) this.logger.warn({ path: this.path, tenant: id, err: result.ok ? 'id does not match its entry' : result.error }, 'skipping invalid tenant in keys.json');
    }
    for (const [prefix, value] of Object.entries(typeof keys === 'object' && keys !== null ? keys : {})) {
      const result = parseKeyRecord(value);
      if (result.ok && result.value.prefix === prefix) state.keys.set(prefix, result.value);
      else if (warn) this.logger.warn({ path: this.path, key: prefix, err: result.ok ? 'prefix does not match its entry' : result.error }, 'skipping invalid key in keys.json');
    }
    return state;
  }

  /**
   * Read-modify-write under the lock, from the file's current contents (not the possibly stale
   * in-memory copy). `change` returns false when there is nothing to write.
   */
  private mutate(change: (state: FileState) => boolean): Promise<void> {
    if (this.closed) return Promise.reject(new Error('key store is closed'));
    return this.serial(() => this.mutateNow(change));
  }

  private async mutateNow(change: (state: FileState) => boolean): Promise<void> {
    await mkdir(this.options.dir, { recursive: true });
    const release = await this.lock();
    try {
      let text = '';
      try {
        text = await readFile(this.path, 'utf8');
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err;
      }
      const current = this.parseFile(text, false);
      if (!current) {
        throw new Error(`${this.path} is not valid JSON; fix or move it away before changing keys`);
      }
      if (!change(current)) {
        this.lastText = text;
        this.state = current;
        return;
      }
      const doc: FileShape = {
        version: 1,
        tenants: Object.fromEntries([...current.tenants].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
        keys: Object.fromEntries([...current.keys].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
      };
      const next = `${JSON.stringify(doc, null, 2)}\n`;
      await this.writeAtomically(next);
      this.lastText = next;
      this.state = current;
    } finally {
      await release();
    }
  }

  private async writeAtomically(text: string): Promise<void> {
    const tmp = `${this.path}.${process.pid}.${Date.now()}.tmp`;
    const handle = await open(tmp, 'w', 0o600);
    try {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await rename(tmp, this.path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    // make the rename itself durable
    try {
      const dir = await open(this.options.dir, 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch {
      // not supported everywhere; the data is already in place
    }
  }

  private async lock(): Promise<() => Promise<void>> {
    const deadline = Date.now() + this.lockTimeoutMs;
    for (;;) {
      try {
        const handle = await open(this.lockPath, 'wx', 0o600);
        await handle.writeFile(`${process.pid}\n`);
        await handle.close();
        return () => rm(this.lockPath, { force: true });
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw err;
      }
      try {
        const info = await stat(this.lockPath);
        if (Date.now() - info.mtimeMs > STALE_LOCK_MS) {
          this.logger.warn({ path: this.lockPath }, 'removing a stale keys.json lock');
          await rm(this.lockPath, { force: true });
          continue;
        }
      } catch {
        continue; // released meanwhile
      }
      if (Date.now() > deadline) throw new Error(`${this.lockPath} is held by another process; try again (remove it if no kgents process is running)`);
      await sleep(15 + Math.random() * 20);
    }
  }
}
