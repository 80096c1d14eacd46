// A parent of two ManagedProcess children for managed-process.test.ts (which runs it as a process
// of its own): `node managed-process-parent.js sigint|throw`. It prints the children's pids as one
// JSON line, then what it saw, as another.
import { setTimeout as sleep } from 'node:timers/promises';
import { ManagedProcess } from '../../../src/adapters/local/managed-process.js';

const mode = process.argv[2];
const detached = new ManagedProcess({ name: 'detached', command: 'sleep', args: ['60'], detached: true });
const attached = new ManagedProcess({ name: 'attached', command: 'sleep', args: ['60'] });
detached.start();
attached.start();

if (mode === 'sigint') {
  process.on('SIGINT', () => {
    void (async () => {
      // The attached child got the same SIGINT; give it time to die before looking.
      await Promise.race([attached.waitForExit(), sleep(2000)]);
      const seen = { attachedRunning: attached.running, detachedRunning: detached.running };
      await detached.stop();
      process.stdout.write(`${JSON.stringify({ ...seen, detachedRunningAfterStop: detached.running })}\n`);
      process.exit(0);
    })();
  });
} else if (mode === 'throw') {
  setTimeout(() => {
    throw new Error('crashing on purpose');
  }, 100);
}
// Only now: the test signals as soon as it reads this line.
process.stdout.write(`${JSON.stringify({ detached: detached.pid, attached: attached.pid })}\n`);
