import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { ManagedProcess, waitUntil } from '../../src/adapters/local/managed-process.js';
import { LocalNatsServer } from '../../src/adapters/local/nats-server.js';
import { freePort } from '../../src/adapters/local/ports.js';
import { LocalRedisServer } from '../../src/adapters/local/redis-server.js';
import { modeSwitches } from './mode-switches.js';

const execFileP = promisify(execFile);

/** Repository root, from dist/bench/lib. */
export const ROOT = join(import.meta.dirname, '..', '..', '..');
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const BARE = join(ROOT, 'dist', 'bench', 'bare-server.js');
const NO_METER = join(ROOT, 'dist', 'bench', 'api-without-metering.js');
const IO_FLOOR = join(ROOT, 'dist', 'bench', 'io-floor-server.js');
const ALLOC_SAMPLER = join(ROOT, 'dist', 'bench', 'lib', 'alloc-sampler.js');

/** Limits high enough that the bench never sees a 429 or a 402, while still running the checks. */
export const BENCH_RATE_LIMITS = 'free=60,pro=600,enterprise=100000000';
export const BENCH_TOKEN_QUOTAS = 'free=100000,pro=10000000,enterprise=1000000000000000';

/** The processes that answer the bench's targets. */
export const SERVER_NAMES = ['api', 'api-nometer', 'bare', 'io-floor'] as const;
export type ServerName = (typeof SERVER_NAMES)[number];

export interface StackOptions {
  readonly dir: string;
  /** Run the API and the bare server under --cpu-prof, writing to `<dir>/api` and `<dir>/bare`. */
  readonly cpuProfileDir?: string;
  /** Preload bench/lib/alloc-sampler.js into the API and the bare server, writing to `<dir>/<server>`. */
  readonly allocProfileDir?: string;
  /**
   * Runs the API, the unmetered API and the bare server under another program: the argv before
   * `node` (bench/instructions.ts: valgrind's callgrind). The pid is still the server's, as the
   * wrapper execs it.
   */
  readonly serverWrapper?: (name: ServerName) => readonly string[];
  /** Node flags for those servers, after BENCH_NODE_FLAGS. */
  readonly serverNodeFlags?: readonly string[];
  /** How long a server may take to answer after it starts (default 30 s; a wrapped server is slower). */
  readonly startTimeoutMs?: number;
  /** Environment for both APIs on top of the bench's (a wrapped, slowed server needs longer dependency timeouts). */
  readonly apiEnv?: Readonly<NodeJS.ProcessEnv>;
}

export interface Stack {
  readonly apiUrl: string;
  /** The same API without a usage meter (bench/api-without-metering.ts): what metering costs. */
  readonly apiNoMeterUrl: string;
  readonly natsUrl: string;
  readonly bareUrl: string;
  /** The I/O floor of a metered call (bench/io-floor-server.ts). */
  readonly ioFloorUrl: string;
  readonly apiKey: string;
  readonly pids: Readonly<Record<ServerName | 'nats' | 'redis', number | undefined>>;
  /**
   * Whether both APIs (metered and unmetered) still use real Redis and NATS and every process lives:
   * their current modes, and any switch to a fallback and back since the last check
   * (kgents_dependency_mode_switches_total), which a check of the modes alone would miss.
   */
  dependencyCheck(): Promise<string[]>;
  /** Stops the API and the bare server (SIGTERM: profiled processes write their .cpuprofile on exit). */
  stopServers(): Promise<void>;
  stop(): Promise<void>;
}

/** Asks a Redis server for its pid (INFO server) over a raw socket. */
function redisPid(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (pid: number | undefined): void => {
      socket.destroy();
      resolve(pid);
    };
    socket.setTimeout(1000, () => done(undefined));
    socket.once('error', () => done(undefined));
    socket.once('connect', () => socket.write('INFO server\r\n'));
    socket.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      const match = /process_id:(\d+)/.exec(buf);
      if (match?.[1]) done(Number(match[1]));
    });
  });
}

async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
  await res.arrayBuffer();
  return res.ok;
}

interface SaasHealth {
  status?: string;
  components?: Record<string, { status?: string; mode?: string }>;
}

/**
 * An API's problems for the bench: a dependency not in its real mode now, or switched to its
 * fallback and back since the last call (`seen`: the switch counts already reported, by API and switch).
 */
