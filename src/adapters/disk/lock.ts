import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isErrno, QueueLockedError } from './errors.js';
import { pidAlive } from '../local/process-record.js';

export const LOCK_FILE = 'queue.lock';

interface LockInfo {
  readonly pid: number;
  readonly token: string;
  readonly host?: string;
  readonly since?: string;
}

/** Lock files held by this process, so a second open in the same process is refused. */
const heldHere = new Set<string>();

/** A lock file being written by its creator is empty for a moment; give it this long. */
const FRESH_LOCK_MS = 2000;

async function readInfo(path: string): Promise<LockInfo | 'missing' | 'unreadable'> {
  try {
    const doc = JSON.parse(await readFile(path, 'utf8')) as Partial<LockInfo> | null;
    if (doc && typeof doc.pid === 'number' && Number.isSafeInteger(doc.pid) && doc.pid > 0 && typeof doc.token === 'string') {
      return { pid: doc.pid, token: doc.token };
    }
    return 'unreadable';
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return 'missing';
    return 'unreadable';
  }
}

async function writeDurably(path: string, text: string, flags: string): Promise<void> {
  const handle = await open(path, flags);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Exclusive ownership of a queue directory: `queue.lock` holding `{ pid, token, host, since }`.
 *
 * - Created with O_EXCL, so of two openers only one creates it.
 * - Held by a live pid: refused with QueueLockedError (also for a second open in this process).
 * - Held by a dead pid (a crashed or killed process, also one not yet reaped: a zombie): stale,
 *   taken over by renaming a new lock file over it, then reading it back to check that ours is the
 *   one that landed.
 * - Held by our own pid but not by this process: left by an earlier incarnation that had the same
 *   pid (pid 1 in a container restarted on the same volume), so stale too.
 *
 * Limits: the pid check only sees this host's (or container's pid namespace's) processes, so the
 * directory must not be shared between hosts; a dead holder's pid reused by an unrelated process
 * makes the lock look live (delete `queue.lock` by hand once sure no queue process runs).
 */
export class DirectoryLock {
  private constructor(readonly path: string, private readonly token: string) {}

  static async acquire(dir: string): Promise<DirectoryLock> {
    const path = resolve(join(dir, LOCK_FILE));
    const token = randomBytes(12).toString('hex');
    const text = `${JSON.stringify({ pid: process.pid, token, host: hostname(), since: new Date().toISOString() })}\n`;
    for (let attempt = 0; attempt < 50; attempt++) {
      if (heldHere.has(path)) throw new QueueLockedError(path, process.pid);
      try {
        await writeDurably(path, text, 'wx');
        heldHere.add(path);
        return new DirectoryLock(path, token);
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw err;
      }
      const info = await readInfo(path);
      if (info === 'missing') continue;
      if (info === 'unreadable') {
        const age = await stat(path).then((s) => Date.now() - s.mtimeMs, () => 0);
        if (age < FRESH_LOCK_MS) {
          await sleep(20);
          continue;
        }
      } else if (info.pid !== process.pid && pidAlive(info.pid)) {
        throw new QueueLockedError(path, info.pid);
      }
      // Stale: replace it atomically, then make sure ours is the one that landed.
      const temp = `${path}.${process.pid}.${token}`;
      await writeDurably(temp, text, 'w');
      await rename(temp, path);
      const now = await readInfo(path);
      if (typeof now === 'object' && now.token === token) {
        heldHere.add(path);
        return new DirectoryLock(path, token);
      }
      // Someone else took it over at the same moment; go round again and look at theirs.
    }
    throw new QueueLockedError(path, undefined);
  }

  /** Removes the lock file if it is still ours. */
  async release(): Promise<void> {
    heldHere.delete(this.path);
    const info = await readInfo(this.path);
    if (typeof info === 'object' && info.token === this.token) await rm(this.path, { force: true });
  }
}
