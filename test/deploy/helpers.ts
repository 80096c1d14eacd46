/**
 * Shared helpers for the deployment tests: where the repo is, the external tools they need, the
 * rendered overlays as typed objects, and small accessors over pod templates.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';

/** From dist/test/deploy/*.js: dist/test/deploy -> dist/test -> dist -> repo root. */
export const REPO_ROOT = join(import.meta.dirname, '..', '..', '..');

export const OVERLAYS = ['staging', 'production', 'production-blue-green'] as const;

/** The Kubernetes version whose schemas validate the objects: kubernetes-models 4.5.1 (stated in docs/deployment.md). */
export const SCHEMA_KUBERNETES_VERSION = 'v1.33.0';
export type Overlay = (typeof OVERLAYS)[number];

export function repoPath(...parts: string[]): string {
  return join(REPO_ROOT, ...parts);
}

export function readRepoFile(...parts: string[]): string {
  return readFileSync(repoPath(...parts), 'utf8');
}

export function readYaml<T>(...parts: string[]): T {
  return parse(readRepoFile(...parts)) as T;
}

const INSTALL_HINTS: Record<string, string> = {
  kubectl: 'install kubectl (Debian: `apt-get install -y kubernetes-client`, which renders these manifests as well; or any kubectl >= 1.21)',
  promtool: 'install promtool (Debian: `apt-get install -y prometheus`; .ci/run does this)',
  'nats-server': 'install nats-server (Debian: `apt-get install -y nats-server`; .ci/run does this)',
  'redis-server': 'install redis-server (Debian: `apt-get install -y redis-server`; .ci/run does this)',
};

const toolCache = new Map<string, string>();

/** The path of a required tool; fails with how to install it when it is missing. */
export function tool(name: string): string {
  const cached = toolCache.get(name);
  if (cached) return cached;
  const envName = `${name.toUpperCase().replace(/-/g, '_')}_BIN`;
  const candidates = [process.env[envName], name, `/usr/sbin/${name}`, `/usr/bin/${name}`].filter((c): c is string => Boolean(c));
  for (const candidate of candidates) {
    const probe = spawnSync(candidate, ['--help'], { stdio: 'ignore' });
    if (!probe.error) {
      toolCache.set(name, candidate);
      return candidate;
    }
  }
  throw new Error(`${name} is required by the deployment tests and was not found: ${INSTALL_HINTS[name] ?? `install ${name}`}. (Or point ${envName} at it.)`);
}

export interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function run(cmd: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): Run {
  const res = spawnSync(cmd, args, { cwd: options.cwd ?? REPO_ROOT, env: options.env ?? process.env, input: options.input, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (res.error) throw res.error;
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

// ---------------------------------------------------------------------------------------------
// Kubernetes objects (only the fields the tests read are typed).

export interface Metadata {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: Metadata;
  spec?: unknown;
  data?: Record<string, string>;
  [key: string]: unknown;
}

export interface ContainerPort { name?: string; containerPort: number; protocol?: string }
export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    fieldRef?: { fieldPath: string };
  };
}
export interface HttpGet { path?: string; port: number | string; scheme?: string }
export interface Probe { httpGet?: HttpGet; exec?: { command: string[] }; tcpSocket?: { port: number | string }; periodSeconds?: number; failureThreshold?: number; timeoutSeconds?: number }
export interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
  seccompProfile?: { type: string };
}
export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  ports?: ContainerPort[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  lifecycle?: { preStop?: { sleep?: { seconds: number }; exec?: { command: string[] } } };
  securityContext?: SecurityContext;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
export interface Volume {
  name: string;
  configMap?: { name: string };
  secret?: { secretName: string };
  persistentVolumeClaim?: { claimName: string };
  emptyDir?: { sizeLimit?: string };
  hostPath?: { path: string };
}
export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  securityContext?: SecurityContext & { fsGroup?: number };
  serviceAccountName?: string;
  terminationGracePeriodSeconds?: number;
  topologySpreadConstraints?: { topologyKey: string; whenUnsatisfiable: string; labelSelector?: LabelSelector; maxSkew: number }[];
  restartPolicy?: string;
}
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}
export interface PodTemplate { metadata?: { labels?: Record<string, string> }; spec: PodSpec }

