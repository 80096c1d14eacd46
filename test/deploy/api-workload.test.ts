/**
 * The API's manifests against the service itself: every variable is one the service reads (or a
 * listed pending one), the values parse with its own config loader, the probes hit paths and a
 * port the running service really serves, and the shutdown timings add up.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { CONFIG_VARS } from '../../src/config/schema.js';
import {
  OVERLAYS, type Container, type K8sObject, type Probe, type RunningService, apiDeployments, container, containerEnv, find, memoryBytes, podSpecOf,
  readRepoFile, render, startService,
} from './helpers.js';
import { PENDING_ENV_VARS, pendingNames } from './pending.js';

/** Read by Node.js itself, not by the service. */
const RUNTIME_VARS = new Set(['NODE_OPTIONS']);
/** Read by deploy/base/agents/backup/run-backup.sh, not by the service. */
const BACKUP_SCRIPT_VARS = new Set(['BACKUP_DIR', 'BACKUP_RETAIN', 'METRICS_FILE', 'PUSHGATEWAY_URL']);

/**
 * What a Kubernetes deployment must set because the default is wrong there (the defaults suit a
 * laptop: embedded servers, file key store, one replica). Pending variables are required too.
 */
const DEPLOY_REQUIRED: Record<string, string | RegExp> = {
  PORT: /^\d+$/,
  HOST: '0.0.0.0',
  EMBEDDED_SERVICES: 'off',
  NATS_URLS: /^nats:\/\/nats-0\.nats-headless\.kgents-agents\.svc\.cluster\.local:4222,/,
  NATS_REPLICAS: '3',
  KEY_STORE: 'nats',
  REDIS_URL: '<secret:kgents-api-secrets/redis-url>',
  DATA_DIR: /^\/var\//,
  INSTANCE_ID: '<field:metadata.name>',
  SHUTDOWN_DELAY_MS: /^\d+$/,
  SHUTDOWN_TIMEOUT_MS: /^\d+$/,
  OPENMETER_URL: /^https:\/\//,
  OPENMETER_API_KEY: '<secret:kgents-api-secrets/openmeter-api-key>',
  METERING_MODE: 'durable',
  STRIPE_WEBHOOK_SECRET: '<secret:kgents-api-secrets/stripe-webhook-secret>',
  OTEL_EXPORTER_OTLP_ENDPOINT: /^http:\/\//,
};

function schemaVarNames(): Set<string> {
  return new Set(Object.keys(CONFIG_VARS));
}

function apiEnv(objects: readonly K8sObject[], deployment: K8sObject): Map<string, string> {
  return containerEnv(objects, 'kgents-api', container(podSpecOf(deployment), 'api'));
}

/** The value a secret would hold, for parsing only. */
function sampleSecret(ref: string): string {
  if (ref.endsWith('/redis-url>')) return 'redis://:sample-password@redis.kgents-agents.svc.cluster.local:6379';
  return 'sample-secret-value';
}

