/**
 * Preloaded into a bench server (`node --import`) by bench/alloc.ts. Each SIGUSR2 toggles V8's
 * sampling heap profiler: the first starts it, the next stops it and writes
 * `$KGENTS_ALLOC_DIR/<pid>-<n>.heapprofile`. KGENTS_ALLOC_MODE=all (default) keeps collected
 * objects in the profile, so it counts every allocation of the window, garbage included (what the
 * scavenger pays for); `promoted` drops what minor GCs collected, leaving what outlived them and was
 * moved to the old generation (what the mark-compact collector pays for), dead by now or not.
 * Does nothing unless KGENTS_ALLOC_DIR is set; never loaded by the service itself.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';

const dir = process.env.KGENTS_ALLOC_DIR;
const promotedOnly = process.env.KGENTS_ALLOC_MODE === 'promoted';
/** Bytes between samples: small enough for a few hundred samples per request batch. */
const SAMPLING_INTERVAL = 4096;

if (dir) {
  const session = new Session();
  session.connect();
  let sampling = false;
  let written = 0;
  let busy: Promise<void> = Promise.resolve();

  const toggle = async (): Promise<void> => {
    if (!sampling) {
      await session.post('HeapProfiler.enable');
      await session.post('HeapProfiler.startSampling', {
        samplingInterval: SAMPLING_INTERVAL, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: !promotedOnly,
      });
      sampling = true;
      return;
    }
    const { profile } = await session.post('HeapProfiler.stopSampling');
    sampling = false;
    const file = join(dir, `${process.pid}-${++written}.heapprofile`);
    // Written under another name first: the driver polls for the final name.
    writeFileSync(`${file}.part`, JSON.stringify(profile));
    renameSync(`${file}.part`, file);
  };

  process.on('SIGUSR2', () => {
    busy = busy.then(toggle).catch((err: unknown) => {
      process.stderr.write(`alloc-sampler: ${err instanceof Error ? err.message : String(err)}\n`);
    });
  });
}
