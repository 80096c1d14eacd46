import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { findBinary } from './binaries.js';
import { ManagedProcess, waitUntil } from './managed-process.js';
import { freePort } from './ports.js';

export interface LocalNatsOptions {
  readonly dir: string;
  readonly name?: string;
  readonly port?: number;
  readonly monitorPort?: number;
  /** Cluster settings; omit for a single server. */
  readonly cluster?: { readonly name: string; readonly port: number; readonly routes: readonly number[] };
  readonly readyDeadlineMs?: number;
  /** Own process group: see ManagedProcessOptions.detached. */
  readonly detached?: boolean;
}

/** A nats-server with JetStream on loopback, data under `dir`; restartable on the same ports and data. */
export class LocalNatsServer {
  private proc: ManagedProcess | undefined;
  readonly name: string;
  port = 0;
  monitorPort = 0;

  constructor(private readonly options: LocalNatsOptions) {
    this.name = options.name ?? 'nats';
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return this.proc?.running ?? false;
  }

  async start(): Promise<void> {
    const binary = findBinary('nats-server');
    if (!binary) throw new Error('nats-server is not installed (apt-get install -y nats-server)');
    this.port ||= this.options.port ?? (await freePort());
    this.monitorPort ||= this.options.monitorPort ?? (await freePort());
    const storeDir = join(this.options.dir, 'jetstream');
    mkdirSync(storeDir, { recursive: true });
    const args = ['-a', '127.0.0.1', '-p', String(this.port), '-m', String(this.monitorPort), '-js', '-sd', storeDir, '-n', this.name];
    const cluster = this.options.cluster;
    if (cluster) {
      args.push('--cluster_name', cluster.name, '--cluster', `nats://127.0.0.1:${cluster.port}`);
      const routes = cluster.routes.filter((p) => p !== cluster.port).map((p) => `nats://127.0.0.1:${p}`);
      if (routes.length > 0) args.push('--routes', routes.join(','));
    }
    this.proc = new ManagedProcess({
      name: this.name, command: binary, args, logFile: join(this.options.dir, 'nats-server.log'), detached: this.options.detached ?? false,
    });
    this.proc.start();
    await this.waitReady(this.options.readyDeadlineMs ?? 15_000);
  }

  /** Ready means JetStream answers healthy on the monitoring port (in a cluster: a meta leader exists). */
  async waitReady(deadlineMs: number): Promise<void> {
    await waitUntil(`${this.name} on port ${this.port}`, async () => {
      const res = await fetch(`http://127.0.0.1:${this.monitorPort}/healthz`, { signal: AbortSignal.timeout(1000) });
      return res.ok;
    }, deadlineMs, this.proc);
  }

  async stop(): Promise<void> {
    await this.proc?.stop();
  }

  async kill(): Promise<void> {
    await this.proc?.kill();
  }

  pause(): void {
    this.proc?.pause();
  }

  resume(): void {
    this.proc?.resume();
  }
}

/** Three (or n) clustered nats-servers on loopback, for replica-3 streams and leader-kill tests. */
export class LocalNatsCluster {
  readonly servers: LocalNatsServer[] = [];

  constructor(private readonly dir: string, private readonly size = 3, private readonly clusterName = 'kgents') {}

  get urls(): string[] {
    return this.servers.map((s) => s.url);
  }

  async start(): Promise<void> {
    const clusterPorts = await Promise.all(Array.from({ length: this.size }, () => freePort()));
    for (let i = 0; i < this.size; i++) {
      this.servers.push(new LocalNatsServer({
        dir: join(this.dir, `n${i + 1}`),
        name: `n${i + 1}`,
        cluster: { name: this.clusterName, port: clusterPorts[i] ?? 0, routes: clusterPorts },
      }));
    }
    // Servers must start together: a lone clustered server never becomes healthy without a quorum.
    await Promise.all(this.servers.map((s) => s.start()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.stop()));
  }
}
