/**
 * The NetworkPolicies, evaluated into a reachability table: every flow the system needs is
 * allowed, and a sample of flows it does not need is denied (by policy: every denied pod
 * destination does listen on the port).
 */
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { OVERLAYS, type ContainerPort, type K8sObject, allContainers, readYaml, render, workloads } from './helpers.js';
import { type Endpoint, NetworkPolicies, type Protocol, inCidr } from './netpol.js';

interface KongValues {
  controller: { podLabels: Record<string, string> };
  gateway: { podLabels: Record<string, string> };
}

/** The pods of the platform (one per workload; two NATS servers) plus the pods and hosts outside it. */
function universe(overlay: (typeof OVERLAYS)[number]): { policies: NetworkPolicies; ep: (name: string) => Endpoint } {
  const objects = render(overlay);
  const nsLabels = new Map<string, Record<string, string>>();
  for (const o of objects.filter((x) => x.kind === 'Namespace')) nsLabels.set(o.metadata.name, { ...o.metadata.labels, 'kubernetes.io/metadata.name': o.metadata.name });
  nsLabels.set('kube-system', { 'kubernetes.io/metadata.name': 'kube-system' });

  const endpoints = new Map<string, Endpoint>();
  let n = 10;
  const pod = (name: string, namespace: string, labels: Record<string, string>, ports: readonly ContainerPort[]): void => {
    endpoints.set(name, { kind: 'pod', name, namespace, labels, ports, ip: `10.244.0.${n++}` });
  };
  for (const w of workloads(objects)) {
    const ports = allContainers(w.spec).flatMap((c) => c.ports ?? []);
    const base = w.object.metadata.name.replace(/-(blue|green)$/, '');
    if (w.object.kind === 'StatefulSet' && base === 'nats') {
      pod('nats-0', w.namespace, w.labels, ports);
      pod('nats-1', w.namespace, w.labels, ports);
    } else if (!endpoints.has(base)) {
      pod(base, w.namespace, w.labels, ports);
    }
  }
  // Installed by Kong's Helm chart with deploy/helm/kong-values.yaml (its pod labels are read from there).
  const kong = readYaml<KongValues>('deploy', 'helm', 'kong-values.yaml');
  pod('kong-proxy', 'kgents-gateway', kong.gateway.podLabels, [{ name: 'proxy', containerPort: 8000 }, { name: 'proxy-tls', containerPort: 8443 }, { name: 'admin-tls', containerPort: 8444 }]);
  pod('kong-controller', 'kgents-gateway', kong.controller.podLabels, []);
  pod('kube-dns', 'kube-system', { 'k8s-app': 'kube-dns' }, [{ name: 'dns', containerPort: 53, protocol: 'UDP' }, { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' }]);
  // Documentation and test addresses only (RFC 5737); never contacted.
  endpoints.set('internet-client', { kind: 'external', name: 'internet-client', ip: '198.51.100.7' });
  endpoints.set('openmeter-or-stripe', { kind: 'external', name: 'openmeter-or-stripe', ip: '203.0.113.10' });
  endpoints.set('kube-apiserver', { kind: 'external', name: 'kube-apiserver', ip: '172.18.0.2' });
  endpoints.set('cloud-metadata', { kind: 'external', name: 'cloud-metadata', ip: '169.254.169.254' });
  endpoints.set('private-host', { kind: 'external', name: 'private-host', ip: '10.1.2.3' });

  const policies = new NetworkPolicies(objects, nsLabels);
  return {
    policies,
    ep: (name) => {
      const e = endpoints.get(name);
      if (!e) throw new Error(`no endpoint ${name} (have ${[...endpoints.keys()].join(', ')})`);
      return e;
    },
  };
}

type Row = readonly [src: string, dst: string, port: number, protocol: Protocol, why: string];

/** Flows the system needs. */
const ALLOWED: readonly Row[] = [
  ['internet-client', 'kong-proxy', 8443, 'TCP', 'clients reach the gateway (HTTPS)'],
  ['internet-client', 'kong-proxy', 8000, 'TCP', 'clients reach the gateway (HTTP, redirected)'],
  ['kong-proxy', 'kgents-api', 8000, 'TCP', 'gateway -> API'],
  ['kong-controller', 'kong-proxy', 8444, 'TCP', 'KIC configures the proxy'],
  ['kong-controller', 'kube-apiserver', 6443, 'TCP', 'KIC watches Gateway API objects'],
  ['kgents-api', 'nats-0', 4222, 'TCP', 'API -> NATS'],
  ['kgents-api', 'redis', 6379, 'TCP', 'API -> Redis'],
  ['kgents-api', 'otel-collector', 4318, 'TCP', 'API -> OTel collector (OTLP/HTTP)'],
  ['kgents-api', 'openmeter-or-stripe', 443, 'TCP', 'API -> OpenMeter and Stripe (HTTPS)'],
  ['nats-0', 'nats-1', 6222, 'TCP', 'NATS cluster routes'],
  ['nats-1', 'nats-0', 6222, 'TCP', 'NATS cluster routes (other way)'],
  ['kgents-backup', 'nats-0', 4222, 'TCP', 'backup job -> NATS'],
  ['kgents-backup', 'pushgateway', 9091, 'TCP', 'backup job reports its outcome'],
  ['prometheus', 'kgents-api', 8000, 'TCP', 'scrape the API'],
  ['prometheus', 'nats-0', 7777, 'TCP', 'scrape the NATS exporter'],
  ['prometheus', 'pushgateway', 9091, 'TCP', 'scrape the Pushgateway'],
  ['prometheus', 'alertmanager', 9093, 'TCP', 'send alerts'],
  ['prometheus', 'kube-apiserver', 443, 'TCP', 'pod discovery'],
  ['alertmanager', 'openmeter-or-stripe', 443, 'TCP', 'on-call webhook (any public HTTPS host)'],
  ['grafana', 'prometheus', 9090, 'TCP', 'dashboards'],
  ['grafana', 'loki', 3100, 'TCP', 'logs panel'],
  ['grafana', 'tempo', 3200, 'TCP', 'traces'],
  ['promtail', 'loki', 3100, 'TCP', 'ship logs'],
  ['promtail', 'kube-apiserver', 443, 'TCP', 'pod discovery'],
  ['otel-collector', 'tempo', 4317, 'TCP', 'traces to Tempo'],
];

/** Every pod resolves names. */
const DNS_CLIENTS = ['kgents-api', 'nats-0', 'redis', 'kgents-backup', 'kong-proxy', 'kong-controller', 'prometheus', 'grafana', 'promtail', 'otel-collector', 'alertmanager', 'loki', 'tempo', 'pushgateway'];

/** A sample of flows nobody needs. */
const DENIED: readonly Row[] = [
  ['internet-client', 'kgents-api', 8000, 'TCP', 'no way around the gateway'],
  ['internet-client', 'nats-0', 4222, 'TCP', 'NATS is internal'],
  ['internet-client', 'grafana', 3000, 'TCP', 'Grafana only through port-forward'],
  ['kong-proxy', 'nats-0', 4222, 'TCP', 'the gateway reaches only the API'],
  ['kong-proxy', 'redis', 6379, 'TCP', 'the gateway reaches only the API'],
  ['kong-proxy', 'prometheus', 9090, 'TCP', 'the gateway reaches only the API'],
  ['kong-proxy', 'openmeter-or-stripe', 443, 'TCP', 'the gateway has no outbound internet'],
  ['kgents-api', 'nats-0', 6222, 'TCP', 'the API is a client, not a route'],
  ['kgents-api', 'nats-0', 8222, 'TCP', 'NATS monitoring port is not for the API'],
  ['kgents-api', 'prometheus', 9090, 'TCP', 'the API needs no Prometheus'],
  ['kgents-api', 'openmeter-or-stripe', 80, 'TCP', 'plain HTTP out is not allowed'],
  ['kgents-api', 'cloud-metadata', 80, 'TCP', 'no cloud metadata endpoint'],
  ['kgents-api', 'private-host', 443, 'TCP', 'no private-range hosts outside the policies'],
  ['kgents-api', 'kube-apiserver', 6443, 'TCP', 'the API has no business with the Kubernetes API'],
  ['kgents-backup', 'redis', 6379, 'TCP', 'backup reads NATS only'],
  ['kgents-backup', 'kgents-api', 8000, 'TCP', 'backup does not call the API'],
  ['kgents-backup', 'openmeter-or-stripe', 443, 'TCP', 'backup has no internet'],
  ['redis', 'openmeter-or-stripe', 443, 'TCP', 'Redis has no internet'],
  ['redis', 'nats-0', 4222, 'TCP', 'Redis talks to nobody'],
  ['nats-0', 'openmeter-or-stripe', 443, 'TCP', 'NATS has no internet'],
  ['nats-0', 'redis', 6379, 'TCP', 'NATS talks only to its peers'],
  ['prometheus', 'redis', 6379, 'TCP', 'nothing to scrape on Redis'],
  ['prometheus', 'nats-0', 4222, 'TCP', 'scrapes only the exporter port'],
  ['grafana', 'kgents-api', 8000, 'TCP', 'Grafana reads Prometheus, not the API'],
  ['grafana', 'nats-0', 4222, 'TCP', 'Grafana reaches only its data sources'],
  ['promtail', 'kgents-api', 8000, 'TCP', 'Promtail only ships to Loki'],
  ['otel-collector', 'kgents-api', 8000, 'TCP', 'the collector only exports to Tempo'],
  ['otel-collector', 'openmeter-or-stripe', 443, 'TCP', 'the collector has no internet'],
  ['tempo', 'openmeter-or-stripe', 443, 'TCP', 'Tempo has no internet'],
  ['loki', 'kgents-api', 8000, 'TCP', 'Loki receives only'],
  ['kong-controller', 'kgents-api', 8000, 'TCP', 'the controller does not proxy'],
  ['kgents-api', 'kgents-api', 8000, 'TCP', 'API pods do not call each other'],
];

test('CIDR matching (the evaluator\'s own arithmetic)', () => {
  assert.ok(inCidr('10.244.0.5', '10.0.0.0/8'));
  assert.ok(!inCidr('11.0.0.1', '10.0.0.0/8'));
  assert.ok(inCidr('172.31.255.255', '172.16.0.0/12'));
  assert.ok(!inCidr('172.32.0.0', '172.16.0.0/12'));
  assert.ok(inCidr('203.0.113.10', '0.0.0.0/0'));
});

for (const overlay of OVERLAYS) {
  describe(`reachability in ${overlay}`, () => {
    const u = (): ReturnType<typeof universe> => universe(overlay);
    const listens = (dst: Endpoint, port: number, protocol: Protocol): boolean =>
      dst.kind === 'external' || (dst).ports.some((p) => p.containerPort === port && (p.protocol ?? 'TCP') === protocol);

    test('the flows the system needs are allowed', () => {
      const { policies, ep } = u();
      const failures: string[] = [];
      for (const [src, dst, port, protocol, why] of ALLOWED) {
        const d = ep(dst);
        assert.ok(listens(d, port, protocol), `${dst} does not listen on ${port}/${protocol}: the table is wrong`);
        if (!policies.allows(ep(src), d, port, protocol)) failures.push(`${src} -> ${dst}:${port}/${protocol} (${why})`);
      }
      for (const src of DNS_CLIENTS) {
        for (const protocol of ['UDP', 'TCP'] as const) if (!policies.allows(ep(src), ep('kube-dns'), 53, protocol)) failures.push(`${src} -> kube-dns:53/${protocol}`);
      }
      assert.deepEqual(failures, [], 'needed flows that the policies block');
    });

    test('a sample of unneeded flows is denied by policy', () => {
      const { policies, ep } = u();
      const leaks: string[] = [];
      for (const [src, dst, port, protocol, why] of DENIED) {
        const d = ep(dst);
        assert.ok(listens(d, port, protocol), `${dst} does not listen on ${port}/${protocol}: the row would be vacuous`);
        if (policies.allows(ep(src), d, port, protocol)) leaks.push(`${src} -> ${dst}:${port}/${protocol} (${why})`);
      }
      assert.deepEqual(leaks, [], 'flows the policies should block');
    });

    test('every pod of the platform is selected by a default-deny policy for both directions', () => {
      const objects = render(overlay);
      for (const w of workloads(objects)) {
        const deny = objects.find((o) => o.kind === 'NetworkPolicy' && o.metadata.namespace === w.namespace && o.metadata.name === 'default-deny-all');
        assert.ok(deny, `${w.namespace}: no default-deny-all`);
      }
    });
  });
}

test('the Kong pods the policies select are labelled by the Helm values, not by chance', () => {
  const kong = readYaml<KongValues>('deploy', 'helm', 'kong-values.yaml');
  assert.deepEqual(kong.gateway.podLabels, { 'kgents.io/role': 'gateway-proxy' });
  assert.deepEqual(kong.controller.podLabels, { 'kgents.io/role': 'gateway-controller' });
  const policies = render('production').filter((o) => o.kind === 'NetworkPolicy');
  const text = JSON.stringify(policies);
  assert.ok(text.includes('"kgents.io/role":"gateway-proxy"') && text.includes('"kgents.io/role":"gateway-controller"'));
});

describe('the evaluator itself', () => {
  const ns = new Map([['a', { 'kubernetes.io/metadata.name': 'a', tier: 'a' }], ['b', { 'kubernetes.io/metadata.name': 'b', tier: 'b' }]]);
  const web: Endpoint = { kind: 'pod', name: 'web', namespace: 'a', labels: { app: 'web' }, ports: [{ name: 'http', containerPort: 80 }], ip: '10.244.1.1' };
  const db: Endpoint = { kind: 'pod', name: 'db', namespace: 'b', labels: { app: 'db' }, ports: [{ name: 'pg', containerPort: 5432 }], ip: '10.244.1.2' };
  const other: Endpoint = { kind: 'pod', name: 'other', namespace: 'a', labels: { app: 'other' }, ports: [], ip: '10.244.1.3' };
  const policy = (namespace: string, name: string, spec: unknown): K8sObject => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace }, spec });
  const denyAll = (namespace: string): K8sObject => policy(namespace, 'deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] });

  test('no policy: everything flows; default deny: nothing does', () => {
    assert.ok(new NetworkPolicies([], ns).allows(web, db, 5432));
    assert.ok(!new NetworkPolicies([denyAll('b')], ns).allows(web, db, 5432));
    assert.ok(!new NetworkPolicies([denyAll('a')], ns).allows(web, db, 5432));
  });

  test('a connection needs egress at the source and ingress at the destination', () => {
    const ingressOnly = [denyAll('a'), denyAll('b'), policy('b', 'in', { podSelector: { matchLabels: { app: 'db' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { tier: 'a' } } }], ports: [{ port: 5432 }] }] })];
    assert.ok(!new NetworkPolicies(ingressOnly, ns).allows(web, db, 5432));
    const both = [...ingressOnly, policy('a', 'out', { podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: { matchLabels: { tier: 'b' } }, podSelector: { matchLabels: { app: 'db' } } }], ports: [{ port: 'pg' }] }] })];
    assert.ok(new NetworkPolicies(both, ns).allows(web, db, 5432));
    assert.ok(!new NetworkPolicies(both, ns).allows(other, db, 5432), 'egress policy selects web only');
    assert.ok(!new NetworkPolicies(both, ns).allows(web, db, 5433), 'wrong port');
  });

  test('namespaceSelector and podSelector in one peer are AND; in two peers they are OR', () => {
    const and = [denyAll('b'), policy('b', 'in', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { tier: 'a' } }, podSelector: { matchLabels: { app: 'web' } } }] }] })];
    assert.ok(new NetworkPolicies(and, ns).allows(web, db, 5432));
    assert.ok(!new NetworkPolicies(and, ns).allows(other, db, 5432));
    const or = [denyAll('b'), policy('b', 'in', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { tier: 'a' } } }, { podSelector: { matchLabels: { app: 'web' } } }] }] })];
    assert.ok(new NetworkPolicies(or, ns).allows(other, db, 5432));
  });

  test('ipBlock except carves out ranges; a bare podSelector stays in its namespace', () => {
    const out = [denyAll('a'), policy('a', 'out', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] } }], ports: [{ port: 443 }] }] })];
    const pub: Endpoint = { kind: 'external', name: 'pub', ip: '203.0.113.1' };
    const priv: Endpoint = { kind: 'external', name: 'priv', ip: '10.9.9.9' };
    assert.ok(new NetworkPolicies(out, ns).allows(web, pub, 443));
    assert.ok(!new NetworkPolicies(out, ns).allows(web, priv, 443));
    const local = [denyAll('b'), policy('b', 'in', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }] }] })];
    assert.ok(!new NetworkPolicies(local, ns).allows(web, db, 5432), 'web is in another namespace');
  });
});
