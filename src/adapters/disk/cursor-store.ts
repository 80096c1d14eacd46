import { open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isErrno, messageOf } from './errors.js';
import { syncDirectory } from './fs-util.js';
import type { QueuePosition } from './types.js';

export const CURSOR_FILE = 'cursor.json';

interface CursorFile {
  readonly version: 1;
  readonly segment: number;
  readonly offset: number;
  readonly sequence: number;
}

export type LoadedCursor =
  | { readonly kind: 'missing' }
  | { readonly kind: 'invalid'; readonly reason: string }
  | { readonly kind: 'ok'; readonly position: QueuePosition };

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * The drainer's committed position in `cursor.json`. Saved atomically and durably: write a temp
 * file, fsync it, rename it over the old one, fsync the directory. A crash leaves the old or the
 * new cursor, never a mix.
 */
export class CursorStore {
  readonly path: string;
  private readonly tempPath: string;

  constructor(private readonly dir: string) {
    this.path = join(dir, CURSOR_FILE);
    this.tempPath = `${this.path}.tmp`;
  }

  async load(): Promise<LoadedCursor> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return { kind: 'missing' };
      throw err;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      return { kind: 'invalid', reason: `not JSON: ${messageOf(err)}` };
    }
    const doc = parsed as Partial<CursorFile> | null;
    if (!doc || doc.version !== 1 || !isCount(doc.segment) || !isCount(doc.offset) || !isCount(doc.sequence)) {
      return { kind: 'invalid', reason: 'unexpected shape' };
    }
    return { kind: 'ok', position: { segment: doc.segment, offset: doc.offset, sequence: doc.sequence } };
  }

  async save(position: QueuePosition): Promise<void> {
    const doc: CursorFile = { version: 1, segment: position.segment, offset: position.offset, sequence: position.sequence };
    const handle = await open(this.tempPath, 'w');
    try {
      await handle.writeFile(`${JSON.stringify(doc)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(this.tempPath, this.path);
    await syncDirectory(this.dir);
  }

  /** Removes a temp file left by a crash during save. */
  async cleanup(): Promise<void> {
    await rm(this.tempPath, { force: true });
  }
}
