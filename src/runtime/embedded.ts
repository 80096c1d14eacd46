import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { findBinary } from '../adapters/local/binaries.js';
import { LocalNatsServer } from '../adapters/local/nats-server.js';
import { LocalRedisServer } from '../adapters/local/redis-server.js';
import { liveness, pidAlive, recordProcess, terminateRecorded, type ProcessRecord } from '../adapters/local/process-record.js';

/** Written while `kgents serve` runs embedded servers, so `kgents keys …` finds them without config. */
const STATE_FILE = 'embedded.json';

export interface EmbeddedState {
  readonly pid: number;
  readonly nats_url?: string;
  readonly redis_url?: string;
  /** The servers' own processes: the next start stops them if this service died without doing so. */
  readonly nats_process?: ProcessRecord;
  readonly redis_process?: ProcessRecord;
}

export interface EmbeddedServices {
  readonly natsUrl?: string;
  readonly redisUrl?: string;
  /** Human-readable lines on what was started and what was not, for the start-up log. */
  readonly notes: readonly string[];
  stop(): Promise<void>;
}

export interface EmbeddedWanted {
  readonly dataDir: string;
  readonly nats: boolean;
  readonly redis: boolean;
}

/**
 * Starts local nats-server / redis-server for a developer's `npm start` when none are configured.
 * Data lives under DATA_DIR so keys survive restarts; the servers stop with the service.
 *
 * They run in their own process group: a Ctrl-C in the terminal of `npm start` signals the whole
 * foreground group, and servers in it would die at once, while the service still drains (its last
 * usage events would go to the fallback queue). So only the service stops them: after its NATS and
 * Redis clients are closed (Services.close), or with SIGKILL when it exits any other way (the exit
 * hook of ManagedProcess).
 */
export async function startEmbedded(wanted: EmbeddedWanted): Promise<EmbeddedServices> {
  const dataDir = resolve(wanted.dataDir);
  const notes: string[] = await stopLeftovers(dataDir);
  let nats: LocalNatsServer | undefined;
  let redis: LocalRedisServer | undefined;
  try {
    if (wanted.nats) {
      if (findBinary('nats-server')) {
        nats = new LocalNatsServer({ dir: join(dataDir, 'nats'), name: 'kgents-embedded', detached: true });
        await nats.start();
        notes.push(`started a local nats-server (JetStream) at ${nats.url}, data in ${join(dataDir, 'nats')}`);
      } else {
        notes.push('nats-server is not installed and NATS_URLS is empty: running on fallbacks (keys in a local file, no JetStream). Install it with: apt-get install -y nats-server');
      }
    }
    if (wanted.redis) {
      if (findBinary('redis-server')) {
        redis = new LocalRedisServer({ dir: join(dataDir, 'redis'), persist: true, detached: true });
        await redis.start();
        notes.push(`started a local redis-server at ${redis.url}, data in ${join(dataDir, 'redis')}`);
      } else {
        notes.push('redis-server is not installed and REDIS_URL is empty: rate limits and idempotency are kept in memory. Install it with: apt-get install -y redis-server');
      }
    }
  } catch (err) {
    await Promise.all([nats?.stop(), redis?.stop()]);
    throw err;
  }
  const state: EmbeddedState = {
    pid: process.pid,
    // how each is told apart from a stranger with a recycled pid: start time and command line
    // (redis-server rewrites its command line to its address)
    ...(nats?.pid !== undefined && { nats_url: nats.url, nats_process: recordProcess(nats.pid, join(dataDir, 'nats', 'jetstream')) }),
    ...(redis?.pid !== undefined && { redis_url: redis.url, redis_process: recordProcess(redis.pid, redis.url.replace('redis://', '')) }),
  };
  if (nats || redis) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(join(dataDir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
  }
  return {
    ...(nats && { natsUrl: nats.url }),
    ...(redis && { redisUrl: redis.url }),
    notes,
    stop: async () => {
      rmSync(join(dataDir, STATE_FILE), { force: true });
      await Promise.all([nats?.stop(), redis?.stop()]);
    },
  };
}

/**
 * A `kgents serve` killed with SIGKILL (or by the OOM killer) cannot stop its embedded servers,
 * which run in their own process group. Left alone, they would keep ports and memory, and the next
 * start would run a second nats-server on the same JetStream directory. So a start first stops the
 * servers its DATA_DIR's state file names, when the serve that wrote it is gone and they are still
 * the servers of this directory.
 */
async function stopLeftovers(dataDir: string): Promise<string[]> {
  let state: EmbeddedState;
  try {
    state = JSON.parse(readFileSync(join(dataDir, STATE_FILE), 'utf8')) as EmbeddedState;
  } catch {
    return [];
  }
  if (typeof state.pid !== 'number' || (state.pid !== process.pid && pidAlive(state.pid))) return [];
  const notes: string[] = [];
  for (const [name, record] of [['nats-server', state.nats_process], ['redis-server', state.redis_process]] as const) {
    if (!record) continue;
    const l = liveness(record);
    if (l !== 'alive' && l !== 'paused') continue;
    if (!(await terminateRecorded(record, 5000))) {
      // a second server on the same data directory is worse than not starting
      throw new Error(`a ${name} (pid ${record.pid}) left running in ${dataDir} by a kgents serve (pid ${state.pid}) that did not exit cleanly cannot be stopped: stop it (kill ${record.pid}) and start again`);
    }
    notes.push(`stopped a ${name} (pid ${record.pid}) left running by a kgents serve (pid ${state.pid}) that did not exit cleanly`);
  }
  rmSync(join(dataDir, STATE_FILE), { force: true });
  return notes;
}

/** The embedded servers of a `kgents serve` running with this DATA_DIR, if there is one. */
export function readEmbeddedState(dataDir: string): EmbeddedState | undefined {
  try {
    const state = JSON.parse(readFileSync(join(resolve(dataDir), STATE_FILE), 'utf8')) as EmbeddedState;
    return typeof state.pid === 'number' && pidAlive(state.pid) ? state : undefined;
  } catch {
    return undefined;
  }
}
