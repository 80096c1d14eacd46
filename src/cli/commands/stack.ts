import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SCOPES, TIERS, type Scope, type Tier } from '../../config/schema.js';
import { FaultModeError, parseFaultSetting } from '../../ops/fault/proxy.js';
import { parseSignal, StackClient } from '../../ops/stack/control.js';
import { startDetached, stopDetached, supervisorLog, type DownResult } from '../../ops/stack/detached.js';
import { checkStack, type StackHealth } from '../../ops/stack/health.js';
import { createStackKey } from '../../ops/stack/keys.js';
import { Stack, type StackLogger } from '../../ops/stack/stack.js';
import { readState, type StackState } from '../../ops/stack/state.js';
import { type Command, UsageError } from '../command.js';
import { out, parseCliArgs, printJson, table, validTenantId } from './keys.js';

const DEFAULT_DIR = '.stack';
const DEFAULT_PORT = 8080;

const USAGE = `Usage:
  kgents stack up [--dir DIR] [--api N] [--port P] [--nats N] [--nats-faults] [--otel-faults] [--foreground] [--json]
      Starts a production-like stack: a NATS JetStream cluster (--nats, default 3 nodes, streams
      with 3 replicas), Redis, N API instances (--api, default 2, each 'kgents serve' with its own
      port and DATA_DIR) and a load balancer on one port (--port, default ${DEFAULT_PORT}), with
      ports, data and logs under DIR (default ./${DEFAULT_DIR}). A supervisor restarts any part that
      dies. By default the supervisor runs in the background: 'up' returns once the stack serves.
      --foreground keeps it attached (Ctrl-C stops everything). --nats-faults routes the API
      instances' NATS connections through a fault proxy per node (see 'fault'). --otel-faults gives
      them a stand-in OpenTelemetry collector behind a fault proxy (kgents chaos observability-down).
  kgents stack status [--dir DIR] [--json]
      Each part's process, health (NATS /healthz, Redis PING, API /ready and /health/saas, the
      balancer), restarts and uptime. Exit code 0 only if everything is healthy.
  kgents stack down [--dir DIR] [--json]
      Stops everything the stack started, and nothing else (only the recorded processes, checked
      against /proc). Safe to repeat.
  kgents stack key [--dir DIR] [--tenant ID] [--tier free|pro|enterprise] [--scopes read,write] [--json]
      Creates an API key in the stack's key store (default tenant "load-test", tier enterprise).
  kgents stack replace ID|all [--dir DIR] [--json]
      Replaces an API instance (api-1, ...) without losing requests: a new instance starts, joins
      the balancer when ready, the old one leaves rotation and drains. 'all': one after another.
  kgents stack kill ID [--signal S] [--dir DIR] [--json]
      Sends a signal (default KILL; also TERM, STOP, CONT, ...) to a part: api-N, nats-N, redis.
      The supervisor restarts a part that dies.
  kgents stack fault nats pass|hang|refuse|latency [--latency-ms N] [--node nats-N] [--dir DIR] [--json]
      Network faults between the API instances and NATS (stack started with --nats-faults): hang
      is a black hole (connections stall, nothing crosses), refuse resets them, latency delays
      every chunk, pass heals. Without --node: every node.

Other tools find the stack through DIR/stack.json (pids, ports, URLs, the control endpoint); see docs/stack.md.`;

function parseTier(raw: string | undefined): Tier {
  if (raw === undefined) return 'enterprise';
  const tier = TIERS.find((t) => t === raw);
  if (!tier) throw new UsageError(`--tier must be one of ${TIERS.join(', ')} (got "${raw.slice(0, 40)}")`);
  return tier;
}

function parseScopes(raw: string | undefined): Scope[] {
  const parts = (raw ?? 'read,write').split(',').map((s) => s.trim()).filter((s) => s !== '');
  const unknown = parts.filter((p) => !SCOPES.some((s) => s === p));
  if (parts.length === 0 || unknown.length > 0) throw new UsageError(`--scopes: use a comma-separated list of ${SCOPES.join(', ')}`);
  return SCOPES.filter((s) => parts.includes(s));
}

function intOption(raw: string | undefined, name: string, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${name} must be an integer from ${min} to ${max}`);
  return n;
}

function noPositionals(positionals: readonly string[]): void {
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]?.slice(0, 40)}"`);
}

function duration(seconds: number | null): string {
  if (seconds === null) return '-';
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
}

