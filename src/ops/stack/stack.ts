import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { findBinary } from '../../adapters/local/binaries.js';
import { freePort } from '../../adapters/local/ports.js';
import { pingRedis } from '../../adapters/local/redis-server.js';
import { connectNats } from '../../adapters/nats/connection.js';
import { createKeyStore } from '../../adapters/nats/key-store-factory.js';
import { ensureStreams } from '../../adapters/nats/streams.js';
import { JETSTREAM_NOT_READY } from '../../adapters/nats/transient.js';
import { loadConfig } from '../../config/load.js';
import { asError } from '../../errors/as-error.js';
import { Balancer, type BackendEvent } from './balancer.js';
import { ControlServer } from './control.js';
import { NatsFaultProxies, type NatsFaultControl, type NatsProxyState } from './faults.js';
import { OtelFaultCollector, type OtelCollectorState, type OtelFaultControl } from './otel-collector.js';
import type { FaultSetting } from '../fault/proxy.js';
import { PartStateError, UnknownPartError } from './errors.js';
import { procCmdline, recordProcess, StackProcess, type ProcessExit, type ProcessRecord } from './processes.js';
import { writeState, type ExitRecord, type PartKind, type PartState, type PartStatus, type StackState, type StackStatus, STATE_VERSION } from './state.js';

/** Where `kgents` itself is: the API instances run `node <this> serve`. */
export const KGENTS_CLI = join(import.meta.dirname, '..', '..', 'cli', 'main.js');

/** How long signal() waits for a SIGKILLed process to be gone (the kernel takes milliseconds). */
const KILL_WAIT_MS = 5_000;

export type LogLevel = 'info' | 'warn' | 'error';
export type StackLogger = (level: LogLevel, msg: string, fields?: Readonly<Record<string, unknown>>) => void;

export interface StackOptions {
  /** The stack directory: state file, logs, data of every part. */
  readonly dir: string;
  /** API instances behind the balancer (default 2). */
  readonly apiInstances?: number;
  /** NATS cluster size (default 3; 1 runs a single server with NATS_REPLICAS=1). */
  readonly natsNodes?: number;
  /** The balancer's (public) port; 0 or absent: a free port. */
  readonly port?: number;
  readonly host?: string;
  /** Control endpoint: `false` for none; a port (0 = free, the default). */
  readonly controlPort?: number | false;
  /**
   * Extra environment of the API instances (e.g. RATE_LIMITS). They also inherit this process's
   * environment; the stack sets PORT, HOST, NATS_URLS, NATS_REPLICAS, REDIS_URL, DATA_DIR,
   * INSTANCE_ID, EMBEDDED_SERVICES=off and KEY_STORE=nats itself.
   */
  readonly env?: Readonly<Record<string, string>>;
  /** Restart backoff of a part that died: first delay, doubling up to the maximum; reset after it ran `resetAfterMs`. */
  readonly restart?: { readonly initialMs?: number; readonly maxMs?: number; readonly resetAfterMs?: number };
  /** Balancer readiness probe period (default 250 ms). */
  readonly probeIntervalMs?: number;
  /** Write DIR/stack.json on every change (default true). */
  readonly stateFile?: boolean;
  readonly logger?: StackLogger;
  /** The kgents CLI to run (default: the one this module belongs to). */
  readonly cli?: string;
  /**
   * Route each API instance's NATS connections through a fault proxy per node (run by the
   * supervisor), so that `setNatsFault` can partition the API from NATS (chaos: network-partition).
   */
  readonly natsFaults?: boolean;
  /**
   * Give the API instances a stand-in OpenTelemetry collector (OTEL_EXPORTER_OTLP_ENDPOINT) behind a
   * fault proxy, so that `setOtelFault` can make it hang or refuse (chaos: observability-down).
   */
  readonly otelFaults?: boolean;
}

export interface InstanceInfo {
  readonly id: string;
  readonly instance_id: string;
  readonly pid: number | null;
  readonly port: number;
  readonly url: string;
  readonly status: PartStatus;
  readonly in_rotation: boolean;
  readonly restarts: number;
  readonly generation: number;
}

export interface ServerInfo {
  readonly id: string;
  readonly url: string;
  readonly pid: number | null;
  readonly ports: Readonly<Record<string, number>>;
  readonly status: PartStatus;
}

export interface ReplaceResult {
  readonly id: string;
  readonly old: { readonly instance_id: string; readonly pid: number | null; readonly port: number; readonly exit: ExitRecord | null };
  readonly new: { readonly instance_id: string; readonly pid: number | null; readonly port: number };
  /** From the start of the new process until the old one exited. */
  readonly duration_ms: number;
  readonly ready_ms: number;
}

