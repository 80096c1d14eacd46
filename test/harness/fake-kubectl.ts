import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after } from 'node:test';
import { tempDir } from './servers.js';

export interface FakeKubectl {
  /** A scratch directory for the files the script's cases read or touch. */
  readonly dir: string;
  /** Every call's arguments, one line per call. */
  readonly log: string;
}

/**
 * Puts a `kubectl` shell script first on PATH for the enclosing suite: it appends its arguments to
 * `log`, then runs `cases` (the arms of a `case "$*" in ... esac`). PATH and the files are restored
 * and removed after the suite.
 */
export function installFakeKubectl(prefix: string, cases: (dir: string, log: string) => string): FakeKubectl {
  const tmp = tempDir(prefix);
  const log = join(tmp.dir, 'calls.log');
  writeFileSync(log, '');
  writeFileSync(join(tmp.dir, 'kubectl'), `#!/bin/sh\necho "$*" >> "${log}"\ncase "$*" in\n${cases(tmp.dir, log)}\nesac\n`);
  chmodSync(join(tmp.dir, 'kubectl'), 0o755);
  const savedPath = process.env.PATH;
  process.env.PATH = `${tmp.dir}:${savedPath ?? ''}`;
  after(() => {
    process.env.PATH = savedPath;
    tmp.remove();
  });
  return { dir: tmp.dir, log };
}
