/**
 * Every overlay renders with `kubectl kustomize`, every object validates against the Kubernetes
 * schema (kubernetes-models 4.5.1 = Kubernetes v1.33.0 OpenAPI; Gateway API v1 from
 * @kubernetes-models/gateway-api 0.5.1), and the objects agree with each other: selectors and
 * targets find their workloads, references find their objects, limits and security settings are
 * everywhere.
 */
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import {
  OVERLAYS, SCHEMA_KUBERNETES_VERSION, type K8sObject, type LabelSelector, allContainers, apiDeployments, configMap, find, readRepoFile, render,
  selectorMatches, workloads,
} from './helpers.js';


interface ModelClass {
  new (data: unknown): { validate(): void };
  readonly kind?: string;
  readonly apiVersion?: string;
}

function isModelClass(value: unknown): value is ModelClass {
  return typeof value === 'function' && 'kind' in value && typeof value.kind === 'string';
}

const modelModules = new Map<string, Record<string, unknown>>();

async function modelFor(apiVersion: string, kind: string): Promise<ModelClass | undefined> {
  let specifier: string;
  if (apiVersion.startsWith('gateway.networking.k8s.io/')) specifier = `@kubernetes-models/gateway-api/${apiVersion}`;
  else if (apiVersion.includes('.') && !apiVersion.endsWith('.k8s.io/v1') && !apiVersion.includes('.k8s.io/')) return undefined;
  else specifier = `kubernetes-models/${apiVersion}`;
  let mod = modelModules.get(specifier);
  if (!mod) {
    try {
      mod = (await import(specifier)) as Record<string, unknown>;
    } catch {
      return undefined;
    }
    modelModules.set(specifier, mod);
  }
  return Object.values(mod).find((v): v is ModelClass => isModelClass(v) && v.kind === kind);
}

/**
 * Kong's CRDs ship no JSON schema on npm; KongPlugin is checked against the subset of its CRD this
 * deployment uses (top-level fields, and only the plugins it means to run).
 */
function validateKongPlugin(o: K8sObject): void {
  const allowedTop = new Set(['apiVersion', 'kind', 'metadata', 'plugin', 'config', 'disabled', 'protocols', 'ordering', 'instance_name']);
  for (const key of Object.keys(o)) assert.ok(allowedTop.has(key), `KongPlugin ${o.metadata.name}: unknown field ${key}`);
  assert.equal(o.apiVersion, 'configuration.konghq.com/v1');
  assert.equal(typeof o.plugin, 'string');
  assert.ok(['request-size-limiting', 'correlation-id'].includes(o.plugin as string), `KongPlugin ${o.metadata.name}: plugin ${String(o.plugin)} is not one this deployment means to run`);
  assert.equal(typeof o.config, 'object');
}

const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'GatewayClass']);

/** Secrets are created at deploy time (docs/deployment.md step 1), never committed. */
export const EXTERNAL_SECRETS: Record<string, Record<string, readonly string[]>> = {
  'kgents-api': { 'kgents-api-secrets': ['redis-url', 'openmeter-api-key', 'stripe-webhook-secret'] },
  'kgents-agents': { 'redis-auth': ['password'] },
  'kgents-observability': { 'grafana-admin': ['password'], 'alertmanager-receivers': ['oncall-webhook-url'] },
  'kgents-gateway': { 'kgents-tls': ['tls.crt', 'tls.key'] },
};

test('the schema validator is not vacuous: it rejects a malformed Deployment and an HTTPRoute with a bad path type', async () => {
  const Deployment = await modelFor('apps/v1', 'Deployment');
  const HTTPRoute = await modelFor('gateway.networking.k8s.io/v1', 'HTTPRoute');
  assert.ok(Deployment && HTTPRoute);
  const deployment = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' }, spec: { replicas: 'two', selector: {}, template: { spec: { containers: [{ name: 'a', image: 'a:1' }] } } } };
  assert.throws(() => new Deployment(deployment).validate(), /replicas/);
  const route = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'x' }, spec: { rules: [{ matches: [{ path: { type: 'Glob', value: '/x' } }] }] } };
  assert.throws(() => new HTTPRoute(route).validate(), /type/);
});