export interface SignalResult {
  readonly id: string;
  readonly pid: number;
  readonly signal: NodeJS.Signals;
}

/**
 * What tools (chaos, rollout, load) need to drive a stack, whether it runs in this process
 * (`Stack`) or detached behind its control endpoint (`StackClient`).
 */
export interface StackControl {
  state(): Promise<StackState>;
  /** Sends a signal to a part's current process (`api-1`, `nats-2`, `redis`); the supervisor restarts it if it dies. */
  signal(id: string, signal: NodeJS.Signals): Promise<SignalResult>;
  /** Stops a part and keeps it stopped (no restart) until startPart. */
  stopPart(id: string): Promise<void>;
  startPart(id: string): Promise<void>;
  /** Zero-downtime replacement of an API slot's process (see Stack.replaceInstance). */
  replaceInstance(id: string): Promise<ReplaceResult>;
}

class Part {
  status: PartStatus = 'stopped';
  desired: 'running' | 'stopped' = 'running';
  proc: StackProcess | undefined;
  restarts = 0;
  lastExit: ExitRecord | null = null;
  backoffMs: number;
  restartTimer: NodeJS.Timeout | undefined;
  // API slots
  generation = 1;
  instanceId: string;
  dataIndex = 0;
  replacements = 0;
  replacing = false;

  constructor(
    readonly id: string,
    readonly kind: PartKind,
    public ports: Record<string, number>,
    public log: string,
    readonly dir: string,
    initialBackoffMs: number,
  ) {
    this.backoffMs = initialBackoffMs;
    this.instanceId = id;
  }
}

interface RetiringProcess {
  readonly id: string;
  readonly instanceId: string;
  readonly proc: StackProcess;
  readonly port: number;
  readonly since: string;
}

/** GET a loopback path; the status code, 0 when there is no answer within the timeout. */
export function httpStatus(port: number, path: string, timeoutMs = 1000, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolveStatus) => {
    const req = httpRequest({ host, port, path, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolveStatus(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolveStatus(0));
    req.end();
  });
}

function exitRecord(exit: ProcessExit | undefined): ExitRecord | null {
  return exit ? { code: exit.code, signal: exit.signal, at: exit.at } : null;
}