function ports(p: Readonly<Record<string, number>>): string {
  return Object.entries(p).map(([k, v]) => `${k}=${v}`).join(' ') || '-';
}

/** The state as shown to a user: without the control token. */
function publicState(state: StackState): Omit<StackState, 'control'> & { control: { url: string } } {
  return { ...state, control: { url: state.control.url } };
}

/** `nats-1 pass (nats://...), ...`: a partition left in place shows here. */
function proxySummary(state: StackState): string {
  return (state.nats_proxies ?? []).map((p) => `${p.node} ${p.mode === 'latency' ? `latency ${p.latency_ms} ms` : p.mode} (${p.proxy_url})`).join(', ');
}

function summary(state: StackState): string {
  const rows = [
    ['supervisor', String(state.supervisor.pid), `control=${state.control.url.replace('http://', '')}`, supervisorLog(state.dir)],
    ['balancer', String(state.supervisor.pid), `http=${state.port}`, '(in the supervisor)'],
    ...state.parts.map((p) => [p.id, String(p.process?.pid ?? '-'), ports(p.ports), p.log]),
  ];
  return [
    `Stack running in ${state.dir}`,
    '',
    `  URL:   ${state.url}`,
    `  NATS:  ${state.nats_urls.join(',')}`,
    `  Redis: ${state.redis_url}`,
    ...(state.nats_proxies ? [`  NATS fault proxies (the API instances use these): ${proxySummary(state)}`] : []),
    '',
    table(['PART', 'PID', 'PORTS', 'LOG'], rows),
    '',
    'Next:',
    `  kgents stack key --dir ${state.dir} --tier enterprise     # an API key for load tests (JSON with --json)`,
    `  kgents stack status --dir ${state.dir}`,
    `  kgents stack down --dir ${state.dir}`,
    `  (or: NATS_URLS=${state.nats_urls.join(',')} kgents keys create --tenant ID)`,
  ].join('\n');
}

function lineLogger(): StackLogger {
  return (level, msg, fields) => {
    const extra = fields && Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : '';
    process.stdout.write(`${new Date().toISOString()} ${level.padEnd(5)} ${msg}${extra}\n`);
  };
}

