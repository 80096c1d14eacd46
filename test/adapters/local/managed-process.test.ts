import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { procInfo, waitPidGone } from '../../harness/procs.js';

const PARENT = join(import.meta.dirname, 'managed-process-parent.js');

interface Parent {
  readonly child: ChildProcess;
  /** The JSON lines it printed so far. */
  readonly lines: unknown[];
  readonly exited: Promise<number | null>;
  line(n: number): Promise<unknown>;
}

/** Starts the parent in a process group of its own, as a shell does with a foreground job. */
function startParent(mode: string): Parent {
  const child = spawn(process.execPath, [PARENT, mode], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: unknown[] = [];
  let buffer = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buffer.slice(0, nl)));
      buffer = buffer.slice(nl + 1);
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child, lines, exited,
    async line(n) {
      const deadline = Date.now() + 10_000;
      while (lines.length <= n) {
        if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
          throw new Error(`no line ${n} from the parent (exit ${child.exitCode ?? child.signalCode}); stderr:\n${stderr}`);
        }
        await sleep(20);
      }
      return lines[n];
    },
  };
}

describe('ManagedProcess with detached: true', () => {
  test('a Ctrl-C to the parent\'s process group does not reach the child; stop() still stops it', async () => {
    const parent = startParent('sigint');
    const pids = await parent.line(0) as { detached: number; attached: number };
    const parentPid = parent.child.pid ?? 0;
    assert.equal(procInfo(pids.attached)?.pgid, parentPid, 'an attached child shares the parent\'s group');
    assert.equal(procInfo(pids.detached)?.pgid, pids.detached, 'a detached child leads a group of its own');

    process.kill(-parentPid, 'SIGINT');
    const seen = await parent.line(1) as { attachedRunning: boolean; detachedRunning: boolean; detachedRunningAfterStop: boolean };
    assert.deepEqual(seen, { attachedRunning: false, detachedRunning: true, detachedRunningAfterStop: false });
    assert.equal(await parent.exited, 0);
    assert.ok(await waitPidGone(pids.detached));
    assert.ok(await waitPidGone(pids.attached));
  });

  test('a parent that dies of an uncaught exception takes its detached child along', async () => {
    const parent = startParent('throw');
    const pids = await parent.line(0) as { detached: number; attached: number };
    assert.equal(await parent.exited, 1);
    assert.ok(await waitPidGone(pids.detached), `detached child ${pids.detached} outlived its parent`);
    assert.ok(await waitPidGone(pids.attached), `attached child ${pids.attached} outlived its parent`);
  });
});
