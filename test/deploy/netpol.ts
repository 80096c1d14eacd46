/**
 * A small NetworkPolicy evaluator (networking.k8s.io/v1 semantics) for the reachability table:
 *
 * - A pod is isolated for ingress (egress) when some policy in its namespace selects it and has
 *   Ingress (Egress) in its policyTypes; an isolated pod admits only what some such policy allows.
 *   policyTypes defaults to [Ingress], plus Egress when the policy has egress rules.
 * - A connection needs both: egress allowed at the source and ingress allowed at the destination.
 * - Peers: podSelector alone = pods in the policy's namespace; namespaceSelector alone = all pods in
 *   matching namespaces; both = matching pods in matching namespaces; ipBlock = addresses in the
 *   CIDR minus `except`, matched against external addresses and pod IPs alike (as most CNIs do).
 *   An empty or missing from/to admits every peer; an empty or missing ports admits every port.
 * - Ports: number or container-port name (resolved on the destination pod), protocol (default
 *   TCP), endPort ranges.
 */
import { type ContainerPort, type K8sObject, type LabelSelector, selectorMatches } from './helpers.js';

export type Protocol = 'TCP' | 'UDP';

export interface PodEndpoint {
  readonly kind: 'pod';
  readonly name: string;
  readonly namespace: string;
  readonly labels: Record<string, string>;
  readonly ports: readonly ContainerPort[];
  readonly ip: string;
}

export interface ExternalEndpoint {
  readonly kind: 'external';
  readonly name: string;
  readonly ip: string;
}

export type Endpoint = PodEndpoint | ExternalEndpoint;

interface PolicyPort { protocol?: Protocol; port?: number | string; endPort?: number }
interface PolicyPeer { podSelector?: LabelSelector; namespaceSelector?: LabelSelector; ipBlock?: { cidr: string; except?: string[] } }
interface PolicyRule { from?: PolicyPeer[]; to?: PolicyPeer[]; ports?: PolicyPort[] }
interface PolicySpec { podSelector: LabelSelector; policyTypes?: ('Ingress' | 'Egress')[]; ingress?: PolicyRule[]; egress?: PolicyRule[] }

function ipv4ToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  return parts.reduce((acc, p) => acc * 256 + p, 0);
}

export function inCidr(ip: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  if (!base || !Number.isInteger(bits)) throw new Error(`not a CIDR: ${cidr}`);
  if (bits === 0) return true;
  const size = 2 ** (32 - bits);
  return Math.floor(ipv4ToInt(ip) / size) === Math.floor(ipv4ToInt(base) / size);
}

export class NetworkPolicies {
  private readonly policies: { namespace: string; name: string; spec: PolicySpec }[];

  constructor(objects: readonly K8sObject[], private readonly namespaceLabels: ReadonlyMap<string, Record<string, string>>) {
    this.policies = objects
      .filter((o) => o.kind === 'NetworkPolicy')
      .map((o) => ({ namespace: o.metadata.namespace ?? 'default', name: o.metadata.name, spec: o.spec as PolicySpec }));
  }

  private types(spec: PolicySpec): Set<'Ingress' | 'Egress'> {
    if (spec.policyTypes) return new Set(spec.policyTypes);
    return new Set(spec.egress ? ['Ingress', 'Egress'] : ['Ingress']);
  }

  private selecting(pod: PodEndpoint, direction: 'Ingress' | 'Egress'): PolicySpec[] {
    return this.policies
      .filter((p) => p.namespace === pod.namespace && this.types(p.spec).has(direction) && selectorMatches(p.spec.podSelector, pod.labels))
      .map((p) => p.spec);
  }

  private peerMatches(peer: PolicyPeer, policyNamespace: string, other: Endpoint): boolean {
    if (peer.ipBlock) {
      if (!inCidr(other.ip, peer.ipBlock.cidr)) return false;
      return !(peer.ipBlock.except ?? []).some((c) => inCidr(other.ip, c));
    }
    if (other.kind === 'external') return false;
    if (peer.namespaceSelector) {
      const labels = this.namespaceLabels.get(other.namespace) ?? {};
      if (!selectorMatches(peer.namespaceSelector, labels)) return false;
    } else if (other.namespace !== policyNamespace) {
      return false;
    }
    return peer.podSelector ? selectorMatches(peer.podSelector, other.labels) : true;
  }

  private portMatches(ports: PolicyPort[] | undefined, dst: Endpoint, port: number, protocol: Protocol): boolean {
    if (!ports || ports.length === 0) return true;
    return ports.some((p) => {
      if ((p.protocol ?? 'TCP') !== protocol) return false;
      if (p.port === undefined) return true;
      if (typeof p.port === 'string') {
        if (dst.kind !== 'pod') return false;
        return dst.ports.some((cp) => cp.name === p.port && cp.containerPort === port && (cp.protocol ?? 'TCP') === protocol);
      }
      return p.endPort !== undefined ? port >= p.port && port <= p.endPort : port === p.port;
    });
  }

  private egressAllowed(src: PodEndpoint, dst: Endpoint, port: number, protocol: Protocol): boolean {
    const policies = this.selecting(src, 'Egress');
    if (policies.length === 0) return true;
    return policies.some((spec) => (spec.egress ?? []).some((rule) =>
      (!rule.to || rule.to.length === 0 || rule.to.some((peer) => this.peerMatches(peer, src.namespace, dst)))
      && this.portMatches(rule.ports, dst, port, protocol)));
  }

  private ingressAllowed(dst: PodEndpoint, src: Endpoint, port: number, protocol: Protocol): boolean {
    const policies = this.selecting(dst, 'Ingress');
    if (policies.length === 0) return true;
    return policies.some((spec) => (spec.ingress ?? []).some((rule) =>
      (!rule.from || rule.from.length === 0 || rule.from.some((peer) => this.peerMatches(peer, dst.namespace, src)))
      && this.portMatches(rule.ports, dst, port, protocol)));
  }

  /** Whether `src` can open a connection to `dst` on `port`. */
  allows(src: Endpoint, dst: Endpoint, port: number, protocol: Protocol = 'TCP'): boolean {
    const egress = src.kind === 'pod' ? this.egressAllowed(src, dst, port, protocol) : true;
    const ingress = dst.kind === 'pod' ? this.ingressAllowed(dst, src, port, protocol) : true;
    return egress && ingress;
  }
}