/** A workload's pods: where they run, their labels and spec. */
export interface Workload {
  readonly object: K8sObject;
  readonly namespace: string;
  readonly labels: Record<string, string>;
  readonly spec: PodSpec;
  readonly selector: LabelSelector | undefined;
  readonly replicas: number | undefined;
}

export function workloads(objects: readonly K8sObject[]): Workload[] {
  const out: Workload[] = [];
  for (const o of objects) {
    const ns = o.metadata.namespace ?? 'default';
    if (['Deployment', 'StatefulSet', 'DaemonSet'].includes(o.kind)) {
      const spec = o.spec as { template: PodTemplate; selector?: LabelSelector; replicas?: number };
      out.push({ object: o, namespace: ns, labels: spec.template.metadata?.labels ?? {}, spec: spec.template.spec, selector: spec.selector, replicas: spec.replicas });
    } else if (o.kind === 'CronJob') {
      const spec = o.spec as { jobTemplate: { spec: { template: PodTemplate } } };
      const template = spec.jobTemplate.spec.template;
      out.push({ object: o, namespace: ns, labels: template.metadata?.labels ?? {}, spec: template.spec, selector: undefined, replicas: undefined });
    } else if (o.kind === 'Job' || o.kind === 'Pod') {
      throw new Error(`bare ${o.kind} ${o.metadata.name} in the manifests`);
    }
  }
  return out;
}

export function allContainers(spec: PodSpec): Container[] {
  return [...(spec.initContainers ?? []), ...spec.containers];
}

export function selectorMatches(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    switch (e.operator) {
      case 'In': if (!has || value === undefined || !(e.values ?? []).includes(value)) return false; break;
      case 'NotIn': if (has && value !== undefined && (e.values ?? []).includes(value)) return false; break;
      case 'Exists': if (!has) return false; break;
      case 'DoesNotExist': if (has) return false; break;
    }
  }
  return true;
}

