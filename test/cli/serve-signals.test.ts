import { strict as assert } from 'node:assert';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FallbackQueue } from '../../src/adapters/disk/index.js';
import { findBinary } from '../../src/adapters/local/binaries.js';
import { LocalNatsServer } from '../../src/adapters/local/nats-server.js';
import { freePort } from '../../src/adapters/local/ports.js';
import { pidAlive } from '../../src/ops/stack/processes.js';
import { tempDir } from '../harness/servers.js';
import { CLI, http } from '../harness/serve-process.js';
import { children, exeOf, procInfo, waitPidGone, type ProcInfo } from '../harness/procs.js';
import { readAllUsage } from '../harness/usage.js';

/*
 * `kgents serve` with embedded nats-server and redis-server, stopped the ways a terminal stops it:
 * Ctrl-C signals its whole foreground process group, closing the terminal sends SIGHUP. The service
 * must drain with NATS and Redis still up, then stop them itself.
 */

const DRAIN_MS = 1500;

interface Serve {
  /** serve itself or, with a terminal, the script(1) process that holds the terminal. */
  readonly child: ChildProcess;
  /** serve's pid. */
  readonly pid: number;
  readonly port: number;
  output(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts serve as a shell starts a foreground job: in a process group of its own. With `terminal`,
 * in a real terminal (a pseudo-terminal of script(1)) of which serve is the session leader.
 */
async function startServe(dataDir: string, until: string, env: Record<string, string> = {}, terminal = false): Promise<Serve> {
  const port = await freePort();
  const [command, args] = terminal
    ? ['script', ['-qfec', `exec "${process.execPath}" "${CLI}" serve`, '/dev/null']]
    : [process.execPath, [CLI, 'serve']];
  const child = spawn(command, args, {
    detached: true,
    // script(1) must not see its input end.
    stdio: [terminal ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: {
      ...process.env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, SHUTDOWN_DELAY_MS: String(DRAIN_MS),
      NATS_URLS: '', REDIS_URL: '', EMBEDDED_SERVICES: 'auto', ...env,
    },
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const deadline = Date.now() + 30_000;
  try {
    while (!out.includes(until)) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`serve exited early:\n${out}`);
      if (Date.now() > deadline) throw new Error(`serve did not log "${until}" in time:\n${out}`);
      await sleep(50);
    }
    const node = realpathSync(process.execPath);
    const pid = terminal ? children(child.pid ?? 0).find((p) => exeOf(p.pid) === node)?.pid : child.pid;
    if (pid === undefined) throw new Error(`no serve process among the children of ${child.pid ?? '?'}:\n${out}`);
    return { child, pid, port, output: () => out, exited };
  } catch (err) {
    // Our child's group (serve, or script(1) holding serve's terminal, which serve then sees hang up):
    // left running, it would hold this file's pipes, and so its test process, open.
    if (child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    throw err;
  }
}

/** The embedded servers: children of the serve process, found in /proc rather than taken from its logs. */
function embeddedServers(servePid: number): { nats?: ProcInfo; redis?: ProcInfo } {
  const found = children(servePid);
  return { nats: found.find((p) => p.comm === 'nats-server'), redis: found.find((p) => p.comm === 'redis-server') };
}

/** The log messages with their levels; a line that is not JSON counts as an error. */
function logLines(output: string): { level: string; msg: string }[] {
  return output.split('\n').filter((l) => l.trim() !== '').map((l) => {
    try {
      const j = JSON.parse(l) as { level?: string; msg?: string };
      return { level: j.level ?? '?', msg: j.msg ?? '' };
    } catch {
      return { level: 'error', msg: l };
    }
  });
}

/** Asserts the shutdown ran in order (listener, clients, servers) and nothing complained on the way. */
function assertOrderlyShutdown(output: string): void {
  const lines = logLines(output);
  const at = (msg: string): number => {
    const i = lines.findIndex((l) => l.msg === msg);
    assert.ok(i >= 0, `no "${msg}" in the log:\n${output}`);
    return i;
  };
  const order = ['shutdown requested', 'shutdown: draining, /ready now answers 503', 'shutdown: closing the listener and waiting for in-flight requests',
    'stopping the embedded servers', 'embedded servers stopped', 'shutdown: done'].map(at);
  assert.deepEqual(order, [...order].sort((a, b) => a - b), `shutdown steps out of order:\n${output}`);
  const complaints = lines.slice(order[0]).filter((l) => l.level !== 'info');
  assert.deepEqual(complaints, [], `warnings or errors during the shutdown:\n${output}`);
  for (const bad of [/NATS connection lost/, /circuit breaker opened/, /fallback queue/, /Redis unavailable/, /second signal/]) {
    assert.doesNotMatch(output, bad);
  }
}

function createKey(dataDir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, 'keys', 'create', '--tenant', 'dev', '--tier', 'pro', '--scopes', 'read,write', '--json'],
      { env: { ...process.env, DATA_DIR: dataDir, NATS_URLS: '' }, timeout: 30_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`keys create failed: ${err.message}\n${stderr}`));
        else resolve((JSON.parse(stdout) as { key: string }).key);
      });
  });
}

