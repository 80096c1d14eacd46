/**
 * Bytes allocated per request, and where: `node dist/bench/alloc.js [options]` (after `npm run build`).
 * Starts the same stack as `npm run bench` (nats-server, redis-server, the API, the unmetered API, bare
 * Fastify) with bench/lib/alloc-sampler.js preloaded into the servers; for each target it warms up,
 * then samples the server's heap allocations (garbage included) during one load run.
 * Allocation per request hardly depends on how busy the machine is, unlike req/s, so it is the
 * figure to compare before and after a change on a noisy machine; the garbage collector's share of
 * the CPU follows it.
 *
 * Options:
 *   --targets LIST    comma-separated (default bare,bare-post,health,invoke,invoke-nometer)
 *   --duration S      seconds of sampled load per target (default 5)
 *   --connections N   concurrent connections (default 64)
 *   --top N           rows per section (default 20)
 *   --promoted        count only what outlived the minor GCs (promoted to the old generation) instead
 *                     of every allocation: what makes the old generation grow and need mark-compacts
 *   --keep            keep the temporary directory (profiles, server logs)
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { formatAllocSummary, summariseHeapProfiles } from './lib/heapprofile.js';
import { killLoadGenerators, runLoad } from './lib/load.js';
import { startStack, type Stack } from './lib/stack.js';
import { checkTarget, positiveOption, selectTargets, type Target } from './lib/targets.js';

const { values } = parseArgs({ options: {
  targets: { type: 'string', default: 'bare,bare-post,health,invoke,invoke-nometer' },
  duration: { type: 'string', default: '5' },
  connections: { type: 'string', default: '64' },
  top: { type: 'string', default: '20' },
  keep: { type: 'boolean', default: false },
  promoted: { type: 'boolean', default: false },
} });
const what = values.promoted ? 'promoted to the old generation' : 'allocated';
if (values.promoted) process.env.KGENTS_ALLOC_MODE = 'promoted';

const durationS = positiveOption('alloc', 'duration', values.duration);
const connections = positiveOption('alloc', 'connections', values.connections);
const topN = positiveOption('alloc', 'top', values.top);
const selected = selectTargets('alloc', values.targets);

function serverOf(stack: Stack, target: Target): { pid: number | undefined; dir: string } {
  const name = target.server;
  return { pid: stack.pids[name], dir: name };
}

async function waitForProfile(dir: string, known: ReadonlySet<string>): Promise<string> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const fresh = readdirSync(dir).filter((f) => f.endsWith('.heapprofile') && !known.has(f));
    if (fresh[0]) return join(dir, fresh[0]);
    await sleep(100);
  }
  throw new Error(`no heap profile appeared in ${dir} within 60 s`);
}

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'kgents-bench-alloc-'));
  const profiles = join(dir, 'heap');
  let stack: Stack | undefined;
  const onSignal = (): void => {
    killLoadGenerators();
    void (stack?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let failed = false;
  try {
    process.stdout.write(`kgents alloc: ${durationS} s of sampled load per target, ${connections} connections; starting the stack in ${dir} ...\n`);
    stack = await startStack({ dir, allocProfileDir: profiles });
    const figures: { target: string; kib: number }[] = [];
    for (const target of selected) {
      await checkTarget(stack, target);
      const job = { ...target.job(stack), connections, timeoutS: 10 };
      await runLoad({ ...job, durationS: 2 });
      const { pid, dir: sub } = serverOf(stack, target);
      if (pid === undefined) throw new Error(`no pid for the ${target.server} server`);
      const profileDir = join(profiles, sub);
      const known = new Set(existsSync(profileDir) ? readdirSync(profileDir) : []);
      process.kill(pid, 'SIGUSR2');
      // The sampler starts asynchronously (an inspector round trip): give it a moment before the load.
      await sleep(300);
      const run = await runLoad({ ...job, durationS });
      process.kill(pid, 'SIGUSR2');
      const file = await waitForProfile(profileDir, known);
      const summary = summariseHeapProfiles([file], run.requests, topN);
      figures.push({ target: target.name, kib: summary.bytesPerRequest / 1024 });
      process.stdout.write(`\n${formatAllocSummary(`${target.name} (${target.server}, ${Math.round(run.rps).toLocaleString('en-US')} req/s)`, summary, what)}\n`);
    }
    process.stdout.write(`\nKiB ${what} per request:\n${figures.map((f) => `  ${f.target.padEnd(15)} ${f.kib.toFixed(2).padStart(7)}`).join('\n')}\n`);
  } catch (err) {
    failed = true;
    process.stderr.write(`alloc: ${err instanceof Error ? err.message : String(err)}\n`);
  } finally {
    await stack?.stop();
    if (values.keep || failed) process.stdout.write(`kept ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  }
  return failed ? 1 : 0;
}

process.exitCode = await main();