/** "512Mi" -> bytes; "1" / "250m" CPU -> millicores (use the matching function). */
export function memoryBytes(quantity: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(quantity);
  if (!m?.[1]) throw new Error(`not a memory quantity: ${quantity}`);
  const factor: Record<string, number> = { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * (factor[m[2] ?? ''] ?? Number.NaN);
}

export function cpuMillis(quantity: string): number {
  const m = /^(\d+(?:\.\d+)?)(m)?$/.exec(quantity);
  if (!m?.[1]) throw new Error(`not a CPU quantity: ${quantity}`);
  return m[2] ? Number(m[1]) : Number(m[1]) * 1000;
}

// ---------------------------------------------------------------------------------------------
// Rendering.

const renders = new Map<Overlay, K8sObject[]>();

/** `kubectl kustomize deploy/overlays/<overlay>`, parsed; cached per process. */
export function render(overlay: Overlay): K8sObject[] {
  const cached = renders.get(overlay);
  if (cached) return cached;
  const res = run(tool('kubectl'), ['kustomize', `deploy/overlays/${overlay}`]);
  if (res.status !== 0) throw new Error(`kubectl kustomize deploy/overlays/${overlay} failed:\n${res.stderr}`);
  const docs = parseAllDocuments(res.stdout);
  const objects: K8sObject[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`overlay ${overlay}: YAML error ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJSON() as K8sObject | null;
    if (value === null) continue;
    objects.push(value);
  }
  renders.set(overlay, objects);
  return objects;
}

export function find(objects: readonly K8sObject[], kind: string, name: string, namespace?: string): K8sObject {
  const hit = objects.find((o) => o.kind === kind && o.metadata.name === name && (namespace === undefined || o.metadata.namespace === namespace));
  if (!hit) throw new Error(`no ${kind} ${namespace ? `${namespace}/` : ''}${name} in the render`);
  return hit;
}

/** A ConfigMap by the name before kustomize's hash suffix. */
export function configMap(objects: readonly K8sObject[], baseName: string, namespace: string): K8sObject {
  const hits = objects.filter((o) => o.kind === 'ConfigMap' && o.metadata.namespace === namespace && (o.metadata.name === baseName || new RegExp(`^${baseName}-[a-z0-9]{10}$`).test(o.metadata.name)));
  if (hits.length !== 1) throw new Error(`expected one ConfigMap ${namespace}/${baseName}, found ${hits.length}`);
  return hits[0] as K8sObject;
}

export function apiDeployments(objects: readonly K8sObject[]): K8sObject[] {
  return objects.filter((o) => o.kind === 'Deployment' && o.metadata.namespace === 'kgents-api' && o.metadata.labels?.['app.kubernetes.io/name'] === 'kgents-api');
}

export function podSpecOf(o: K8sObject): PodSpec {
  const w = workloads([o])[0];
  if (!w) throw new Error(`${o.kind} ${o.metadata.name} has no pod template`);
  return w.spec;
}

export function container(spec: PodSpec, name: string): Container {
  const c = allContainers(spec).find((x) => x.name === name);
  if (!c) throw new Error(`no container ${name}`);
  return c;
}

/** The environment a container gets from its ConfigMap(s) and env entries; secrets as `<secret:name/key>`. */
export function containerEnv(objects: readonly K8sObject[], namespace: string, c: Container, fieldRefs: Record<string, string> = {}): Map<string, string> {
  const env = new Map<string, string>();
  for (const from of c.envFrom ?? []) {
    if (from.configMapRef) {
      const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.namespace === namespace && o.metadata.name === from.configMapRef?.name);
      if (!cm) throw new Error(`envFrom: no ConfigMap ${namespace}/${from.configMapRef.name}`);
      for (const [k, v] of Object.entries(cm.data ?? {})) env.set(k, v);
    }
    if (from.secretRef) throw new Error('envFrom secretRef hides which variables a Secret sets; use secretKeyRef per variable');
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env.set(e.name, e.value);
    else if (e.valueFrom?.secretKeyRef) env.set(e.name, `<secret:${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}>`);
    else if (e.valueFrom?.configMapKeyRef) {
      const ref = e.valueFrom.configMapKeyRef;
      const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.namespace === namespace && o.metadata.name === ref.name);
      const v = cm?.data?.[ref.key];
      if (v === undefined) throw new Error(`${e.name}: no key ${ref.key} in ConfigMap ${ref.name}`);
      env.set(e.name, v);
    } else if (e.valueFrom?.fieldRef) env.set(e.name, fieldRefs[e.valueFrom.fieldRef.fieldPath] ?? `<field:${e.valueFrom.fieldRef.fieldPath}>`);
    else env.set(e.name, '');
  }
  return env;
}

// ---------------------------------------------------------------------------------------------
// The real service, as the image runs it: `node dist/src/cli/main.js serve`.

export interface RunningService {
  readonly port: number;
  readonly url: string;
  output(): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Starts the service with the given environment (plus a free loopback port and a temp DATA_DIR)
 * and waits until /health answers. No NATS or Redis: it runs on its fallbacks.
 */
export async function startService(env: NodeJS.ProcessEnv): Promise<RunningService> {
  const { spawn } = await import('node:child_process');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { setTimeout: sleep } = await import('node:timers/promises');
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'kgents-deploy-'));
  let output = '';
  const child = spawn(process.execPath, [repoPath('dist', 'src', 'cli', 'main.js'), 'serve'], {
    env: {
      PATH: process.env.PATH, ...env,
      NATS_URLS: '', REDIS_URL: '', KEY_STORE: 'file', EMBEDDED_SERVICES: 'off', PORT: String(port), HOST: '127.0.0.1',
      DATA_DIR: dataDir, SHUTDOWN_DELAY_MS: '0', LOG_LEVEL: 'warn', OPENMETER_URL: '',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (b: Buffer) => { output += b.toString('utf8'); });
  child.stderr.on('data', (b: Buffer) => { output += b.toString('utf8'); });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`the service exited with ${child.exitCode}:\n${output}`);
    }
    try {
      const res = await fetch(`http://127.0.0.1:${port}/health`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the service did not answer /health within 20 s:\n${output}`);
    }
    await sleep(100);
  }
  return { port, url: `http://127.0.0.1:${port}`, output: () => output, stop };
}

/** Metric names in Prometheus text: every sample's name (so histograms give _bucket/_sum/_count). */
export function exposedMetricNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\w+)/.exec(line);
    if (type?.[1]) {
      names.add(type[1]);
      if (type[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(`${type[1]}${s}`);
      if (type[2] === 'summary') for (const s of ['_sum', '_count']) names.add(`${type[1]}${s}`);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (sample?.[1]) names.add(sample[1]);
  }
  return names;
}
