import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The package version, read once; compiled code lives in dist/src, two levels below package.json. */
export const VERSION: string = (() => {
  for (const rel of [['..', '..'], ['..']]) {
    try {
      const pkg = JSON.parse(readFileSync(join(import.meta.dirname, ...rel, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'kgents-platform' && pkg.version) return pkg.version;
    } catch {
      // try the next location
    }
  }
  return '0.0.0-unknown';
})();
