import { FaultProxy, type FaultProxyStats, type FaultSetting } from '../fault/proxy.js';
import { PartStateError, UnknownPartError } from './errors.js';

/** A fault proxy in front of one NATS node, as the stack reports it. */
export interface NatsProxyState extends FaultProxyStats {
  /** The NATS node it fronts (`nats-1`, ...). */
  readonly node: string;
  /** The URL the API instances use for that node. */
  readonly proxy_url: string;
}

/**
 * Network faults between the API instances and NATS, for chaos scenarios (network-partition). Only
 * a stack started with `natsFaults` (`kgents stack up --nats-faults`) has the proxies; the others
 * reject these calls.
 */
export interface NatsFaultControl {
  /** The proxies' modes and counters. */
  natsFaults(): Promise<NatsProxyState[]>;
  /** Sets the mode of every proxy, or of the one in front of `node`. */
  setNatsFault(setting: FaultSetting, node?: string): Promise<NatsProxyState[]>;
}

/** Whether a stack control (Stack, StackClient, or another implementation) can inject NATS network faults. */
export function hasNatsFaults<T extends object>(control: T): control is T & NatsFaultControl {
  return typeof (control as Partial<NatsFaultControl>).setNatsFault === 'function' && typeof (control as Partial<NatsFaultControl>).natsFaults === 'function';
}

export const NO_FAULT_PROXIES = 'this stack runs without NATS fault proxies; start it with kgents stack up --nats-faults (Stack option natsFaults: true)';

/**
 * One fault proxy per NATS node, run by the supervisor. The API instances reach NATS only through
 * them; the supervisor's own connections (stream set-up, keys) go direct.
 */
export class NatsFaultProxies {
  private readonly proxies = new Map<string, FaultProxy>();

  /** Starts a proxy for each node (id → client port); resolves once all listen. */
  async start(nodes: readonly { readonly id: string; readonly port: number }[]): Promise<void> {
    for (const node of nodes) {
      const proxy = new FaultProxy({ upstreamPort: node.port, name: node.id });
      await proxy.start();
      this.proxies.set(node.id, proxy);
    }
  }

  /** What the API instances get as NATS_URLS. */
  urls(): string[] {
    return [...this.proxies.values()].map((p) => `nats://127.0.0.1:${p.port}`);
  }

  get enabled(): boolean {
    return this.proxies.size > 0;
  }

  states(): NatsProxyState[] {
    return [...this.proxies].map(([node, p]) => ({ node, proxy_url: `nats://127.0.0.1:${p.port}`, ...p.stats() }));
  }

  set(setting: FaultSetting, node?: string): NatsProxyState[] {
    if (!this.enabled) throw new PartStateError(NO_FAULT_PROXIES);
    const targets = node === undefined ? [...this.proxies.values()] : [this.proxies.get(node)];
    const missing = targets.some((p) => !p);
    if (missing) throw new UnknownPartError(node ?? '', [...this.proxies.keys()]);
    for (const p of targets) p?.set(setting);
    return this.states();
  }

  async stop(): Promise<void> {
    await Promise.all([...this.proxies.values()].map((p) => p.stop()));
  }
}
