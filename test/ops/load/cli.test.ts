import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../../src/adapters/local/ports.js';
import type { LoadSummary } from '../../../src/ops/load/summary.js';
import { CLI, spawnServe, type ServeProcess } from '../../harness/serve-process.js';
import { tempDir } from '../../harness/servers.js';
import { startServer, type TestServer } from './servers.js';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function kgents(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NATS_URLS: '', ...env },
      timeout: 60_000,
    }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('kgents load', () => {
  const tmp = tempDir('kgents-load-');
  let fast: TestServer;
  let slow: TestServer;
  before(async () => {
    fast = await startServer();
    slow = await startServer((_req, res) => {
      setTimeout(() => res.end('slow'), 100);
    });
  });
  after(async () => {
    await fast.close();
    await slow.close();
    tmp.remove();
  });

  test('exit 0 when the thresholds hold; writes a JSON summary and a Markdown report', async () => {
    const out = join(tmp.dir, 'ok');
    const r = await kgents(['load', '--target', fast.url, '--mix', '/a=1,/b=1', '--rate', '100', '--duration', '1s', '--out', out,
      // Late starts are another test's subject; a CI machine busy with parallel tests must not void this run.
      '--late-tolerance', '0.5',
      '--threshold', 'http_req_duration: p(95)<500', '--threshold', 'http_req_failed{scenario:/a}: rate<0.01']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^scenario +requests/m);
    assert.match(r.stdout, /^ok +http_req_duration: p\(95\)<500/m);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as LoadSummary;
    assert.equal(summary.overall.requests, 100);
    assert.equal(summary.valid, true);
    assert.equal(summary.thresholds_ok, true);
    assert.deepEqual(Object.keys(summary.scenarios), ['/a', '/b']);
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    assert.match(md, /^\| Scenario \| Requests \| req\/s \| Failed \| p50 \| p90 \| p95 \| p99 \| max \|$/m);
    assert.match(md, /^\| all \| 100 \| /m);
    assert.match(md, /^\| `http_req_failed\{scenario:\/a\}: rate<0.01` \| 0 \| pass \|$/m);
  });

  test('exit 1 when a threshold fails, and --json prints the summary', async () => {
    const r = await kgents(['load', '--target', slow.url, '--mix', '/', '--vus', '2', '--duration', '1s', '--out', join(tmp.dir, 'fail'), '--json', '--quiet',
      '--threshold', 'http_req_duration: p(95)<50']);
    assert.equal(r.code, 1, r.stderr);
    const summary = JSON.parse(r.stdout) as LoadSummary;
    assert.equal(summary.model.kind, 'closed');
    assert.equal(summary.thresholds[0]?.ok, false);
    assert.ok((summary.thresholds[0]?.observed ?? 0) >= 100);
  });

  test('exit 3 when the generator could not start requests on time', async () => {
    const r = await kgents(['load', '--target', slow.url, '--mix', '/', '--rate', '100', '--max-in-flight', '2', '--duration', '1s', '--out', join(tmp.dir, 'invalid'), '--quiet']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stdout, /^INVALID: /m);
    assert.match(readFileSync(join(tmp.dir, 'invalid', 'report.md'), 'utf8'), /INVALID RUN/);
  });

  test('exit 2 on usage errors, with the reason', async () => {
    for (const [args, why] of [
      [['--rate', '10', '--vus', '2'], /either --rate .* or --vus/],
      [['--threshold', 'http_req_duration: p95<1'], /not an expression/],
      [['--threshold', 'http_req_duration{scenario:invoke}: p(95)<1', '--mix', 'health'], /no scenario "invoke"/],
      [['--stages', '10s'], /DURATION:TARGET/],
      [['--mix', 'resolve'], /give --key kg_\.\.\. or --create-keys/],
      [['--target', 'ftp://x'], /--target must be/],
      [['--bogus'], /Unknown option/],
    ] as const) {
      const r = await kgents(['load', ...((args as readonly string[]).includes('--target') ? [] : ['--target', fast.url]), '--duration', '1s', ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, why, args.join(' '));
    }
    const noTarget = await kgents(['load', '--mix', 'health']);
    assert.equal(noTarget.code, 2);
    assert.match(noTarget.stderr, /give --target URL/);
  });

  test('exit 1 with a clear message when the target does not answer', async () => {
    const r = await kgents(['load', '--target', `http://127.0.0.1:${await freePort()}`, '--mix', 'health', '--duration', '1s']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /does not answer \(ECONNREFUSED\)/);
  });

  describe('against kgents serve', () => {
    let serve: ServeProcess;
    const data = tempDir('kgents-load-serve-');
    before(async () => {
      serve = await spawnServe({ DATA_DIR: data.dir, EMBEDDED_SERVICES: 'off', NATS_URLS: '', REDIS_URL: '', KEY_STORE: 'file' });
    });
    after(async () => {
      serve.child.kill('SIGKILL');
      await serve.exited;
      data.remove();
    });

    test('--create-keys makes keys for the run, the full mix succeeds, and the keys are revoked afterwards', async () => {
      const out = join(tmp.dir, 'serve');
      const r = await kgents(['load', '--target', `http://127.0.0.1:${serve.port}`, '--create-keys', '--rate', '100', '--duration', '2s', '--out', out, '--quiet', '--late-tolerance', '0.5',
        '--threshold', 'http_req_failed: rate<0.001'], { DATA_DIR: data.dir, KEY_STORE: 'file' });
      assert.equal(r.code, 0, r.stderr + r.stdout);
      // one key per 50 authenticated requests/s: 90/s -> 2 keys
      assert.match(r.stderr, /created tenant load-\d+ \(enterprise\) with 2 keys/);
      const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as LoadSummary;
      assert.equal(summary.overall.requests, 200);
      assert.deepEqual(Object.fromEntries(Object.entries(summary.scenarios).map(([n, s]) => [n, s.statuses])), { health: { 200: 20 }, resolve: { 200: 60 }, invoke: { 200: 120 } });
      const keys = JSON.parse(readFileSync(join(data.dir, 'keys.json'), 'utf8')) as { keys: Record<string, { revoked_at: string | null; tenant: string }> };
      const made = Object.values(keys.keys).filter((k) => k.tenant.startsWith('load-'));
      assert.equal(made.length, 2);
      assert.ok(made.every((k) => k.revoked_at !== null));
      assert.ok(existsSync(join(out, 'report.md')));
    });
  });
});
