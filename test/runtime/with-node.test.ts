import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';

// dist/test/runtime -> the repository root
const SCRIPT = join(import.meta.dirname, '..', '..', '..', 'scripts', 'with-node.mjs');
const thisMajor = process.versions.node.split('.')[0] ?? '';

function withNode(args: string[]): { status: number | null; stdout: string; stderr: string } {
  // An unreachable registry and an empty cache: nothing here may fetch a Node.js.
  const result = spawnSync(process.execPath, [SCRIPT, ...args], {
    encoding: 'utf8', timeout: 30_000,
    env: { ...process.env, KGENTS_NODE_CACHE: join(import.meta.dirname, 'no-such-cache'), npm_config_registry: 'http://127.0.0.1:9/', npm_config_fetch_retries: '0' },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('scripts/with-node.mjs (runs a command under another Node.js major)', () => {
  test('without a major version or a command it prints its usage and exits 2', () => {
    for (const args of [[], ['24'], ['x', 'node']]) {
      const r = withNode(args);
      assert.equal(r.status, 2, JSON.stringify(args));
      assert.match(r.stderr, /usage: node scripts\/with-node\.mjs <major version> <command>/);
    }
  });

  test('the running major is used as it is, with no fetch, and the command\'s exit status is passed through', () => {
    const ok = withNode([thisMajor, '--', process.execPath, '-e', 'console.log(process.version)']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stdout.trim(), process.version);
    const failed = withNode([thisMajor, process.execPath, '-e', 'process.exit(7)']);
    assert.equal(failed.status, 7);
  });

  test('a major that is neither published (registry unreachable) nor cached fails with a message, exit 1', () => {
    const r = withNode(['99', 'node', '--version']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no Node\.js 99 available \(registry unreachable and nothing cached/);
  });
});