async function apiDependencyProblems(name: string, url: string, seen: Map<string, number>): Promise<string[]> {
  const problems: string[] = [];
  try {
    const res = await fetch(`${url}/health/saas`, { signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as SaasHealth;
    const redisState = body.components?.redis;
    const natsState = body.components?.nats;
    if (redisState?.mode !== 'redis') problems.push(`${name} fell back from Redis to memory (redis: ${JSON.stringify(redisState)})`);
    if (natsState?.status !== 'ok') problems.push(`${name}'s NATS connection is not ok (nats: ${JSON.stringify(natsState)})`);
    const metrics = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
    for (const [change, count] of modeSwitches(await metrics.text())) {
      const key = `${name}: ${change}`;
      const before = seen.get(key) ?? 0;
      if (count > before) problems.push(`${name} switched ${change} ${count - before} time(s) since the last check (a dependency was slow or down for part of the run)`);
      seen.set(key, count);
    }
  } catch (err) {
    problems.push(`${name}: /health/saas or /metrics failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  return problems;
}

/**
 * Starts nats-server (JetStream) and redis-server in `dir`, creates an enterprise API key through
 * the CLI, then the API (`kgents serve`), the API without metering, the bare Fastify server and the
 * I/O floor server, each its own process.
 */
export async function startStack(options: StackOptions): Promise<Stack> {
  const procs: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of procs.reverse()) {
      try {
        await stop();
      } catch {
        // keep stopping the rest
      }
    }
    procs.length = 0;
  };

  try {
    const nats = new LocalNatsServer({ dir: join(options.dir, 'nats') });
    const redis = new LocalRedisServer({ dir: join(options.dir, 'redis') });
    procs.push(() => nats.stop(), () => redis.stop());
    await Promise.all([nats.start(), redis.start()]);

    const dataDir = join(options.dir, 'api');
    mkdirSync(dataDir, { recursive: true });
    const baseEnv: NodeJS.ProcessEnv = {
      ...process.env,
      NATS_URLS: nats.url,
      REDIS_URL: redis.url,
      EMBEDDED_SERVICES: 'off',
      KEY_STORE: 'nats',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'info',
      RATE_LIMITS: BENCH_RATE_LIMITS,
      TOKEN_QUOTAS: BENCH_TOKEN_QUOTAS,
      SHUTDOWN_DELAY_MS: '0',
      INSTANCE_ID: 'bench',
      ...options.apiEnv,
    };

    const { stdout } = await execFileP(process.execPath, [CLI, 'keys', 'create', '--tenant', 'bench', '--tier', 'enterprise', '--scopes', 'read,write', '--json'], { env: baseEnv });
    const created = JSON.parse(stdout) as { key?: unknown; tier?: unknown };
    if (typeof created.key !== 'string') throw new Error(`keys create printed no key: ${stdout.slice(0, 300)}`);
    const apiKey = created.key;

    const apiPort = await freePort();
    // BENCH_NODE_FLAGS: V8/Node flags for every server of the bench (bare Fastify too, so the ratio
    // compares code, not flags), for A/B runs of a flag; none by default, as the service is deployed.
    const nodeFlags = [...(process.env.BENCH_NODE_FLAGS ?? '').split(/\s+/).filter((f) => f !== ''), ...(options.serverNodeFlags ?? [])];
    const startTimeoutMs = options.startTimeoutMs ?? 30_000;
    const launch = (name: ServerName, args: readonly string[]): { command: string; args: string[] } => {
      const wrapper = options.serverWrapper?.(name) ?? [];
      const [command, ...wrapperArgs] = wrapper;
      return command === undefined ? { command: process.execPath, args: [...args] } : { command, args: [...wrapperArgs, process.execPath, ...args] };
    };
    const allocDir = options.allocProfileDir;
    const profileArgs = (name: string): string[] => [
      ...(options.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${join(options.cpuProfileDir, name)}`] : []),
      ...(allocDir ? ['--import', pathToFileURL(ALLOC_SAMPLER).href] : []),
    ];
    const allocEnv = (name: string): NodeJS.ProcessEnv => {
      if (!allocDir) return {};
      mkdirSync(join(allocDir, name), { recursive: true });
      return { KGENTS_ALLOC_DIR: join(allocDir, name) };
    };
    const api = new ManagedProcess({
      name: 'api',
      ...launch('api', [...nodeFlags, ...profileArgs('api'), CLI, 'serve']),
      env: { ...baseEnv, ...allocEnv('api'), PORT: String(apiPort), HOST: '127.0.0.1' },
      logFile: join(options.dir, 'api.log'),
    });
    api.start();
    procs.push(() => api.stop(10_000));
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    await waitUntil('kgents API /ready', () => httpOk(`${apiUrl}/ready`), startTimeoutMs, api);

    // Its own DATA_DIR: the fallback queue directory is locked by the process that opened it.
    const noMeterDir = join(options.dir, 'api-nometer');
    mkdirSync(noMeterDir, { recursive: true });
    const noMeterPort = await freePort();
    const noMeter = new ManagedProcess({
      name: 'api-nometer',
      ...launch('api-nometer', [...nodeFlags, ...profileArgs('api-nometer'), NO_METER]),
      env: { ...baseEnv, ...allocEnv('api-nometer'), DATA_DIR: noMeterDir, PORT: String(noMeterPort), HOST: '127.0.0.1', INSTANCE_ID: 'bench-nometer' },
      logFile: join(options.dir, 'api-nometer.log'),
    });
    noMeter.start();
    procs.push(() => noMeter.stop(10_000));
    const apiNoMeterUrl = `http://127.0.0.1:${noMeterPort}`;
    await waitUntil('bench API without metering /ready', () => httpOk(`${apiNoMeterUrl}/ready`), startTimeoutMs, noMeter);

    const barePort = await freePort();
    const bare = new ManagedProcess({
      name: 'bare',
      ...launch('bare', [...nodeFlags, ...profileArgs('bare'), BARE]),
      env: { ...process.env, ...allocEnv('bare'), PORT: String(barePort), HOST: '127.0.0.1' },
      logFile: join(options.dir, 'bare.log'),
    });
    bare.start();
    procs.push(() => bare.stop());
    const bareUrl = `http://127.0.0.1:${barePort}`;
    await waitUntil('bare Fastify server', () => httpOk(`${bareUrl}/`), startTimeoutMs, bare);

    const ioFloorPort = await freePort();
    const ioFloor = new ManagedProcess({
      name: 'io-floor',
      ...launch('io-floor', [...nodeFlags, ...profileArgs('io-floor'), IO_FLOOR]),
      env: { ...process.env, ...allocEnv('io-floor'), PORT: String(ioFloorPort), HOST: '127.0.0.1', REDIS_URL: redis.url, NATS_URLS: nats.url },
      logFile: join(options.dir, 'io-floor.log'),
    });
    ioFloor.start();
    procs.push(() => ioFloor.stop());
    const ioFloorUrl = `http://127.0.0.1:${ioFloorPort}`;
    await waitUntil('I/O floor server', () => httpOk(`${ioFloorUrl}/`), startTimeoutMs, ioFloor);

    // Counted from here: a switch while an API was starting (connecting to Redis) is not the run's.
    const switchesSeen = new Map<string, number>();
    await Promise.all([apiDependencyProblems('API', apiUrl, switchesSeen), apiDependencyProblems('API without metering', apiNoMeterUrl, switchesSeen)]);
    const pids = { 'api': api.pid, 'api-nometer': noMeter.pid, 'bare': bare.pid, 'io-floor': ioFloor.pid, 'nats': nats.pid, 'redis': await redisPid(redis.port) };

    return {
      apiUrl, apiNoMeterUrl, natsUrl: nats.url, bareUrl, ioFloorUrl, apiKey, pids,
      async dependencyCheck() {
        const problems: string[] = [];
        for (const [name, running] of [['api', api.running], ['api-nometer', noMeter.running], ['bare', bare.running], ['io-floor', ioFloor.running], ['nats-server', nats.running], ['redis-server', redis.running]] as const) {
          if (!running) problems.push(`${name} is not running`);
        }
        for (const [name, url, running] of [['API', apiUrl, api.running], ['API without metering', apiNoMeterUrl, noMeter.running]] as const) {
          if (running) problems.push(...(await apiDependencyProblems(name, url, switchesSeen)));
        }
        return problems;
      },
      async stopServers() {
        await Promise.all([api.stop(10_000), noMeter.stop(10_000), bare.stop(), ioFloor.stop()]);
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** The .cpuprofile files a profiled API left in `dir`. */
export function cpuProfiles(dir: string): string[] {
  try {
    return readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(dir, f));
  } catch {
    return [];
  }
}