for (const overlay of OVERLAYS) {
  describe(`overlay ${overlay}`, () => {
    const objects = (): K8sObject[] => render(overlay);

    test('renders with kubectl kustomize', () => {
      assert.ok(objects().length > 50, `only ${objects().length} objects`);
    });

    test(`every object validates against the Kubernetes ${SCHEMA_KUBERNETES_VERSION} schema (Gateway API v1 for routes)`, async () => {
      const unvalidated: string[] = [];
      for (const o of objects()) {
        const id = `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`;
        if (o.kind === 'KongPlugin') {
          validateKongPlugin(o);
          continue;
        }
        const Model = await modelFor(o.apiVersion, o.kind);
        if (!Model) {
          unvalidated.push(`${o.apiVersion} ${o.kind}`);
          continue;
        }
        try {
          new Model(o).validate();
        } catch (err) {
          assert.fail(`${id}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      assert.deepEqual(unvalidated, [], 'objects of a kind no schema covers');
    });

    test('names are unique, namespaced objects name their namespace, and it is one of ours', () => {
      const namespaces = new Set(objects().filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name));
      assert.deepEqual([...namespaces].sort(), ['kgents-agents', 'kgents-api', 'kgents-gateway', 'kgents-observability']);
      const seen = new Set<string>();
      for (const o of objects()) {
        const id = `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
        assert.ok(!seen.has(id), `duplicate ${id}`);
        seen.add(id);
        if (CLUSTER_SCOPED.has(o.kind)) assert.equal(o.metadata.namespace, undefined, `${id} is cluster-scoped`);
        else assert.ok(o.metadata.namespace && namespaces.has(o.metadata.namespace), `${id}: namespace missing or not ours`);
      }
    });

    test('namespaces carry their tier label', () => {
      const tiers = Object.fromEntries(objects().filter((o) => o.kind === 'Namespace').map((o) => [o.metadata.name, o.metadata.labels?.['kgents.io/tier']]));
      assert.deepEqual(tiers, { 'kgents-api': 'api', 'kgents-agents': 'agents', 'kgents-gateway': 'gateway', 'kgents-observability': 'observability' });
    });

    test('every container has CPU and memory requests and limits, and a pinned image', () => {
      for (const w of workloads(objects())) {
        for (const c of allContainers(w.spec)) {
          const id = `${w.object.kind} ${w.object.metadata.name}/${c.name}`;
          for (const kind of ['requests', 'limits'] as const) {
            for (const res of ['cpu', 'memory']) assert.ok(c.resources?.[kind]?.[res], `${id}: no ${res} ${kind}`);
          }
          assert.match(c.image, /:[A-Za-z0-9][A-Za-z0-9._-]*$/, `${id}: image without a tag`);
          assert.doesNotMatch(c.image, /:latest$/, `${id}: image tagged latest`);
        }
      }
    });

    test('pods run non-root, read-only, without capabilities, with the RuntimeDefault seccomp profile (promtail excepted, see its comment)', () => {
      for (const w of workloads(objects())) {
        const pod = w.spec.securityContext ?? {};
        assert.equal(pod.seccompProfile?.type, 'RuntimeDefault', `${w.object.metadata.name}: seccomp`);
        for (const c of allContainers(w.spec)) {
          const id = `${w.object.metadata.name}/${c.name}`;
          const sc = c.securityContext ?? {};
          assert.equal(sc.allowPrivilegeEscalation, false, `${id}: allowPrivilegeEscalation`);
          assert.equal(sc.readOnlyRootFilesystem, true, `${id}: readOnlyRootFilesystem`);
          assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${id}: capabilities.drop`);
          assert.equal(sc.capabilities?.add, undefined, `${id}: adds capabilities`);
          if (w.object.metadata.name === 'promtail') continue;
          assert.equal(sc.runAsNonRoot ?? pod.runAsNonRoot, true, `${id}: runAsNonRoot`);
          const uid = sc.runAsUser ?? pod.runAsUser;
          assert.ok(uid !== undefined && uid > 0, `${id}: runAsUser must be a non-zero number (kubelet checks numeric ids)`);
        }
        if (w.object.metadata.name !== 'promtail') {
          for (const v of w.spec.volumes ?? []) assert.equal(v.hostPath, undefined, `${w.object.metadata.name}: hostPath volume ${v.name}`);
        }
      }
    });

    test('every Service selects pods of some workload, and its target ports exist on them', () => {
      const ws = workloads(objects());
      for (const svc of objects().filter((o) => o.kind === 'Service')) {
        const spec = svc.spec as { selector?: Record<string, string>; ports: { name?: string; port: number; targetPort?: number | string }[] };
        assert.ok(spec.selector && Object.keys(spec.selector).length > 0, `Service ${svc.metadata.name} has no selector`);
        const pods = ws.filter((w) => w.namespace === svc.metadata.namespace && selectorMatches({ matchLabels: spec.selector }, w.labels));
        assert.ok(pods.length > 0, `Service ${svc.metadata.namespace}/${svc.metadata.name} selects no workload`);
        for (const port of spec.ports) {
          const target = port.targetPort ?? port.port;
          for (const w of pods) {
            const ports = allContainers(w.spec).flatMap((c) => c.ports ?? []);
            const found = typeof target === 'number' ? ports.some((p) => p.containerPort === target) : ports.some((p) => p.name === target);
            assert.ok(found, `Service ${svc.metadata.name} port ${port.name ?? port.port}: ${w.object.metadata.name} has no container port ${target}`);
          }
        }
      }
    });

    test('every workload selector matches its own template, and no two workloads claim the same pods', () => {
      const ws = workloads(objects()).filter((w) => w.selector);
      for (const w of ws) {
        assert.ok(selectorMatches(w.selector, w.labels), `${w.object.metadata.name}: selector does not match its template`);
        for (const other of ws) {
          if (other === w || other.namespace !== w.namespace) continue;
          assert.ok(!selectorMatches(w.selector, other.labels), `${w.object.metadata.name} would adopt ${other.object.metadata.name}'s pods`);
        }
      }
    });

    test('every PodDisruptionBudget and HPA targets an existing workload', () => {
      const ws = workloads(objects());
      for (const pdb of objects().filter((o) => o.kind === 'PodDisruptionBudget')) {
        const spec = pdb.spec as { selector: LabelSelector };
        const hits = ws.filter((w) => w.namespace === pdb.metadata.namespace && selectorMatches(spec.selector, w.labels));
        assert.ok(hits.length > 0, `PDB ${pdb.metadata.name} selects no workload`);
      }
      for (const hpa of objects().filter((o) => o.kind === 'HorizontalPodAutoscaler')) {
        const ref = (hpa.spec as { scaleTargetRef: { apiVersion: string; kind: string; name: string } }).scaleTargetRef;
        const target = find(objects(), ref.kind, ref.name, hpa.metadata.namespace);
        assert.equal(target.apiVersion, ref.apiVersion);
      }
    });

    test('every ConfigMap, Secret, PVC and ServiceAccount a pod uses exists (Secrets: in the documented list)', () => {
      const docs = readRepoFile('docs', 'deployment.md');
      for (const w of workloads(objects())) {
        const ns = w.namespace;
        const has = (kind: string, name: string): boolean => objects().some((o) => o.kind === kind && o.metadata.namespace === ns && o.metadata.name === name);
        const secretKey = (name: string, key?: string): void => {
          const known = EXTERNAL_SECRETS[ns]?.[name];
          assert.ok(known, `${w.object.metadata.name}: Secret ${ns}/${name} is neither in the manifests nor in EXTERNAL_SECRETS`);
          if (key) assert.ok(known.includes(key), `${w.object.metadata.name}: Secret ${name} has no documented key ${key}`);
          assert.ok(docs.includes(name), `docs/deployment.md does not say how to create Secret ${name}`);
        };
        for (const v of w.spec.volumes ?? []) {
          if (v.configMap) assert.ok(has('ConfigMap', v.configMap.name), `${w.object.metadata.name}: no ConfigMap ${v.configMap.name}`);
          if (v.secret) secretKey(v.secret.secretName);
          if (v.persistentVolumeClaim) assert.ok(has('PersistentVolumeClaim', v.persistentVolumeClaim.claimName), `${w.object.metadata.name}: no PVC ${v.persistentVolumeClaim.claimName}`);
        }
        for (const c of allContainers(w.spec)) {
          for (const e of c.env ?? []) {
            const cmRef = e.valueFrom?.configMapKeyRef;
            if (cmRef) assert.ok(has('ConfigMap', cmRef.name), `${c.name}: no ConfigMap ${cmRef.name}`);
            const sRef = e.valueFrom?.secretKeyRef;
            if (sRef) secretKey(sRef.name, sRef.key);
          }
          for (const from of c.envFrom ?? []) if (from.configMapRef) assert.ok(has('ConfigMap', from.configMapRef.name), `${c.name}: no ConfigMap ${from.configMapRef.name}`);
        }
        if (w.spec.serviceAccountName) assert.ok(has('ServiceAccount', w.spec.serviceAccountName), `${w.object.metadata.name}: no ServiceAccount ${w.spec.serviceAccountName}`);
      }
      for (const [ns, secrets] of Object.entries(EXTERNAL_SECRETS)) {
        for (const [name, keys] of Object.entries(secrets)) {
          for (const key of keys) assert.ok(docs.includes(key), `docs/deployment.md: Secret ${ns}/${name} key ${key} not mentioned`);
        }
      }
    });

    test('every namespace starts from default-deny ingress and egress, and allows DNS', () => {
      for (const ns of ['kgents-api', 'kgents-agents', 'kgents-gateway', 'kgents-observability']) {
        const policies = objects().filter((o) => o.kind === 'NetworkPolicy' && o.metadata.namespace === ns);
        const deny = policies.find((p) => {
          const spec = p.spec as { podSelector: LabelSelector; policyTypes?: string[]; ingress?: unknown[]; egress?: unknown[] };
          return Object.keys(spec.podSelector.matchLabels ?? {}).length === 0 && !spec.podSelector.matchExpressions
            && (spec.policyTypes ?? []).includes('Ingress') && (spec.policyTypes ?? []).includes('Egress') && !spec.ingress && !spec.egress;
        });
        assert.ok(deny, `${ns}: no default-deny policy`);
        assert.ok(policies.some((p) => p.metadata.name === 'allow-dns-egress'), `${ns}: no DNS egress policy`);
      }
    });
  });
}

describe('overlay differences', () => {
  const strip = (objects: readonly K8sObject[]): Map<string, string> => {
    const out = new Map<string, string>();
    for (const o of objects) {
      const name = o.metadata.name.replace(/-[a-z0-9]{10}$/, '');
      out.set(`${o.kind}/${o.metadata.namespace ?? ''}/${name}`, JSON.stringify(o).replace(/(kgents-api-config|-config|-rules|-script|-datasources|-dashboards|-providers)-[a-z0-9]{10}\b/g, '$1'));
    }
    return out;
  };

  test('blue/green equals production except the API Deployments, their ConfigMaps, the Service selector, the HPA target and the preview Service', () => {
    const prod = strip(render('production'));
    const bg = strip(render('production-blue-green'));
    const expectedChanged = new Set(['Service/kgents-api/kgents-api', 'HorizontalPodAutoscaler/kgents-api/kgents-api']);
    const changed = [...prod.keys()].filter((k) => bg.has(k) && bg.get(k) !== prod.get(k));
    assert.deepEqual(new Set(changed), expectedChanged);
    assert.deepEqual([...prod.keys()].filter((k) => !bg.has(k)).sort(), ['ConfigMap/kgents-api/kgents-api-config', 'Deployment/kgents-api/kgents-api']);
    assert.deepEqual([...bg.keys()].filter((k) => !prod.has(k)).sort(), [
      'ConfigMap/kgents-api/kgents-api-config-blue', 'ConfigMap/kgents-api/kgents-api-config-green',
      'Deployment/kgents-api/kgents-api-blue', 'Deployment/kgents-api/kgents-api-green', 'Service/kgents-api/kgents-api-preview',
    ]);
  });

  test('blue/green: the two colours are the production Deployment but for name, colour and replicas; the Service and HPA follow the live colour, the preview Service the idle one', () => {
    const objects = render('production-blue-green');
    const [rolling] = apiDeployments(render('production'));
    assert.ok(rolling);
    const rollingTemplate = JSON.stringify((rolling.spec as { template: unknown }).template).replace(/kgents-api-config-[a-z0-9]{10}/g, 'CFG');
    const colours = apiDeployments(objects);
    assert.equal(colours.length, 2);
    const live = colours.find((d) => d.metadata.annotations?.['kgents.io/role'] === 'live');
    const idle = colours.find((d) => d.metadata.annotations?.['kgents.io/role'] === 'idle');
    assert.ok(live && idle);
    for (const d of colours) {
      const colour = d.metadata.labels?.['kgents.io/color'];
      assert.ok(colour === 'blue' || colour === 'green');
      assert.equal(d.metadata.name, `kgents-api-${colour}`);
      const template = JSON.stringify((d.spec as { template: unknown }).template)
        .replace(/kgents-api-config-(blue|green)-[a-z0-9]{10}/g, 'CFG')
        .replace(/,"kgents.io\/color":"(blue|green)"/g, '');
      assert.equal(template, rollingTemplate, `${d.metadata.name}: template differs from the rolling Deployment's`);
      assert.deepEqual(configMap(objects, `kgents-api-config-${colour}`, 'kgents-api').data, configMap(render('production'), 'kgents-api-config', 'kgents-api').data);
    }
    assert.equal((live.spec as { replicas?: number }).replicas, undefined, 'the live colour\'s replicas belong to the HPA');
    assert.equal((idle.spec as { replicas?: number }).replicas, 0);
    const liveColour = live.metadata.labels?.['kgents.io/color'];
    const idleColour = idle.metadata.labels?.['kgents.io/color'];
    assert.equal((find(objects, 'Service', 'kgents-api', 'kgents-api').spec as { selector: Record<string, string> }).selector['kgents.io/color'], liveColour);
    assert.equal((find(objects, 'Service', 'kgents-api-preview', 'kgents-api').spec as { selector: Record<string, string> }).selector['kgents.io/color'], idleColour);
    assert.equal((find(objects, 'HorizontalPodAutoscaler', 'kgents-api', 'kgents-api').spec as { scaleTargetRef: { name: string } }).scaleTargetRef.name, live.metadata.name);
  });

  test('staging differs from production only in its documented ways (logs, HPA ceiling, hostname, environment annotation)', () => {
    const prod = strip(render('production'));
    const staging = strip(render('staging'));
    assert.deepEqual([...prod.keys()].sort(), [...staging.keys()].sort());
    const changed = [...prod.keys()].filter((k) => prod.get(k)?.replaceAll('"kgents.io/environment":"production"', 'ENV') !== staging.get(k)?.replaceAll('"kgents.io/environment":"staging"', 'ENV'));
    // (The API Deployment differs only by its ConfigMap's hash, which strip() removes.)
    assert.deepEqual(changed.sort(), ['ConfigMap/kgents-api/kgents-api-config', 'Gateway/kgents-gateway/kgents', 'HorizontalPodAutoscaler/kgents-api/kgents-api'].sort());
  });
});
