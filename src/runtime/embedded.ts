import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { findBinary } from '../adapters/local/binaries.js';
import { LocalNatsServer } from '../adapters/local/nats-server.js';
import { LocalRedisServer } from '../adapters/local/redis-server.js';

/** Written while `kgents serve` runs embedded servers, so `kgents keys …` finds them without config. */
const STATE_FILE = 'embedded.json';

export interface EmbeddedState {
  readonly pid: number;
  readonly nats_url?: string;
  readonly redis_url?: string;
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
  const notes: string[] = [];
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
  const state: EmbeddedState = { pid: process.pid, ...(nats && { nats_url: nats.url }), ...(redis && { redis_url: redis.url }) };
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

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The embedded servers of a `kgents serve` running with this DATA_DIR, if there is one. */
export function readEmbeddedState(dataDir: string): EmbeddedState | undefined {
  try {
    const state = JSON.parse(readFileSync(join(resolve(dataDir), STATE_FILE), 'utf8')) as EmbeddedState;
    return typeof state.pid === 'number' && alive(state.pid) ? state : undefined;
  } catch {
    return undefined;
  }
}
