import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { BalancerStats } from './balancer.js';
import type { NatsProxyState } from './faults.js';
import type { ProcessRecord } from './processes.js';

export const STATE_FILE = 'stack.json';
export const STATE_VERSION = 1;

export type PartKind = 'nats' | 'redis' | 'api';
/**
 * `starting`: launched, not ready yet; `running`: ready; `restarting`: exited unexpectedly, a
 * restart is scheduled; `stopping`/`stopped`: on request; `failed`: could not be started.
 */
export type PartStatus = 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped' | 'failed';

export interface ExitRecord {
  readonly code: number | null;
  readonly signal: string | null;
  readonly at: string;
}

/** One part of the stack: a NATS node, Redis, or an API slot (whose process changes when it is replaced). */
export interface PartState {
  /** Stable name: `nats-1`..`nats-3`, `redis`, `api-1`..`api-N`. */
  readonly id: string;
  readonly kind: PartKind;
  readonly status: PartStatus;
  readonly desired: 'running' | 'stopped';
  /** The current process, or null when none runs. */
  readonly process: ProcessRecord | null;
  /** When the current process was started (ISO time). */
  readonly started_at: string | null;
  /** Unplanned exits followed by a restart by the supervisor. */
  readonly restarts: number;
  readonly last_exit: ExitRecord | null;
  /** nats: client, monitor, cluster; redis: client; api: http. */
  readonly ports: Readonly<Record<string, number>>;
  /** nats://, redis:// or http:// address of the part itself (not the balancer). */
  readonly url: string;
  readonly dir: string;
  readonly log: string;
  /** API slots: the INSTANCE_ID of the current process (`api-1`, then `api-1.g2` after a replacement...). */
  readonly instance_id?: string;
  readonly generation?: number;
  readonly replacements?: number;
  /** API slots: whether the balancer currently sends it requests (live state only). */
  readonly in_rotation?: boolean;
}

/** An API process taken out of rotation by a replacement, draining until it exits. */
export interface RetiringState {
  readonly id: string;
  readonly instance_id: string;
  readonly process: ProcessRecord;
  readonly port: number;
  readonly since: string;
}

export type StackStatus = 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

/** DIR/stack.json: everything `status`, `down` and other tools need to find and control the stack. */
export interface StackState {
  readonly version: typeof STATE_VERSION;
  readonly dir: string;
  readonly status: StackStatus;
  readonly error?: string;
  /** The public URL: the balancer in front of the API instances. */
  readonly url: string;
  readonly port: number;
  /** The supervisor's control endpoint (loopback, bearer token); see docs/stack.md. */
  readonly control: { readonly url: string; readonly token: string };
  /** The supervisor process (it also runs the balancer and the control endpoint). */
  readonly supervisor: ProcessRecord;
  readonly nats_urls: readonly string[];
  readonly redis_url: string;
  /** Stacks started with --nats-faults: the fault proxy in front of each NATS node, which the API instances use. */
  readonly nats_proxies?: readonly NatsProxyState[];
  readonly parts: readonly PartState[];
  readonly retiring: readonly RetiringState[];
  /** Live only (GET /state on the control endpoint): the balancer's counters and backends. */
  readonly balancer?: BalancerStats;
  readonly started_at: string;
  readonly updated_at: string;
}

export function statePath(dir: string): string {
  return join(dir, STATE_FILE);
}

/** Writes atomically (rename), readable by the owner only: it holds the control token. */
export function writeState(dir: string, state: StackState): void {
  const path = statePath(dir);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

export class StateFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateFileError';
  }
}

/** Reads DIR/stack.json; undefined if there is none. Throws StateFileError if it is unreadable. */
export function readState(dir: string): StackState | undefined {
  let raw: string;
  try {
    raw = readFileSync(statePath(dir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateFileError(`cannot read ${statePath(dir)}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new StateFileError(`${statePath(dir)} is not valid JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || (parsed as { version?: unknown }).version !== STATE_VERSION
    || !Array.isArray((parsed as { parts?: unknown }).parts)) {
    throw new StateFileError(`${statePath(dir)} is not a kgents stack state file (version ${STATE_VERSION})`);
  }
  return parsed as StackState;
}

/** Every process a state file records: the supervisor, each part's current process, retiring API processes. */
export function recordedProcesses(state: StackState): { readonly id: string; readonly process: ProcessRecord }[] {
  return [
    { id: 'supervisor', process: state.supervisor },
    ...state.parts.flatMap((p) => (p.process ? [{ id: p.id, process: p.process }] : [])),
    ...state.retiring.map((r) => ({ id: `${r.id} (${r.instance_id}, retiring)`, process: r.process })),
  ];
}