async function runForeground(options: { dir: string; apiInstances: number | undefined; natsNodes: number | undefined; port: number; natsFaults: boolean; otelFaults: boolean; json: boolean }): Promise<number> {
  const stack = new Stack({
    dir: options.dir, port: options.port, logger: lineLogger(), natsFaults: options.natsFaults, otelFaults: options.otelFaults,
    ...(options.apiInstances !== undefined && { apiInstances: options.apiInstances }),
    ...(options.natsNodes !== undefined && { natsNodes: options.natsNodes }),
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    process.stdout.write(`${new Date().toISOString()} info  ${signal}: ${signals > 1 ? 'already stopping' : 'stopping the stack'}\n`);
    void stack.stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onSignal);
  try {
    await stack.start();
  } catch (err) {
    process.stderr.write(`kgents stack: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  const state = stack.snapshot(false);
  if (options.json) printJson(publicState(state));
  else out(summary(state));
  await stack.whenStopped();
  // Everything is closed; exit even if a stray handle would keep the loop alive.
  setTimeout(() => process.exit(0), 2000).unref();
  return 0;
}

async function up(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCliArgs(() => parseArgs({
    args: [...args],
    options: {
      dir: { type: 'string' }, api: { type: 'string' }, port: { type: 'string' }, nats: { type: 'string' },
      foreground: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, 'nats-faults': { type: 'boolean', default: false },
      'otel-faults': { type: 'boolean', default: false },
    },
    allowPositionals: true, strict: true,
  }));
  noPositionals(positionals);
  const dir = resolve(values.dir ?? DEFAULT_DIR);
  const apiInstances = intOption(values.api, '--api', 1, 32);
  const natsNodes = intOption(values.nats, '--nats', 1, 5);
  const port = intOption(values.port, '--port', 0, 65535) ?? DEFAULT_PORT;
  const natsFaults = values['nats-faults'];
  const otelFaults = values['otel-faults'];
  if (values.foreground) return runForeground({ dir, apiInstances, natsNodes, port, natsFaults, otelFaults, json: values.json });
  const state = await startDetached({
    dir, port, natsFaults, otelFaults, ...(apiInstances !== undefined && { apiInstances }), ...(natsNodes !== undefined && { natsNodes }),
  });
  // Running means every instance answered /ready; confirm the public port serves too.
  const health = await checkStack(state);
  if (values.json) printJson({ ...publicState(state), health: health.status });
  else out(summary(state));
  if (health.status !== 'healthy') {
    process.stderr.write(`kgents stack: started, but not every part is healthy yet: kgents stack status --dir ${dir}\n`);
    return 1;
  }
  return 0;
}

function printHealth(health: StackHealth): void {
  out([
    `Stack in ${health.dir}: ${health.status.toUpperCase()}${health.url ? ` (${health.url})` : ''}${health.source === 'file' ? ' [from stack.json: the supervisor does not answer]' : ''}`,
    '',
    table(['PART', 'PID', 'PROCESS', 'HEALTH', 'CHECK', 'RESTARTS', 'UPTIME', 'PORTS'], health.parts.map((p) => [
      p.instance_id && p.instance_id !== p.id ? `${p.id} (${p.instance_id})` : p.id,
      String(p.pid ?? '-'), p.process, p.healthy ? 'ok' : 'FAIL',
      `${p.detail}${p.in_rotation === false && p.healthy ? ', out of rotation' : ''}`,
      String(p.restarts), duration(p.uptime_s), ports(p.ports),
    ])),
    ...(health.balancer ? ['', `Balancer: ${health.balancer.requests} requests, ${health.balancer.retries} retried, ${health.balancer.failed} failed (${health.balancer.no_backend} with no instance ready)`] : []),
  ].join('\n'));
}

async function status(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCliArgs(() => parseArgs({
    args: [...args], options: { dir: { type: 'string' }, json: { type: 'boolean', default: false } }, allowPositionals: true, strict: true,
  }));
  noPositionals(positionals);
  const dir = resolve(values.dir ?? DEFAULT_DIR);
  const state = readState(dir);
  if (!state) {
    if (values.json) printJson({ dir, status: 'stopped', parts: [] });
    else out(`No stack in ${dir} (no stack.json). Start one with: kgents stack up --dir ${dir}`);
    return 1;
  }
  const health = await checkStack(state);
  if (values.json) printJson(health);
  else {
    printHealth(health);
    if (state.nats_proxies) out(`\nNATS fault proxies between the API instances and NATS: ${proxySummary(state)}`);
  }
  return health.status === 'healthy' ? 0 : 1;
}

async function down(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCliArgs(() => parseArgs({
    args: [...args], options: { dir: { type: 'string' }, json: { type: 'boolean', default: false } }, allowPositionals: true, strict: true,
  }));
  noPositionals(positionals);
  const dir = resolve(values.dir ?? DEFAULT_DIR);
  const result: DownResult = await stopDetached(dir);
  if (values.json) printJson(result);
  else if (result.already_stopped) out(`No stack running in ${dir}; nothing to stop.`);
  else {
    out([
      `Stopped the stack in ${dir}:`,
      table(['PART', 'PID', 'STOPPED BY', 'GONE'], result.stopped.map((s) => [s.id, String(s.pid), s.by === 'supervisor' ? 'supervisor' : 'down (signal)', s.gone ? 'yes' : 'NO'])),
    ].join('\n'));
  }
  for (const s of result.skipped) process.stderr.write(`kgents stack: left pid ${s.pid} alone: it is no longer ${s.id}\n`);
  return result.stopped.every((s) => s.gone) ? 0 : 1;
}

function runningState(dir: string): StackState {
  const state = readState(dir);
  if (!state) throw new UsageError(`no stack in ${dir}: start one with kgents stack up --dir ${dir}`);
  if (state.status !== 'running') throw new UsageError(`the stack in ${dir} is ${state.status}`);
  return state;
}

async function key(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCliArgs(() => parseArgs({
    args: [...args],
    options: { dir: { type: 'string' }, tenant: { type: 'string' }, tier: { type: 'string' }, scopes: { type: 'string' }, json: { type: 'boolean', default: false } },
    allowPositionals: true, strict: true,
  }));
  noPositionals(positionals);
  const dir = resolve(values.dir ?? DEFAULT_DIR);
  const tenant = validTenantId(values.tenant ?? 'load-test', '--tenant');
  const tier = parseTier(values.tier);
  const scopes = parseScopes(values.scopes);
  const state = runningState(dir);
  const created = await createStackKey({ natsUrls: state.nats_urls, replicas: Math.min(3, state.nats_urls.length), tenant, tier, scopes });
  if (values.json) printJson({ ...created, url: state.url });
  else {
    out([
      `Created API key ${created.prefix} for tenant "${created.tenant}" (tier ${created.tier}, scopes ${created.scopes.join(',')})${created.created_tenant ? '' : ' (existing tenant)'}:`,
      '',
      `  ${created.key}`,
      '',
      `Try: curl -H 'x-api-key: ${created.key}' '${state.url}/v1/agentese/resolve?path=world.house'`,
    ].join('\n'));
  }
  return 0;
}

async function replace(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCliArgs(() => parseArgs({
    args: [...args], options: { dir: { type: 'string' }, json: { type: 'boolean', default: false } }, allowPositionals: true, strict: true,
  }));
  if (positionals.length !== 1 || !positionals[0]) throw new UsageError('give one API instance (api-1, ...) or "all"');
  const dir = resolve(values.dir ?? DEFAULT_DIR);
  const state = runningState(dir);
  const client = new StackClient(state.control.url, state.control.token);
  const ids = positionals[0] === 'all' ? state.parts.filter((p) => p.kind === 'api').map((p) => p.id) : [positionals[0]];
  const results = [];
  for (const id of ids) {
    const r = await client.replaceInstance(id);
    results.push(r);
    if (!values.json) out(`${r.id}: ${r.old.instance_id} (pid ${String(r.old.pid)}, port ${r.old.port}) -> ${r.new.instance_id} (pid ${String(r.new.pid)}, port ${r.new.port}); ready after ${r.ready_ms} ms, old one exited after ${r.duration_ms} ms`);
  }
  if (values.json) printJson(results);
  return 0;
}

async function kill(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCliArgs(() => parseArgs({
    args: [...args], options: { dir: { type: 'string' }, signal: { type: 'string' }, json: { type: 'boolean', default: false } }, allowPositionals: true, strict: true,
  }));
  if (positionals.length !== 1 || !positionals[0]) throw new UsageError('give one part: api-N, nats-N or redis');
  const signal = parseSignal(values.signal ?? 'KILL');
  if (!signal) throw new UsageError('--signal: use KILL, TERM, STOP, CONT, INT, HUP, QUIT, USR1 or USR2');
  const state = runningState(resolve(values.dir ?? DEFAULT_DIR));
  const r = await new StackClient(state.control.url, state.control.token).signal(positionals[0], signal);
  if (values.json) printJson(r);
  else out(`Sent ${r.signal} to ${r.id} (pid ${r.pid}).`);
  return 0;
}

async function fault(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCliArgs(() => parseArgs({
    args: [...args], options: { dir: { type: 'string' }, 'latency-ms': { type: 'string' }, node: { type: 'string' }, json: { type: 'boolean', default: false } },
    allowPositionals: true, strict: true,
  }));
  const [target, mode] = positionals;
  if (target !== 'nats' || positionals.length !== 2) throw new UsageError('usage: kgents stack fault nats pass|hang|refuse|latency [--latency-ms N] [--node nats-N]');
  let setting;
  try {
    setting = parseFaultSetting(mode, values['latency-ms']);
  } catch (err) {
    throw new UsageError(err instanceof FaultModeError ? err.message.replace('latency_ms', '--latency-ms') : String(err));
  }
  const state = runningState(resolve(values.dir ?? DEFAULT_DIR));
  const proxies = await new StackClient(state.control.url, state.control.token).setNatsFault(setting, values.node);
  if (values.json) printJson(proxies);
  else {
    out(table(['NODE', 'MODE', 'PROXY', 'OPEN', 'TOTAL', 'RESET'], proxies.map((p) => [
      p.node, p.mode === 'latency' ? `latency ${p.latency_ms} ms` : p.mode, p.proxy_url, String(p.connections_open), String(p.connections_total), String(p.connections_reset),
    ])));
  }
  return 0;
}

export const stackCommand: Command = {
  name: 'stack',
  summary: 'A production-like local stack (NATS cluster, Redis, N API instances behind one port): up, status, down.',
  usage: USAGE,
  run(args) {
    const [sub, ...rest] = args;
    switch (sub) {
      case 'up': return up(rest);
      case 'status': return status(rest);
      case 'down': return down(rest);
      case 'key': return key(rest);
      case 'replace': return replace(rest);
      case 'kill': return kill(rest);
      case 'fault': return fault(rest);
      case undefined: return Promise.reject(new UsageError('missing subcommand: up, status, down, key, replace, kill or fault'));
      default: return Promise.reject(new UsageError(`unknown subcommand "${sub.slice(0, 40)}": use up, status, down, key, replace, kill or fault`));
    }
  },
};
