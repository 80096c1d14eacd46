import { open } from 'node:fs/promises';
import { isErrno } from './errors.js';

/**
 * fsyncs a directory so that a create, rename or unlink in it is durable. Platforms that cannot
 * open or fsync a directory (Windows) report EISDIR/EPERM/EINVAL; there is nothing more to do there.
 */
export async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (err) {
    if (!isErrno(err, 'EISDIR', 'EPERM', 'EINVAL', 'EBADF')) throw err;
  } finally {
    await handle?.close();
  }
}
