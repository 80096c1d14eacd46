import { execFile } from 'node:child_process';

/** Where the platform lives in a cluster (deploy/base): names, namespaces and labels. */
export interface K8sLayout {
  readonly apiNamespace: string;
  readonly apiDeployment: string;
  readonly apiSelector: string;
  readonly agentsNamespace: string;
  readonly natsStatefulSet: string;
  readonly natsSelector: string;
  readonly natsContainer: string;
  readonly natsMonitorPort: number;
  readonly redisStatefulSet: string;
}

export const DEFAULT_K8S_LAYOUT: K8sLayout = {
  apiNamespace: 'kgents-api', apiDeployment: 'kgents-api', apiSelector: 'app.kubernetes.io/name=kgents-api',
  agentsNamespace: 'kgents-agents', natsStatefulSet: 'nats', natsSelector: 'app.kubernetes.io/name=nats', natsContainer: 'nats', natsMonitorPort: 8222,
  redisStatefulSet: 'redis',
};

export interface KubectlOptions {
  /** The kubectl binary (default `kubectl` on PATH). */
  readonly binary?: string;
  /** --context; default: kubectl's current context. */
  readonly context?: string;
  readonly layout?: Partial<K8sLayout>;
  readonly timeoutMs?: number;
}

export class KubectlError extends Error {
  constructor(readonly args: readonly string[], message: string) {
    super(`kubectl ${args.join(' ')}: ${message}`);
    this.name = 'KubectlError';
  }
}

/**
 * The kubectl calls the chaos scenarios make against a cluster (`--target k8s`). Every call is one
 * `kubectl` process with explicit namespace and, when given, context, so it is easy to read back
 * from a log and to test with a fake kubectl on PATH.
 */
export class Kubectl {
  readonly layout: K8sLayout;

  constructor(private readonly options: KubectlOptions = {}) {
    this.layout = { ...DEFAULT_K8S_LAYOUT, ...options.layout };
  }

  /** Runs kubectl with the context flag prepended; resolves stdout, rejects with stderr. */
  run(args: readonly string[]): Promise<string> {
    const full = [...(this.options.context !== undefined ? ['--context', this.options.context] : []), ...args];
    return new Promise((resolve, reject) => {
      execFile(this.options.binary ?? 'kubectl', full, { timeout: this.options.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (err) reject(new KubectlError(full, (stderr || err.message).trim().slice(0, 500)));
        else resolve(stdout);
      });
    });
  }

  private async names(namespace: string, selector: string): Promise<string[]> {
    const out = await this.run(['get', 'pods', '-n', namespace, '-l', selector, '-o', 'jsonpath={.items[*].metadata.name}']);
    return out.split(/\s+/).filter((n) => n !== '');
  }

  apiPods(): Promise<string[]> {
    return this.names(this.layout.apiNamespace, this.layout.apiSelector);
  }

  natsPods(): Promise<string[]> {
    return this.names(this.layout.agentsNamespace, this.layout.natsSelector);
  }

  /** kill -9 equivalent: delete without grace, do not wait for the replacement. */
  async deletePod(namespace: string, pod: string): Promise<void> {
    await this.run(['delete', 'pod', pod, '-n', namespace, '--grace-period=0', '--force', '--wait=false']);
  }

  /** GET on a NATS pod's monitor port, from inside the pod (the nats image has busybox wget). */
  natsMonitor(pod: string, path: string): Promise<string> {
    return this.run(['exec', '-n', this.layout.agentsNamespace, pod, '-c', this.layout.natsContainer, '--',
      'wget', '-q', '-O', '-', `http://127.0.0.1:${this.layout.natsMonitorPort}${path}`]);
  }

  async scale(namespace: string, resource: string, replicas: number): Promise<void> {
    await this.run(['scale', resource, '-n', namespace, `--replicas=${replicas}`]);
  }

  /** Ready and desired replicas of a Deployment or StatefulSet (`deployment/kgents-api`). */
  async replicas(namespace: string, resource: string): Promise<{ ready: number; desired: number }> {
    const out = await this.run(['get', resource, '-n', namespace, '-o', 'jsonpath={.status.readyReplicas}/{.spec.replicas}']);
    const [ready, desired] = out.trim().split('/');
    return { ready: Number(ready) || 0, desired: Number(desired) || 0 };
  }

  /** The pod's uid: a deleted pod's replacement has the same name (StatefulSet) but a new uid. */
  async podUid(namespace: string, pod: string): Promise<string | undefined> {
    try {
      return (await this.run(['get', 'pod', pod, '-n', namespace, '-o', 'jsonpath={.metadata.uid}'])).trim() || undefined;
    } catch {
      return undefined;
    }
  }
}