function describeExit(exit: ProcessExit | ExitRecord | null | undefined): string {
  if (!exit) return 'not started';
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${String(exit.code)}`;
}

/**
 * A production-like stack on one machine: a NATS JetStream cluster, Redis, N `kgents serve`
 * instances and a load balancer on one port, each part its own process with its ports, data and
 * log under one directory. The object is the supervisor: it restarts any part that dies (with
 * backoff), replaces API instances without losing requests, and records everything in
 * DIR/stack.json for `kgents stack status|down` and other tools.
 */
export class Stack implements StackControl, NatsFaultControl, OtelFaultControl {
  readonly dir: string;
  private readonly apiCount: number;
  private readonly natsCount: number;
  private readonly host: string;
  private readonly restartPolicy: { readonly initialMs: number; readonly maxMs: number; readonly resetAfterMs: number };
  private readonly cli: string;
  private readonly log: StackLogger;
  readonly balancer: Balancer;
  private control: ControlServer | undefined;
  private readonly parts: Part[] = [];
  private readonly natsProxies = new NatsFaultProxies();
  private readonly otelSink = new OtelFaultCollector();
  private readonly retiring: RetiringProcess[] = [];
  /** Replacement processes still starting (not yet their slot's process). */
  private readonly pending = new Set<StackProcess>();
  private status: StackStatus = 'stopped';
  private error: string | undefined;
  private startedAt = new Date().toISOString();
  private stopping = false;
  private stopPromise: Promise<void> | undefined;
  private readonly token = randomBytes(24).toString('base64url');
  private readonly supervisorRecord: ProcessRecord;
  private resolveStopped: () => void = () => undefined;
  private readonly stopped = new Promise<void>((r) => {
    this.resolveStopped = r;
  });

  constructor(private readonly options: StackOptions) {
    this.dir = resolve(options.dir);
    this.apiCount = options.apiInstances ?? 2;
    this.natsCount = options.natsNodes ?? 3;
    if (!Number.isInteger(this.apiCount) || this.apiCount < 1 || this.apiCount > 32) throw new Error('apiInstances must be 1 to 32');
    if (!Number.isInteger(this.natsCount) || this.natsCount < 1 || this.natsCount > 5) throw new Error('natsNodes must be 1 to 5');
    this.host = options.host ?? '127.0.0.1';
    this.restartPolicy = { initialMs: options.restart?.initialMs ?? 200, maxMs: options.restart?.maxMs ?? 10_000, resetAfterMs: options.restart?.resetAfterMs ?? 30_000 };
    this.cli = options.cli ?? KGENTS_CLI;
    this.log = options.logger ?? (() => undefined);
    this.balancer = new Balancer({
      host: this.host, port: options.port ?? 0, probeIntervalMs: options.probeIntervalMs ?? 250,
      onBackendChange: (e) => this.onBackendChange(e),
    });
    this.supervisorRecord = recordProcess(process.pid, procCmdline(process.pid) ?? process.argv.join(' '));
  }

  // ---- what tools read -----------------------------------------------------------------------------

  get url(): string {
    return this.balancer.url;
  }

  get natsUrls(): string[] {
    return this.parts.filter((p) => p.kind === 'nats').map((p) => `nats://127.0.0.1:${p.ports.client ?? 0}`);
  }

  get redisUrl(): string {
    return `redis://127.0.0.1:${this.part('redis').ports.client ?? 0}`;
  }

  get controlUrl(): string | undefined {
    return this.control?.url;
  }

  /** The NATS nodes (id, url, pid, ports). */
  natsServers(): ServerInfo[] {
    return this.parts.filter((p) => p.kind === 'nats').map((p) => this.serverInfo(p));
  }

  redis(): ServerInfo {
    return this.serverInfo(this.part('redis'));
  }

  /** The API slots and their current processes. */
  instances(): InstanceInfo[] {
    return this.parts.filter((p) => p.kind === 'api').map((p) => ({
      id: p.id, instance_id: p.instanceId, pid: p.proc?.running ? (p.proc.pid ?? null) : null, port: p.ports.http ?? 0,
      url: `http://127.0.0.1:${p.ports.http ?? 0}`, status: p.status, in_rotation: this.balancer.inRotation(p.instanceId),
      restarts: p.restarts, generation: p.generation,
    }));
  }

  /** The stack's state; `live` adds the balancer's counters (not written to stack.json). */
  snapshot(live = true): StackState {
    return {
      version: STATE_VERSION,
      dir: this.dir,
      status: this.status,
      ...(this.error !== undefined && { error: this.error }),
      url: this.url,
      port: this.balancer.port,
      control: { url: this.control?.url ?? '', token: this.token },
      supervisor: this.supervisorRecord,
      nats_urls: this.natsUrls,
      redis_url: this.parts.length > 0 ? this.redisUrl : '',
      parts: this.parts.map((p) => this.partState(p)),
      ...(this.natsProxies.enabled && { nats_proxies: this.natsProxies.states() }),
      retiring: this.retiring.flatMap((r) => (r.proc.record ? [{ id: r.id, instance_id: r.instanceId, process: r.proc.record, port: r.port, since: r.since }] : [])),
      ...(live && { balancer: this.balancer.stats() }),
      started_at: this.startedAt,
      updated_at: new Date().toISOString(),
    };
  }

  state(): Promise<StackState> {
    return Promise.resolve(this.snapshot());
  }

  /** The control endpoint's bearer token (also in stack.json, which only the owner can read). */
  get controlToken(): string {
    return this.token;
  }

  // ---- start ---------------------------------------------------------------------------------------

  /**
   * Starts the balancer (first, so a taken port fails fast), the control endpoint, the NATS
   * cluster and Redis, creates the JetStream streams and KV buckets, then the API instances; resolves
   * once every instance is in rotation. On failure everything started is stopped again.
   */
  async start(): Promise<void> {
    if (this.status !== 'stopped') throw new Error(`the stack is ${this.status}`);
    const natsBinary = findBinary('nats-server');
    if (!natsBinary) throw new Error('nats-server is not installed (apt-get install -y nats-server)');
    const redisBinary = findBinary('redis-server');
    if (!redisBinary) throw new Error('redis-server is not installed (apt-get install -y redis-server)');
    this.status = 'starting';
    this.startedAt = new Date().toISOString();
    for (const d of ['logs', 'nats', 'redis', 'api']) mkdirSync(join(this.dir, d), { recursive: true });
    try {
      await this.balancer.start();
      if (this.options.controlPort !== false) {
        this.control = new ControlServer(this, this.token, { host: '127.0.0.1', port: this.options.controlPort ?? 0 });
        await this.control.start();
      }
      await this.createParts();
      if (this.options.natsFaults) await this.natsProxies.start(this.parts.filter((p) => p.kind === 'nats').map((p) => ({ id: p.id, port: p.ports.client ?? 0 })));
      if (this.options.otelFaults) await this.otelSink.start();
      this.save();
      this.log('info', 'starting NATS and Redis', { nats: this.natsUrls, redis: this.redisUrl });
      await Promise.all(this.parts.filter((p) => p.kind !== 'api').map((p) => this.waitReady(p, this.launch(p), 30_000)));
      await this.initBus();
      const apis = this.parts.filter((p) => p.kind === 'api');
      this.log('info', `starting ${apis.length} API instance(s)`);
      await Promise.all(apis.map((p) => this.waitReady(p, this.launch(p), 60_000)));
      for (const p of apis) this.balancer.add({ id: p.instanceId, port: p.ports.http ?? 0 });
      await Promise.all(apis.map((p) => this.balancer.waitInRotation(p.instanceId, 10_000)));
      this.status = 'running';
      this.save();
      this.log('info', 'stack running', { url: this.url, control: this.control?.url });
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
      this.log('error', `stack start failed: ${this.error}`);
      await this.stop();
      this.status = 'failed';
      this.save();
      throw err;
    }
  }

  private async createParts(): Promise<void> {
    const initial = this.restartPolicy.initialMs;
    const natsPorts = await Promise.all(Array.from({ length: this.natsCount }, async () => ({ client: await freePort(), monitor: await freePort(), cluster: await freePort() })));
    natsPorts.forEach((ports, i) => {
      const id = `nats-${i + 1}`;
      this.parts.push(new Part(id, 'nats', this.natsCount > 1 ? ports : { client: ports.client, monitor: ports.monitor }, join(this.dir, 'logs', `${id}.log`), join(this.dir, 'nats', `n${i + 1}`), initial));
    });
    this.parts.push(new Part('redis', 'redis', { client: await freePort() }, join(this.dir, 'logs', 'redis.log'), join(this.dir, 'redis'), initial));
    for (let i = 1; i <= this.apiCount; i++) {
      const id = `api-${i}`;
      this.parts.push(new Part(id, 'api', { http: await freePort() }, join(this.dir, 'logs', `${id}.log`), join(this.dir, 'api', id), initial));
    }
  }

  /** Streams and KV buckets with the cluster's replicas, before the instances start (no creation race between them). */
  private async initBus(): Promise<void> {
    const config = loadConfig(this.apiEnv('stack-init', 0, join(this.dir, 'api')));
    const conn = await connectNats(this.natsUrls, { name: 'kgents-stack', timeoutMs: 5000 });
    try {
      const notReady = { onRetry: (err: unknown) => this.log('warn', JETSTREAM_NOT_READY, { error: String(err) }) };
      const results = await ensureStreams(await jetstreamManager(conn.nc), {
        replicas: config.NATS_REPLICAS, usageDuplicateWindowS: config.USAGE_DUPLICATE_WINDOW_S, usageRetentionDays: config.USAGE_RETENTION_DAYS,
      }, notReady);
      const store = createKeyStore({ KEY_STORE: 'nats', DATA_DIR: config.DATA_DIR, NATS_REPLICAS: config.NATS_REPLICAS }, { natsConnection: conn });
      await store.start();
      await store.close();
      this.log('info', 'JetStream streams and key buckets ready', { streams: results.map((r) => `${r.name}:${r.action}`), replicas: config.NATS_REPLICAS });
    } finally {
      await conn.close();
    }
  }

  // ---- processes -------------------------------------------------------------------------------------

  private apiEnv(instanceId: string, port: number, dataDir: string): NodeJS.ProcessEnv {
    return {
      SHUTDOWN_DELAY_MS: '1000',
      ...process.env,
      // Node flags for the API instances only (e.g. a heap limit for chaos memory-pressure), not the supervisor.
      ...(process.env.KGENTS_API_NODE_OPTIONS !== undefined && { NODE_OPTIONS: process.env.KGENTS_API_NODE_OPTIONS }),
      ...this.options.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      NATS_URLS: (this.natsProxies.enabled ? this.natsProxies.urls() : this.natsUrls).join(','),
      NATS_REPLICAS: String(Math.min(3, this.natsCount)),
      REDIS_URL: this.redisUrl,
      DATA_DIR: dataDir,
      INSTANCE_ID: instanceId,
      EMBEDDED_SERVICES: 'off',
      KEY_STORE: 'nats',
      ...(this.otelSink.enabled && { OTEL_EXPORTER_OTLP_ENDPOINT: this.otelSink.endpoint() }),
    };
  }

  private apiDataDir(part: Part, index: number): string {
    // Two data directories per slot, used in turn by replacements: the new process cannot take the
    // old one's (its fallback queue is locked until it exits), and whatever the old one leaves in
    // its queue is drained by the replacement after next.
    return join(part.dir, index === 0 ? 'a' : 'b');
  }

  private apiProcess(part: Part, instanceId: string, port: number, dataIndex: number): StackProcess {
    const dataDir = this.apiDataDir(part, dataIndex);
    mkdirSync(dataDir, { recursive: true });
    return new StackProcess({
      name: instanceId, command: process.execPath, args: [this.cli, 'serve'], env: this.apiEnv(instanceId, port, dataDir),
      logFile: join(this.dir, 'logs', `${instanceId}.log`), match: `${this.cli} serve`,
    });
  }

  private newProcess(part: Part): StackProcess {
    if (part.kind === 'api') return this.apiProcess(part, part.instanceId, part.ports.http ?? 0, part.dataIndex);
    mkdirSync(part.dir, { recursive: true });
    if (part.kind === 'redis') {
      const binary = findBinary('redis-server') ?? 'redis-server';
      return new StackProcess({
        name: part.id, command: binary, logFile: part.log, env: process.env, match: 'redis-server',
        args: ['--port', String(part.ports.client), '--bind', '127.0.0.1', '--dir', part.dir, '--save', '', '--appendonly', 'yes',
          '--appendfsync', 'everysec', '--daemonize', 'no', '--protected-mode', 'yes', '--maxmemory-policy', 'noeviction'],
      });
    }
    const binary = findBinary('nats-server') ?? 'nats-server';
    const name = part.dir.slice(part.dir.lastIndexOf('/') + 1);
    const args = ['-a', '127.0.0.1', '-p', String(part.ports.client), '-m', String(part.ports.monitor), '-js', '-sd', join(part.dir, 'jetstream'), '-n', name];
    if (part.ports.cluster !== undefined) {
      const routes = this.parts.filter((p) => p.kind === 'nats' && p !== part).map((p) => `nats://127.0.0.1:${p.ports.cluster ?? 0}`);
      args.push('--cluster_name', 'kgents-stack', '--cluster', `nats://127.0.0.1:${part.ports.cluster}`, '--routes', routes.join(','));
      // Clients behind the fault proxies must not learn the nodes' direct addresses and bypass them.
      if (this.options.natsFaults) args.push('--no_advertise=true');
    }
    return new StackProcess({ name: part.id, command: binary, args, env: process.env, logFile: part.log, match: `${binary} -a 127.0.0.1 -p ${part.ports.client}` });
  }

  private launch(part: Part): StackProcess {
    const proc = this.newProcess(part);
    proc.start();
    part.proc = proc;
    part.status = 'starting';
    part.desired = 'running';
    void proc.exited.then((exit) => this.onExit(part, proc, exit));
    this.save();
    return proc;
  }

  private ready(kind: PartKind, ports: Readonly<Record<string, number>>): Promise<boolean> {
    switch (kind) {
      case 'nats': return httpStatus(ports.monitor ?? 0, '/healthz').then((s) => s === 200);
      case 'redis': return pingRedis(ports.client ?? 0);
      case 'api': return httpStatus(ports.http ?? 0, '/ready').then((s) => s === 200);
    }
  }

  private async waitProcessReady(name: string, proc: StackProcess, kind: PartKind, ports: Readonly<Record<string, number>>, deadlineMs: number): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      if (!proc.running) throw new Error(`${name} exited before it was ready (${describeExit(proc.exit)}); see ${proc.options.logFile}`);
      if (await this.ready(kind, ports)) return;
      if (Date.now() > deadline) throw new Error(`${name} was not ready within ${deadlineMs} ms; see ${proc.options.logFile}`);
      await sleep(100);
    }
  }

  private async waitReady(part: Part, proc: StackProcess, deadlineMs: number): Promise<void> {
    await this.waitProcessReady(part.id, proc, part.kind, part.ports, deadlineMs);
    if (part.proc === proc && part.status === 'starting') {
      part.status = 'running';
      this.save();
    }
  }

  private onExit(part: Part, proc: StackProcess, exit: ProcessExit): void {
    if (part.proc !== proc) return;
    part.proc = undefined;
    part.lastExit = exitRecord(exit);
    if (part.kind === 'api') this.balancer.down(part.instanceId, `process exited (${describeExit(exit)})`);
    if (this.stopping || part.desired === 'stopped') {
      part.status = 'stopped';
      this.save();
      return;
    }
    if (Date.now() - proc.startedAt >= this.restartPolicy.resetAfterMs) part.backoffMs = this.restartPolicy.initialMs;
    const delay = part.backoffMs;
    part.backoffMs = Math.min(this.restartPolicy.maxMs, part.backoffMs * 2);
    part.status = 'restarting';
    this.log('warn', `${part.id} (pid ${String(proc.pid)}) exited unexpectedly (${describeExit(exit)}); restarting in ${delay} ms`, { part: part.id, restarts: part.restarts });
    this.save();
    part.restartTimer = setTimeout(() => {
      part.restartTimer = undefined;
      this.restartPart(part);
    }, delay);
  }

  private restartPart(part: Part): void {
    if (this.stopping || part.desired === 'stopped' || part.proc?.running) return;
    part.restarts++;
    let proc: StackProcess;
    try {
      proc = this.launch(part);
    } catch (err) {
      part.status = 'failed';
      this.log('error', `${part.id}: restart failed: ${(err as Error).message}`);
      this.save();
      return;
    }
    this.waitReady(part, proc, 120_000).then(
      () => this.log('info', `${part.id} restarted (pid ${String(proc.pid)}, restart ${part.restarts})`),
      (err: unknown) => this.log('warn', `${part.id}: restarted process not ready: ${(err as Error).message}`),
    );
  }

  private onBackendChange(e: BackendEvent): void {
    this.log(e.ready ? 'info' : 'warn', `balancer: ${e.id} ${e.ready ? 'joined' : 'left'} rotation (${e.reason})`);
    this.save();
  }

  // ---- control ---------------------------------------------------------------------------------------

  private part(id: string): Part {
    const p = this.parts.find((x) => x.id === id);
    if (!p) throw new UnknownPartError(id, this.parts.map((x) => x.id));
    return p;
  }

  private apiPart(idOrIndex: string | number): Part {
    const id = typeof idOrIndex === 'number' ? `api-${idOrIndex}` : idOrIndex;
    const p = this.part(id);
    if (p.kind !== 'api') throw new UnknownPartError(id, this.parts.filter((x) => x.kind === 'api').map((x) => x.id));
    return p;
  }

  signal(id: string, signal: NodeJS.Signals): Promise<SignalResult> {
    const p = this.part(id);
    const pid = p.proc?.pid;
    if (!p.proc?.running || pid === undefined) return Promise.reject(new PartStateError(`${id} has no running process (${p.status})`));
    const proc = p.proc;
    proc.signal(signal);
    this.log('warn', `sent ${signal} to ${id} (pid ${pid})`);
    if (signal !== 'SIGKILL') return Promise.resolve({ id, pid, signal });
    // A kill is done when the process is gone (and, for an API instance, out of the balancer, which
    // onExit does first): a caller timing the fault, as the chaos runner does, then counts the
    // requests sent while it was dying as in flight at the fault.
    const timer = new AbortController();
    return Promise.race([proc.exited, sleep(KILL_WAIT_MS, undefined, { signal: timer.signal }).catch(() => undefined)])
      .then(() => {
        timer.abort();
        return { id, pid, signal };
      });
  }

  /** kill -9 (or another signal) of API slot `i` (1-based). */
  killInstance(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<SignalResult> {
    return this.signal(this.apiPart(i).id, signal);
  }

  async stopPart(id: string): Promise<void> {
    const p = this.part(id);
    p.desired = 'stopped';
    clearTimeout(p.restartTimer);
    p.restartTimer = undefined;
    if (p.proc?.running) {
      p.status = 'stopping';
      this.save();
      await p.proc.stop(p.kind === 'api' ? this.apiStopGraceMs() : 10_000);
    }
    p.status = 'stopped';
    this.save();
  }

  async startPart(id: string): Promise<void> {
    const p = this.part(id);
    if (this.stopping) throw new PartStateError('the stack is stopping');
    clearTimeout(p.restartTimer);
    p.restartTimer = undefined;
    p.desired = 'running';
    if (p.proc?.running) return;
    p.backoffMs = this.restartPolicy.initialMs;
    await this.waitReady(p, this.launch(p), p.kind === 'api' ? 60_000 : 30_000);
  }

  private apiStopGraceMs(): number {
    try {
      const c = loadConfig(this.apiEnv('x', 0, this.dir));
      return c.SHUTDOWN_DELAY_MS + c.SHUTDOWN_TIMEOUT_MS + c.SHUTDOWN_DRAIN_MS + 5000;
    } catch {
      return 45_000;
    }
  }

  /**
   * Replaces an API slot's process without losing a request, as a rolling update does: start a new
   * instance (new port, the slot's other data directory), wait until it answers /ready, put it in
   * rotation, take the old one out of rotation, then SIGTERM the old one so it finishes its
   * in-flight requests and exits. If the new one does not become ready, it is stopped and the old
   * one stays.
   */
  async replaceInstance(idOrIndex: string | number): Promise<ReplaceResult> {
    const part = this.apiPart(idOrIndex);
    if (this.stopping || this.status !== 'running') throw new PartStateError(`the stack is ${this.status}`);
    if (part.replacing) throw new PartStateError(`${part.id} is already being replaced`);
    const old = part.proc;
    if (!old?.running || part.status !== 'running') throw new PartStateError(`${part.id} is not running (${part.status})`);
    part.replacing = true;
    try {
      const started = Date.now();
      const generation = part.generation + 1;
      const instanceId = `${part.id}.g${generation}`;
      const port = await freePort();
      const dataIndex = 1 - part.dataIndex;
      const proc = this.apiProcess(part, instanceId, port, dataIndex);
      this.log('info', `replacing ${part.id}: starting ${instanceId} on port ${port}`);
      proc.start();
      this.pending.add(proc);
      try {
        await this.waitProcessReady(instanceId, proc, 'api', { http: port }, 60_000);
        if (this.stopping) throw new PartStateError('the stack is stopping');
      } catch (err) {
        await proc.stop(5000);
        throw err;
      } finally {
        this.pending.delete(proc);
      }
      const readyMs = Date.now() - started;
      const oldInstance = part.instanceId;
      const oldPort = part.ports.http ?? 0;
      // The swap: from here on the slot's process is the new one; the old one is retiring.
      part.proc = proc;
      part.generation = generation;
      part.instanceId = instanceId;
      part.ports = { http: port };
      part.dataIndex = dataIndex;
      part.log = proc.options.logFile;
      part.status = 'running';
      part.replacements++;
      part.backoffMs = this.restartPolicy.initialMs;
      void proc.exited.then((exit) => this.onExit(part, proc, exit));
      this.balancer.add({ id: instanceId, port }, { ready: true });
      const retiring: RetiringProcess = { id: part.id, instanceId: oldInstance, proc: old, port: oldPort, since: new Date().toISOString() };
      this.retiring.push(retiring);
      const drained = this.balancer.remove(oldInstance, this.apiStopGraceMs());
      this.save();
      this.log('info', `replacing ${part.id}: ${instanceId} in rotation, ${oldInstance} out; stopping it (SIGTERM)`);
      const exit = await old.stop(this.apiStopGraceMs());
      await drained;
      this.retiring.splice(this.retiring.indexOf(retiring), 1);
      this.save();
      this.log('info', `replaced ${part.id}: ${oldInstance} exited (${describeExit(exit)}) after ${Date.now() - started} ms`);
      return {
        id: part.id,
        old: { instance_id: oldInstance, pid: old.pid ?? null, port: oldPort, exit: exitRecord(exit) },
        new: { instance_id: instanceId, pid: proc.pid ?? null, port },
        duration_ms: Date.now() - started,
        ready_ms: readyMs,
      };
    } finally {
      part.replacing = false;
    }
  }

  /** The NATS fault proxies (stacks started with `natsFaults`). */
  natsFaults(): Promise<NatsProxyState[]> {
    return Promise.resolve(this.natsProxies.states());
  }

  /** Partitions (hang, refuse), slows (latency) or heals (pass) the API instances' NATS connections. */
  setNatsFault(setting: FaultSetting, node?: string): Promise<NatsProxyState[]> {
    try {
      const states = this.natsProxies.set(setting, node);
      this.log('warn', `NATS fault: ${setting.mode}${setting.mode === 'latency' ? ` ${setting.latencyMs ?? 0} ms` : ''} between the API instances and ${node ?? 'every NATS node'}`);
      this.save();
      return Promise.resolve(states);
    } catch (err) {
      return Promise.reject(asError(err));
    }
  }

  /** The stand-in OpenTelemetry collector (stacks started with `otelFaults`). */
  otelCollector(): Promise<OtelCollectorState> {
    try {
      return Promise.resolve(this.otelSink.state());
    } catch (err) {
      return Promise.reject(asError(err));
    }
  }

  /** Makes the API instances' OpenTelemetry collector hang or refuse, or heals it (pass). */
  setOtelFault(setting: FaultSetting): Promise<OtelCollectorState> {
    try {
      const state = this.otelSink.set(setting);
      this.log('warn', `OpenTelemetry collector fault: ${setting.mode}${setting.mode === 'latency' ? ` ${setting.latencyMs ?? 0} ms` : ''}`);
      return Promise.resolve(state);
    } catch (err) {
      return Promise.reject(asError(err));
    }
  }

  // ---- stop ------------------------------------------------------------------------------------------

  /**
   * Stops everything in order: the API instances first (SIGTERM: they drain while the balancer
   * takes them out of rotation), then the balancer, Redis and NATS, then the control endpoint.
   * Safe to call more than once.
   */
  stop(): Promise<void> {
    this.stopPromise ??= this.doStop().finally(() => this.resolveStopped());
    return this.stopPromise;
  }

  /** Resolves once the stack has stopped, whoever asked (a signal, the control endpoint, a failed start). */
  whenStopped(): Promise<void> {
    return this.stopped;
  }

  private async doStop(): Promise<void> {
    this.stopping = true;
    const wasFailed = this.status === 'failed';
    this.status = 'stopping';
    for (const p of this.parts) {
      clearTimeout(p.restartTimer);
      p.restartTimer = undefined;
      p.desired = 'stopped';
    }
    // Heal any partition first: the instances drain their fallback queues into JetStream as they stop.
    if (this.natsProxies.enabled) this.natsProxies.set({ mode: 'pass' });
    if (this.otelSink.enabled) this.otelSink.set({ mode: 'pass' });
    this.save();
    this.log('info', 'stopping the stack');
    const stopAll = async (parts: Part[], graceMs: number): Promise<void> => {
      await Promise.all(parts.filter((p) => p.proc?.running).map(async (p) => {
        p.status = 'stopping';
        await p.proc?.stop(graceMs);
        p.status = 'stopped';
      }));
    };
    const apiGrace = this.apiStopGraceMs();
    await Promise.all([
      stopAll(this.parts.filter((p) => p.kind === 'api'), apiGrace),
      ...this.retiring.map((r) => r.proc.stop(apiGrace)),
      ...[...this.pending].map((proc) => proc.stop(5000)),
    ]);
    await this.balancer.stop(1000);
    await stopAll(this.parts.filter((p) => p.kind === 'redis'), 10_000);
    await stopAll(this.parts.filter((p) => p.kind === 'nats'), 10_000);
    await this.natsProxies.stop();
    await this.otelSink.stop();
    for (const p of this.parts) p.status = 'stopped';
    this.retiring.length = 0;
    this.status = wasFailed ? 'failed' : 'stopped';
    this.save();
    await this.control?.stop();
    this.log('info', 'stack stopped');
  }

  // ---- state -----------------------------------------------------------------------------------------

  private serverInfo(p: Part): ServerInfo {
    const url = p.kind === 'nats' ? `nats://127.0.0.1:${p.ports.client ?? 0}` : `redis://127.0.0.1:${p.ports.client ?? 0}`;
    return { id: p.id, url, pid: p.proc?.running ? (p.proc.pid ?? null) : null, ports: { ...p.ports }, status: p.status };
  }

  private partState(p: Part): PartState {
    const running = p.proc?.running === true;
    const url = p.kind === 'api' ? `http://127.0.0.1:${p.ports.http ?? 0}` : this.serverInfo(p).url;
    return {
      id: p.id, kind: p.kind, status: p.status, desired: p.desired,
      process: running ? (p.proc?.record ?? null) : null,
      started_at: running && p.proc ? new Date(p.proc.startedAt).toISOString() : null,
      restarts: p.restarts, last_exit: p.lastExit, ports: { ...p.ports }, url, dir: p.kind === 'api' ? this.apiDataDir(p, p.dataIndex) : p.dir, log: p.log,
      ...(p.kind === 'api' && {
        instance_id: p.instanceId, generation: p.generation, replacements: p.replacements, in_rotation: this.balancer.inRotation(p.instanceId),
      }),
    };
  }

  private save(): void {
    if (this.options.stateFile === false) return;
    try {
      writeState(this.dir, this.snapshot(false));
    } catch (err) {
      this.log('error', `cannot write the state file: ${(err as Error).message}`);
    }
  }
}