for (const overlay of OVERLAYS) {
  describe(`API workload in ${overlay}`, () => {
    const objects = (): K8sObject[] => render(overlay);
    const deployments = (): K8sObject[] => apiDeployments(objects());

    test('every variable of every kgents container is in src/config/schema.ts, a listed pending one, or a runtime/script variable', () => {
      const known = schemaVarNames();
      const pending = pendingNames(PENDING_ENV_VARS);
      const backup = find(objects(), 'CronJob', 'kgents-backup', 'kgents-agents');
      const checks: { id: string; c: Container; ns: string; extra: Set<string> }[] = [
        ...deployments().map((d) => ({ id: d.metadata.name, c: container(podSpecOf(d), 'api'), ns: 'kgents-api', extra: RUNTIME_VARS })),
        { id: 'kgents-backup', c: container(podSpecOf(backup), 'backup'), ns: 'kgents-agents', extra: BACKUP_SCRIPT_VARS },
      ];
      for (const { id, c, ns, extra } of checks) {
        for (const name of containerEnv(objects(), ns, c).keys()) {
          assert.ok(known.has(name) || pending.has(name) || extra.has(name), `${id}: ${name} is not a configuration variable of the service (src/config/schema.ts) nor listed in test/deploy/pending.ts`);
        }
      }
      const script = readRepoFile('deploy', 'base', 'agents', 'backup', 'run-backup.sh');
      for (const name of BACKUP_SCRIPT_VARS) assert.ok(script.includes(`$${name}`) || script.includes(`\${${name}`), `run-backup.sh does not read ${name}`);
    });

    test('every variable a deployment must set is set, and to a workable value', () => {
      for (const d of deployments()) {
        const env = apiEnv(objects(), d);
        for (const [name, want] of Object.entries(DEPLOY_REQUIRED)) {
          const value = env.get(name);
          assert.ok(value !== undefined, `${d.metadata.name}: ${name} is not set`);
          if (typeof want === 'string') assert.equal(value, want, `${d.metadata.name}: ${name}`);
          else assert.match(value, want, `${d.metadata.name}: ${name}`);
        }
        for (const [name, spec] of Object.entries(CONFIG_VARS)) {
          if ('required' in spec && spec.required === true) assert.ok(env.has(name), `${name} is required by the schema`);
        }
      }
    });

    test('the configured values parse with the service\'s own loader', () => {
      for (const d of deployments()) {
        const env: NodeJS.ProcessEnv = {};
        for (const [k, v] of apiEnv(objects(), d)) env[k] = v.startsWith('<secret:') ? sampleSecret(v) : v.startsWith('<field:') ? 'kgents-api-5d9c7b-x2x7q' : v;
        const config = loadConfig(env);
        assert.equal(config.EMBEDDED_SERVICES, 'off');
        assert.equal(config.NATS_URLS.length, 3);
      }
    });

    test('the container port is the PORT variable, and every probe uses it', () => {
      for (const d of deployments()) {
        const api = container(podSpecOf(d), 'api');
        const port = Number(apiEnv(objects(), d).get('PORT'));
        assert.deepEqual(api.ports?.map((p) => [p.name, p.containerPort]), [['http', port]]);
        for (const probe of [api.startupProbe, api.livenessProbe, api.readinessProbe]) {
          assert.ok(probe?.httpGet, 'every API probe is an HTTP GET');
          assert.ok(probe.httpGet.port === 'http' || probe.httpGet.port === port);
        }
        assert.equal(api.livenessProbe?.httpGet?.path, '/health', 'liveness must not depend on NATS or Redis');
        assert.equal(api.readinessProbe?.httpGet?.path, '/ready');
        assert.ok(api.startupProbe?.httpGet?.path);
      }
    });

    test('shutdown: preStop pause = SHUTDOWN_DELAY_MS, grace period covers pause + delay + draining + queue drain + 5 s', () => {
      for (const d of deployments()) {
        const spec = podSpecOf(d);
        const api = container(spec, 'api');
        const env = apiEnv(objects(), d);
        const delayS = Number(env.get('SHUTDOWN_DELAY_MS')) / 1000;
        const timeoutS = Number(env.get('SHUTDOWN_TIMEOUT_MS')) / 1000;
        const drainS = Number(env.get('SHUTDOWN_DRAIN_MS') ?? CONFIG_VARS.SHUTDOWN_DRAIN_MS.default) / 1000;
        const pause = api.lifecycle?.preStop?.sleep?.seconds;
        assert.equal(pause, delayS, 'preStop sleep must match SHUTDOWN_DELAY_MS');
        const grace = spec.terminationGracePeriodSeconds ?? 30;
        assert.ok(grace >= pause + delayS + timeoutS + drainS + 5, `terminationGracePeriodSeconds ${grace} < ${pause} + ${delayS} + ${timeoutS} + ${drainS} + 5`);
        const ready = api.readinessProbe as Probe;
        assert.ok((ready.periodSeconds ?? 10) * (ready.failureThreshold ?? 3) <= delayS, 'readiness must notice draining within SHUTDOWN_DELAY_MS');
      }
    });

    test('rollout and scaling: RollingUpdate 1/0, HPA 2-10 at 70% CPU with scale-down stabilisation, PDB minAvailable 1, spread across nodes', () => {
      const hpa = find(objects(), 'HorizontalPodAutoscaler', 'kgents-api', 'kgents-api').spec as {
        minReplicas: number; maxReplicas: number; metrics: { resource: { name: string; target: { averageUtilization: number } } }[];
        behavior: { scaleDown: { stabilizationWindowSeconds: number } };
      };
      assert.equal(hpa.minReplicas, 2);
      assert.equal(hpa.maxReplicas, overlay === 'staging' ? 4 : 10);
      assert.deepEqual(hpa.metrics.map((m) => [m.resource.name, m.resource.target.averageUtilization]), [['cpu', 70]]);
      assert.ok(hpa.behavior.scaleDown.stabilizationWindowSeconds >= 60);
      const pdb = find(objects(), 'PodDisruptionBudget', 'kgents-api', 'kgents-api').spec as { minAvailable: number };
      assert.equal(pdb.minAvailable, 1);
      for (const d of deployments()) {
        const spec = d.spec as { strategy: { type: string; rollingUpdate: { maxSurge: number; maxUnavailable: number } } };
        assert.deepEqual(spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
        const spread = podSpecOf(d).topologySpreadConstraints ?? [];
        assert.ok(spread.some((s) => s.topologyKey === 'kubernetes.io/hostname' && s.whenUnsatisfiable === 'DoNotSchedule'), 'two replicas must land on two nodes');
        const api = container(podSpecOf(d), 'api');
        assert.ok(api.resources?.requests?.cpu, 'the HPA\'s CPU target needs a CPU request');
      }
    });

    test('memory: the V8 heap ceiling and the fallback queue fit in their limits; DATA_DIR is writable', () => {
      for (const d of deployments()) {
        const spec = podSpecOf(d);
        const api = container(spec, 'api');
        const env = apiEnv(objects(), d);
        const limit = memoryBytes(api.resources?.limits?.memory ?? '0');
        const heapMb = Number(/--max-old-space-size=(\d+)/.exec(env.get('NODE_OPTIONS') ?? '')?.[1]);
        assert.ok(heapMb > 0 && heapMb * 1024 * 1024 <= 0.8 * limit, `heap ${heapMb} MiB must stay under 80% of the ${limit} byte limit`);
        const dataDir = env.get('DATA_DIR');
        const mount = api.volumeMounts?.find((m) => m.mountPath === dataDir);
        assert.ok(mount && !mount.readOnly, 'DATA_DIR must be a writable volume (the root filesystem is read-only)');
        const volume = spec.volumes?.find((v) => v.name === mount.name);
        const sizeLimit = volume?.emptyDir?.sizeLimit;
        assert.ok(sizeLimit, 'DATA_DIR volume needs a size limit');
        assert.ok(Number(env.get('FALLBACK_QUEUE_MAX_BYTES')) < memoryBytes(sizeLimit), 'FALLBACK_QUEUE_MAX_BYTES must fit in the DATA_DIR volume');
      }
    });

    test('service addresses in the configuration point at Services that exist, on ports they serve', () => {
      const d = deployments()[0];
      assert.ok(d);
      const env = apiEnv(objects(), d);
      const nats = find(objects(), 'StatefulSet', 'nats', 'kgents-agents').spec as { serviceName: string; replicas: number };
      for (const url of (env.get('NATS_URLS') ?? '').split(',')) {
        const m = /^nats:\/\/nats-(\d)\.([a-z-]+)\.kgents-agents\.svc\.cluster\.local:(\d+)$/.exec(url);
        assert.ok(m, url);
        assert.ok(Number(m[1]) < nats.replicas);
        assert.equal(m[2], nats.serviceName);
        assertServicePort(objects(), nats.serviceName, 'kgents-agents', Number(m[3]));
      }
      const otel = new URL(env.get('OTEL_EXPORTER_OTLP_ENDPOINT') ?? '');
      const [svc, ns] = otel.hostname.split('.');
      assertServicePort(objects(), svc ?? '', ns ?? '', Number(otel.port));
      const backupEnv = containerEnv(objects(), 'kgents-agents', container(podSpecOf(find(objects(), 'CronJob', 'kgents-backup', 'kgents-agents')), 'backup'));
      assert.equal(backupEnv.get('NATS_URLS'), env.get('NATS_URLS'), 'the backup job must use the API\'s NATS servers');
      const push = new URL(backupEnv.get('PUSHGATEWAY_URL') ?? '');
      const [pushSvc, pushNs] = push.hostname.split('.');
      assertServicePort(objects(), pushSvc ?? '', pushNs ?? '', Number(push.port));
      const docs = readRepoFile('docs', 'deployment.md');
      assert.ok(docs.includes('redis.kgents-agents.svc.cluster.local:6379'), 'docs must show the REDIS_URL to store in kgents-api-secrets');
      assertServicePort(objects(), 'redis', 'kgents-agents', 6379);
    });
  });
}

function assertServicePort(objects: readonly K8sObject[], name: string, namespace: string, port: number): void {
  const svc = find(objects, 'Service', name, namespace).spec as { ports: { port: number }[] };
  assert.ok(svc.ports.some((p) => p.port === port), `Service ${namespace}/${name} has no port ${port}`);
}

// ---------------------------------------------------------------------------------------------

describe('the probes against the real service (node dist/src/cli/main.js serve, no NATS or Redis)', () => {
  let service: RunningService | undefined;
  const deployment = (): K8sObject => {
    const d = apiDeployments(render('production'))[0];
    assert.ok(d);
    return d;
  };

  before(async () => {
    // The manifest's settings (secrets aside), but on this machine: no NATS or Redis (the service
    // runs on its fallbacks, which is enough for the probe paths), a free loopback port, a temp DATA_DIR.
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of apiEnv(render('production'), deployment())) if (!v.startsWith('<')) env[k] = v;
    env.INSTANCE_ID = 'deploy-probe-test';
    service = await startService(env);
  });

  after(async () => {
    await service?.stop();
  });

  test('every probe path of the API Deployment answers 200 on the port the probe names', async () => {
    assert.ok(service);
    const api = container(podSpecOf(deployment()), 'api');
    const probes = { startup: api.startupProbe, liveness: api.livenessProbe, readiness: api.readinessProbe };
    for (const [kind, probe] of Object.entries(probes)) {
      const get = probe?.httpGet;
      assert.ok(get?.path, `${kind} probe`);
      const named = typeof get.port === 'string' ? api.ports?.find((p) => p.name === get.port)?.containerPort : get.port;
      assert.equal(named, Number(apiEnv(render('production'), deployment()).get('PORT')), `${kind} probe port`);
      const res = await fetch(`${service.url}${get.path}`);
      assert.equal(res.status, 200, `${kind} probe ${get.path} answered ${res.status}`);
    }
  });

  test('/metrics, which Prometheus scrapes on the same port, answers Prometheus text', async () => {
    assert.ok(service);
    const res = await fetch(`${service.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    assert.match(await res.text(), /^# HELP kgents_/m);
  });
});
