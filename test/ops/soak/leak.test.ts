import { strict as assert } from 'node:assert';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { SoakSummary } from '../../../src/ops/soak/report.js';
import { CLI } from '../../harness/serve-process.js';
import { tempDir } from '../../harness/servers.js';
import { assertWellFormedXml } from './xml.js';

interface Server {
  readonly child: ChildProcess;
  readonly url: string;
}

/** Starts test/ops/soak/leak-server.js as its own process (its memory is what the soak measures). */
async function startLeakServer(env: Record<string, string>): Promise<Server> {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'leak-server.js')], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`leak server exited (${code})`)));
  });
  return { child, url: `http://127.0.0.1:${port}` };
}

function soak(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'soak', ...args], { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' }, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('kgents soak against a planted leak', () => {
  const tmp = tempDir('kgents-soak-');
  let leaky: Server;
  let clean: Server;
  before(async () => {
    // Both hold a 24 MB working set, like the API; each request allocates 128 KB on the heap, which the leaky one keeps.
    [leaky, clean] = await Promise.all([
      startLeakServer({ LEAK: '1', LEAK_KB: '128', BASELINE_MB: '24' }),
      startLeakServer({ LEAK: '0', LEAK_KB: '128', BASELINE_MB: '24' }),
    ]);
  });
  after(() => {
    leaky.child.kill('SIGKILL');
    clean.child.kill('SIGKILL');
    tmp.remove();
  });

  test('an accelerated soak (20 s, 2 s windows) fails the leaking server on memory and passes the clean one', async () => {
    // Late starts are judged elsewhere (test/ops/load); here a busy CI machine must not void the memory verdicts.
    const args = ['--mix', '/', '--rate', '40', '--duration', '20s', '--window', '2s', '--late-tolerance', '0.5', '--json', '--quiet'];
    const [l, c] = await Promise.all([
      soak(['--target', leaky.url, '--out', join(tmp.dir, 'leaky'), ...args]),
      soak(['--target', clean.url, '--out', join(tmp.dir, 'clean'), ...args]),
    ]);
    const leak = JSON.parse(l.stdout) as SoakSummary;
    const ok = JSON.parse(c.stdout) as SoakSummary;
    const lm = leak.analysis.memory[0];
    const cm = ok.analysis.memory[0];
    const figures = `leaky: ${lm?.reason}; clean: ${cm?.reason}`;
    process.stderr.write(`# ${figures}\n`);

    assert.equal(lm?.instance, 'leaky');
    assert.equal(lm.verdict, 'FAIL', figures);
    assert.ok((lm.growth_pct ?? 0) > 50, figures);
    assert.ok((lm.slope_mb_per_hour ?? 0) > 1000, figures);
    assert.equal(leak.verdict, 'FAIL');
    assert.equal(l.code, 1);
    assert.deepEqual(leak.checks.map((ch) => ch.verdict), ['FAIL', 'PASS', 'PASS']);

    assert.equal(cm?.instance, 'clean');
    assert.equal(cm.verdict, 'PASS', figures);
    assert.ok(Math.abs(cm.growth_pct ?? 100) < 10, figures);
    assert.equal(ok.verdict, 'PASS');
    assert.equal(c.code, 0, c.stderr);

    // Both ran the same load, and every window has its latency and memory.
    for (const s of [leak, ok]) {
      assert.equal(s.load.valid, true);
      assert.ok(Math.abs(s.load.overall.requests - 800) <= 40, `${s.load.overall.requests}`);
      assert.equal(s.analysis.windows.length, 10);
      assert.ok(s.analysis.windows.every((w) => w.p95_ms !== null && (w.instances[s.analysis.memory[0]?.instance ?? '']?.samples ?? 0) >= 2));
    }
  });

  test('the reports: soak.json parses, report.md has the checks and memory tables, chart.svg is well-formed SVG', () => {
    const dir = join(tmp.dir, 'leaky');
    const json = JSON.parse(readFileSync(join(dir, 'soak.json'), 'utf8')) as SoakSummary;
    assert.equal(json.tool, 'kgents soak');
    const md = readFileSync(join(dir, 'report.md'), 'utf8');
    assert.match(md, /^- \*\*Verdict:\*\* \*\*FAIL\*\* \(exit code 1\)$/m);
    assert.match(md, /^\| memory growth < 10 % \| \*\*FAIL\*\* \| leaky: /m);
    assert.match(md, /^\| Instance \| Fitted to \| Points \| Baseline \| Growth \| Growth % \| MB\/hour \| R² \| RSS first → last \| Verdict \|$/m);
    assert.match(md, /^\| leaky \| retained heap, /m);
    assert.match(md, /!\[memory and latency over time\]\(chart\.svg\)/);
    const svg = readFileSync(join(dir, 'chart.svg'), 'utf8');
    const root = assertWellFormedXml(svg);
    assert.equal(root, 'svg');
    assert.match(svg, /<polyline [^>]*points="/);
    assert.match(svg, /p95 limit 200 ms/);
  });
});
