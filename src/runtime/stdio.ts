import { closeSync, writeSync } from 'node:fs';
import { destination, type DestinationStream } from 'pino';

/*
 * `kgents serve` in a terminal must still drain and exit cleanly after that terminal is closed
 * (SIGHUP): from then on every write to it fails with EIO, and both pino and Node handle that badly.
 */

/**
 * Whether `fd` is a terminal that was closed (hung up). Such a terminal fails every write with EIO,
 * even an empty one, while a live terminal, a pipe or a file takes an empty write without effect.
 * (isatty() cannot tell: it is false for a hung-up terminal.)
 */
export function terminalHungUp(fd: number): boolean {
  try {
    writeSync(fd, '');
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EIO';
  }
}

/** Log lines for standard output. */
export interface StdoutLogs {
  readonly stream: DestinationStream;
  /**
   * Writes out the lines logged so far, waiting at most `timeoutMs`; later lines are dropped. For
   * just before process.exit(): the exit itself writes what is queued while an earlier write may
   * still be in flight, so the last lines could come out of order or not at all.
   */
  close(timeoutMs: number): Promise<void>;
}

/**
 * pino's own destination on fd 1 (its default settings), made safe for an output that goes away.
 * pino's destination would throw from an 'error' event (a crash) and, at exit, retry unwritten lines
 * forever (sonic-boom's flushSync retries any error): the process would hang instead of exiting.
 * Lines with nowhere to go are dropped instead.
 */
export function stdoutLogs(): StdoutLogs {
  const stream = destination({ dest: 1, minLength: 0 });
  let dropped = false;
  const drop = (): void => {
    dropped = true;
    stream.write = () => true;
    stream.flushSync = () => undefined;
    stream.end = () => undefined;
  };
  stream.on('error', drop);
  // Ahead of every other exit listener, so ahead of the destination's own flush at exit.
  process.prependListener('exit', () => {
    if (terminalHungUp(1)) drop();
  });
  return {
    stream,
    close: (timeoutMs) => new Promise<void>((resolve) => {
      if (dropped) {
        resolve();
        return;
      }
      const done = (): void => {
        clearTimeout(timer);
        drop();
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      stream.once('close', done);
      stream.once('error', done);
      // Ends after the queued lines are written; fd 1 itself stays open. A line logged after the
      // end would throw, so from now on lines are dropped.
      stream.end();
      stream.write = () => true;
    }),
  };
}

let closeInstalled = false;

/**
 * Node 20 aborts at exit (SIGABRT or SIGSEGV instead of the exit code) when it cannot restore the
 * settings of a stdio terminal, which fails once that terminal was closed (nodejs/node#51519, fixed
 * upstream by nodejs/node#58200). It leaves closed fds alone, so hung-up stdio fds are closed as the
 * process exits. Nothing is lost: writes to them fail anyway.
 */
export function closeHungUpStdioOnExit(): void {
  if (closeInstalled) return;
  closeInstalled = true;
  process.on('exit', () => {
    for (const fd of [0, 1, 2]) {
      if (terminalHungUp(fd)) closeSync(fd);
    }
  });
}