interface SaasHealth {
  status: string;
  components: { nats: { status: string; mode: string; circuit: string; fallback_queue_depth: number }; redis: { status: string; mode: string } };
}

async function saasHealth(port: number): Promise<SaasHealth> {
  return JSON.parse((await http(port, '/health/saas')).body) as SaasHealth;
}

describe('kgents serve with embedded servers, stopped from a terminal', () => {
  test('Ctrl-C (SIGINT to its process group): it drains with NATS and Redis up, bills to JetStream, then stops them and exits 0', async () => {
    const dir = tempDir();
    // Longer than elsewhere: the checks below must fit into the drain on a busy machine too.
    const drainMs = 3000;
    try {
      const s = await startServe(dir.dir, 'kgents API listening', { SHUTDOWN_DELAY_MS: String(drainMs) });
      const { nats, redis } = embeddedServers(s.pid);
      assert.ok(nats && redis, `embedded servers not found among the children of ${s.pid}`);
      // Out of the terminal's foreground group, so Ctrl-C reaches only serve.
      assert.equal(nats.pgid, nats.pid);
      assert.equal(redis.pgid, redis.pid);
      assert.equal(procInfo(s.pid)?.pgid, s.pid);

      const key = await createKey(dir.dir);
      const headers = { 'x-api-key': key };
      let status = 0;
      for (let i = 0; i < 100 && status !== 200; i++) {
        status = (await http(s.port, '/v1/agentese/resolve?path=world.house', { headers })).status;
        if (status !== 200) await sleep(50);
      }
      assert.equal(status, 200, 'the new key did not reach the service');

      const ctrlC = Date.now();
      process.kill(-s.pid, 'SIGINT');
      let ready = 200;
      while (ready === 200) {
        ready = (await http(s.port, '/ready')).status;
        if (ready === 200) await sleep(20);
      }
      assert.equal(ready, 503);

      // During the drain the service still has its real backends and bills to JetStream.
      const draining = await saasHealth(s.port);
      assert.equal(draining.components.nats.mode, 'jetstream', JSON.stringify(draining));
      assert.equal(draining.components.nats.status, 'ok');
      assert.equal(draining.components.redis.mode, 'redis', JSON.stringify(draining));
      assert.equal(draining.components.redis.status, 'ok');
      const invoke = await http(s.port, '/v1/agentese/invoke', {
        method: 'POST', headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({ path: 'world.house.manifest', observer: { archetype: 'architect' } }),
      });
      assert.equal(invoke.status, 200, invoke.body);
      const requestId = String(invoke.headers['x-request-id']);
      const after = await saasHealth(s.port);
      assert.equal(after.components.nats.circuit, 'closed');
      assert.equal(after.components.nats.fallback_queue_depth, 0);
      assert.ok(Date.now() - ctrlC < drainMs, 'the checks above must run inside the drain');
      assert.ok(pidAlive(nats.pid) && pidAlive(redis.pid), 'embedded servers still up while draining');

      const exit = await s.exited;
      assert.deepEqual(exit, { code: 0, signal: null }, s.output());
      assert.ok(await waitPidGone(nats.pid), 'embedded nats-server outlived serve');
      assert.ok(await waitPidGone(redis.pid), 'embedded redis-server outlived serve');
      assert.equal(existsSync(join(dir.dir, 'embedded.json')), false);
      assertOrderlyShutdown(s.output());

      // The call made during the drain is in USAGE, and nothing waits in the fallback queue.
      const queue = await FallbackQueue.open(join(dir.dir, 'fallback-queue'));
      try {
        assert.equal(queue.depth, 0);
      } finally {
        await queue.close();
      }
      const restarted = new LocalNatsServer({ dir: join(dir.dir, 'nats') });
      await restarted.start();
      try {
        const events = await readAllUsage(restarted.url);
        assert.equal(events.filter((e) => e.data.request_id === requestId).length, 1, `usage event of ${requestId} not in USAGE`);
      } finally {
        await restarted.stop();
      }
    } finally {
      dir.remove();
    }
  });

  for (const c of [
    { how: 'SIGTERM to the serve process alone', signal: 'SIGTERM', group: false },
    { how: 'SIGHUP to its process group (the terminal was closed)', signal: 'SIGHUP', group: true },
  ] as const) {
    test(`${c.how}: it drains, stops the embedded servers and exits 0`, async () => {
      const dir = tempDir();
      try {
        const s = await startServe(dir.dir, 'kgents API listening');
        const { nats, redis } = embeddedServers(s.pid);
        assert.ok(nats && redis);
        process.kill(c.group ? -s.pid : s.pid, c.signal);
        assert.deepEqual(await s.exited, { code: 0, signal: null }, s.output());
        assert.ok(await waitPidGone(nats.pid), 'embedded nats-server outlived serve');
        assert.ok(await waitPidGone(redis.pid), 'embedded redis-server outlived serve');
        assertOrderlyShutdown(s.output());
      } finally {
        dir.remove();
      }
    });
  }

  test('closing a real terminal (its pty hangs up): it drains, then stops the embedded servers itself', {
    skip: findBinary('script') ? false : 'needs script(1) (util-linux) for a pseudo-terminal',
  }, async () => {
    const dir = tempDir();
    try {
      const s = await startServe(dir.dir, 'kgents API listening', {}, true);
      const { nats, redis } = embeddedServers(s.pid);
      assert.ok(nats && redis);
      // Killing the terminal's owner closes the pty: the kernel hangs the terminal up and sends
      // SIGHUP to serve, its session leader. From then on every write to it fails with EIO.
      const closed = Date.now();
      s.child.kill('SIGKILL');
      // serve is no longer our child (its parent is gone), so its exit code cannot be seen here;
      // what it did can: it stayed for the drain, stopped the servers cleanly and went away.
      assert.ok(await waitPidGone(s.pid, DRAIN_MS + 15_000), 'serve did not exit after its terminal was closed');
      assert.ok(Date.now() - closed >= DRAIN_MS - 100, 'serve exited without draining');
      assert.ok(await waitPidGone(nats.pid), 'embedded nats-server outlived serve');
      assert.ok(await waitPidGone(redis.pid), 'embedded redis-server outlived serve');
      assert.match(readFileSync(join(dir.dir, 'redis', 'redis-server.log'), 'utf8'), /Received SIGTERM/);
      assert.match(readFileSync(join(dir.dir, 'nats', 'nats-server.log'), 'utf8'), /Server Exiting/);
      assert.equal(existsSync(join(dir.dir, 'embedded.json')), false);
    } finally {
      dir.remove();
    }
  });

  test('SIGQUIT (Ctrl-\\): no drain, but the embedded servers do not outlive serve', async () => {
    const dir = tempDir();
    try {
      const s = await startServe(dir.dir, 'kgents API listening');
      const { nats, redis } = embeddedServers(s.pid);
      assert.ok(nats && redis);
      process.kill(-s.pid, 'SIGQUIT');
      assert.deepEqual(await s.exited, { code: 131, signal: null }, s.output());
      assert.ok(await waitPidGone(nats.pid), 'embedded nats-server outlived serve');
      assert.ok(await waitPidGone(redis.pid), 'embedded redis-server outlived serve');
    } finally {
      dir.remove();
    }
  });

  test('Ctrl-C during start-up: it exits at once and takes the embedded server along', async () => {
    const dir = tempDir();
    try {
      // A NATS nobody listens on keeps start-up waiting (after the embedded redis-server started).
      const s = await startServe(dir.dir, 'retrying until the start-up deadline', {
        NATS_URLS: `nats://127.0.0.1:${await freePort()}`, NATS_CONNECT_TIMEOUT_MS: '60000',
      });
      const { redis } = embeddedServers(s.pid);
      assert.ok(redis);
      process.kill(-s.pid, 'SIGINT');
      assert.deepEqual(await s.exited, { code: 130, signal: null }, s.output());
      assert.match(s.output(), /shutdown requested during start-up: exiting now/);
      assert.ok(await waitPidGone(redis.pid), 'embedded redis-server outlived serve');
    } finally {
      dir.remove();
    }
  });
});
