#!/usr/bin/env node
// Runs node's test runner over the compiled tests. File lists are passed explicitly because
// Node 20 and Node 22 disagree on how a directory argument to --test is expanded.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = join(import.meta.dirname, '..', 'dist', 'test');
const filter = process.argv.slice(2);
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) walk(full);
    else if (name.endsWith('.test.js')) files.push(full);
  }
};
walk(root);
const selected = filter.length === 0 ? files : files.filter((f) => filter.some((part) => f.includes(part)));
if (selected.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
// A hung test must fail the run, not hold CI until its time limit: no single test may take 5 minutes.
const timeout = process.env.TEST_TIMEOUT_MS ?? '300000';
const result = spawnSync(process.execPath, [
  '--enable-source-maps', '--test', `--test-concurrency=${concurrency}`, `--test-timeout=${timeout}`, ...selected,
], { stdio: 'inherit' });
process.exit(result.status ?? 1);
