import { parentPort, workerData } from 'node:worker_threads';
import { Engine } from './engine.js';
import type { FromWorker, ToWorker, WorkerJob } from './protocol.js';

/** Worker-thread entry of the load generator: one Engine, driven by the runner's messages. */
const port = parentPort;
if (!port) throw new Error('worker.js runs as a worker thread of the load runner');
const job = workerData as WorkerJob;
const emit = (message: FromWorker): void => port.postMessage(message);
const engine = new Engine(job, emit);
port.on('message', (message: ToWorker) => {
  if (message.kind === 'start') {
    engine.run(message.startAt).then(
      () => port.close(),
      (err: unknown) => emit({ kind: 'error', message: err instanceof Error ? err.stack ?? err.message : String(err) }),
    );
  } else {
    engine.stop();
  }
});
emit({ kind: 'ready' });
