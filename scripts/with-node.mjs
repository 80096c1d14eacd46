#!/usr/bin/env node
// Runs a command with another major version of Node.js first on PATH, e.g. the production image's:
//   node scripts/with-node.mjs 24 node scripts/run-tests.mjs
// The binary comes from the npm registry (the node-linux-<arch> package that the `node` package
// installs), the one registry CI machines reach; it is cached under ~/.cache/kgents/node/<version>.
// npm checks the tarball against the registry's integrity hash; the unpacked binary must then
// report the expected version.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const [major, ...rest] = process.argv.slice(2);
const command = rest[0] === '--' ? rest.slice(1) : rest;
if (!major || !/^\d+$/.test(major) || command.length === 0) {
  console.error('usage: node scripts/with-node.mjs <major version> <command> [args...]');
  process.exit(2);
}

const run = (binDir) => {
  const env = { ...process.env, PATH: binDir ? `${binDir}:${process.env.PATH ?? ''}` : process.env.PATH };
  const result = spawnSync(command[0], command.slice(1), { stdio: 'inherit', env });
  if (result.error) {
    console.error(`with-node: cannot run ${command[0]}: ${result.error.message}`);
    process.exit(127);
  }
  process.exit(result.status ?? 1);
};

if (process.versions.node.split('.')[0] === major) run(undefined);

if (process.platform !== 'linux' || !['x64', 'arm64'].includes(process.arch)) {
  console.error(`with-node: only linux x64/arm64 binaries are fetched (this is ${process.platform}-${process.arch})`);
  process.exit(2);
}
const pkg = `node-linux-${process.arch}`;
const cache = process.env.KGENTS_NODE_CACHE ?? join(homedir(), '.cache', 'kgents', 'node');
const byVersion = (a, b) => {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
};

function newestPublished() {
  try {
    const out = execFileSync('npm', ['view', `${pkg}@${major}`, 'version', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const parsed = JSON.parse(out);
    const versions = (Array.isArray(parsed) ? parsed : [parsed]).filter((v) => /^\d+\.\d+\.\d+$/.test(v));
    return versions.sort(byVersion).at(-1);
  } catch (err) {
    console.error(`with-node: cannot ask the npm registry for ${pkg}@${major}: ${err instanceof Error ? err.message.split('\n')[0] : err}`);
    return undefined;
  }
}

function newestCached() {
  if (!existsSync(cache)) return undefined;
  return readdirSync(cache).filter((v) => v.startsWith(`${major}.`) && /^\d+\.\d+\.\d+$/.test(v)).sort(byVersion).at(-1);
}

const version = newestPublished() ?? newestCached();
if (!version) {
  console.error(`with-node: no Node.js ${major} available (registry unreachable and nothing cached in ${cache})`);
  process.exit(1);
}
const home = join(cache, version);
const bin = join(home, 'bin');
if (!existsSync(join(bin, 'node'))) {
  mkdirSync(cache, { recursive: true });
  // Beside the cache, not in /tmp: the rename below must not cross file systems.
  const work = mkdtempSync(join(cache, '.fetch-'));
  try {
    console.error(`with-node: fetching ${pkg}@${version} from the npm registry`);
    const file = execFileSync('npm', ['pack', `${pkg}@${version}`, '--pack-destination', work, '--silent'], { encoding: 'utf8' }).trim().split('\n').at(-1);
    execFileSync('tar', ['xzf', join(work, file), '-C', work]);
    // Renamed into place whole, so an interrupted fetch never leaves a half-unpacked version behind.
    rmSync(home, { recursive: true, force: true });
    renameSync(join(work, 'package'), home);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
const reported = execFileSync(join(bin, 'node'), ['--version'], { encoding: 'utf8' }).trim();
if (reported !== `v${version}`) {
  console.error(`with-node: ${join(bin, 'node')} reports ${reported}, expected v${version}`);
  process.exit(1);
}
console.error(`with-node: running with Node.js ${reported}`);
run(bin);
